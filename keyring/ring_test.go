package keyring_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/keyring"
)

func testKeys(t *testing.T, n int) []keyring.Key {
	t.Helper()
	list := ""
	for i := 1; i <= n; i++ {
		list += fmt.Sprintf("test-key-%d,", i)
	}
	keys, _, err := keyring.ParseKeys(list)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestPickRotatesInOrder(t *testing.T) {
	rdb, _ := redistest.Open(t)
	ring, err := keyring.New(rdb, testKeys(t, 3), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 7 {
		k, err := ring.Pick(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k.Name())
	}
	if want := "[#1 #2 #3 #1 #2 #3 #1]"; fmt.Sprint(got) != want {
		t.Errorf("picks = %v, want %s", got, want)
	}
}

// Many goroutines on several Redis clients (as if several replicas) make
// n*k picks: the shared counter gives every key exactly k of them.
func TestPickIsOneRotationAcrossClients(t *testing.T) {
	_, url := redistest.Open(t)
	const nKeys, perKey, clients, goroutines = 5, 400, 4, 8
	keys := testKeys(t, nKeys)
	var rings []*keyring.Ring
	for range clients {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		r, err := keyring.New(c, keys, keyring.Options{Pool: "shared"})
		if err != nil {
			t.Fatal(err)
		}
		rings = append(rings, r)
	}
	var (
		mu     sync.Mutex
		counts = make(map[int]int)
		wg     sync.WaitGroup
		total  = nKeys * perKey
		jobs   = make(chan struct{}, total)
	)
	for range total {
		jobs <- struct{}{}
	}
	close(jobs)
	for g := range clients * goroutines {
		wg.Go(func() {
			ring := rings[g%clients]
			for range jobs {
				k, err := ring.Pick(context.Background(), nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				counts[k.Index]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := 1; i <= nKeys; i++ {
		if counts[i] != perKey {
			t.Errorf("key #%d picked %d times, want exactly %d (all: %v)", i, counts[i], perKey, counts)
		}
	}
}

func TestPickSkipsTriedKeysWhileOthersRemain(t *testing.T) {
	rdb, _ := redistest.Open(t)
	keys := testKeys(t, 4)
	ring, err := keyring.New(rdb, keys, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var skip keyring.Skip
	skip.Add(keys[0])
	skip.Add(keys[2])
	// Wherever the counter stands, only #2 and #4 may come out.
	for i := range 12 {
		k, err := ring.Pick(ctx, &skip)
		if err != nil {
			t.Fatal(err)
		}
		if skip.Has(k) {
			t.Fatalf("pick %d gave %s, which is skipped", i, k.Name())
		}
	}
	// A job run walks the whole pool before repeating a key, even while
	// another replica moves the counter between its picks.
	var run keyring.Skip
	for range len(keys) {
		if _, err := ring.Pick(ctx, nil); err != nil { // the other replica
			t.Fatal(err)
		}
		k, err := ring.Pick(ctx, &run)
		if err != nil {
			t.Fatal(err)
		}
		if run.Has(k) {
			t.Fatalf("run got %s twice before trying every key", k.Name())
		}
		run.Add(k)
	}
	// All skipped: the rotation decides rather than failing.
	if _, err := ring.Pick(ctx, &run); err != nil {
		t.Fatalf("pick with every key skipped: %v", err)
	}
	names, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "keyq:{gemini}:") {
			t.Errorf("Redis key %q outside the pool's prefix and hash tag", n)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	rdb, _ := redistest.Open(t)
	if _, err := keyring.New(rdb, nil, keyring.Options{}); err == nil {
		t.Error("New with no keys: want an error")
	}
	if _, err := keyring.New(rdb, []keyring.Key{keyring.NewKey(2, "x")}, keyring.Options{}); err == nil {
		t.Error("New with a misnumbered key: want an error")
	}
	if _, err := keyring.New(nil, testKeys(t, 1), keyring.Options{}); err == nil {
		t.Error("New with a nil client: want an error")
	}
}
