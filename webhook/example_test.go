package webhook_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/keyq/keyq/webhook"
)

// A receiver checks every message before it trusts the body.
func ExampleVerify() {
	secrets, _ := webhook.ParseSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	body := []byte(`{"id":"5f0c","status":"succeeded"}`)

	// What keyq sends...
	h := http.Header{}
	webhook.Sign(h, secrets, "msg_5f0c", time.Now(), body)

	// ...and what the receiver does with it.
	fmt.Println(webhook.Verify(secrets, h, body, 5*time.Minute))
	fmt.Println(webhook.Verify(secrets, h, []byte(`{"status":"failed"}`), 5*time.Minute))
	// Output:
	// <nil>
	// webhook: no signature matches
}

// The signature of the Standard Webhooks specification's own example.
func ExampleSignature() {
	s, _ := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	fmt.Println(webhook.Signature(s, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`)))
	// Output: g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// Two secrets while they rotate: each message carries both signatures.
func ExampleSign() {
	secrets, _ := webhook.ParseSecrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_b2xkLXNlY3JldC1rZXktMTIzNDU2Nzg5MA==")
	h := http.Header{}
	webhook.Sign(h, secrets, "msg_1", time.Unix(1614265330, 0), []byte(`{}`))
	fmt.Println(h.Get(webhook.HeaderID), h.Get(webhook.HeaderTimestamp))
	fmt.Println(len(h.Get(webhook.HeaderSignature)) > 2*len("v1,")+2*44)
	// Output:
	// msg_1 1614265330
	// true
}
