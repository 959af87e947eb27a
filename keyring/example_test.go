package keyring_test

import (
	"fmt"

	"github.com/keyq/keyq/keyring"
)

func ExampleParseKeys() {
	keys, dropped, err := keyring.ParseKeys(" key-one, key-two,, key-one ")
	if err != nil {
		panic(err)
	}
	for _, k := range keys {
		fmt.Println(k.Name(), len(k.Fingerprint), "hex digits of fingerprint")
	}
	fmt.Println("dropped duplicates at positions", dropped)
	// Output:
	// #1 12 hex digits of fingerprint
	// #2 12 hex digits of fingerprint
	// dropped duplicates at positions [3]
}
