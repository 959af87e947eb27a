package keyring

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"

	"github.com/redis/go-redis/v9"
)

// Defaults for Options.
const (
	DefaultPrefix = "keyq"
	DefaultPool   = "gemini"
)

// Options tune a Ring. The zero value uses the defaults.
type Options struct {
	// Prefix starts every Redis key of the keyring. Default "keyq".
	Prefix string
	// Pool names the rotation; replicas that share a pool share one counter.
	// Default "gemini".
	Pool string
}

// Ring is the pool of keys and its rotation, shared through Redis by every
// process that opens a Ring with the same Prefix and Pool. It is safe for
// concurrent use.
type Ring struct {
	rdb      redis.UniversalClient
	keys     []Key
	rotation string
}

//go:embed pick.lua
var pickSource string

var pickScript = redis.NewScript(pickSource)

// New opens the ring of keys on rdb. Every replica must be given the same
// keys in the same order for the rotation to be one rotation.
func New(rdb redis.UniversalClient, keys []Key, opts Options) (*Ring, error) {
	if rdb == nil {
		return nil, errors.New("keyring: nil Redis client")
	}
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	for i, k := range keys {
		if k.Index != i+1 || k.secret == "" {
			return nil, fmt.Errorf("keyring: key at position %d has index %d: build keys with ParseKeys or NewKey(position, secret)", i+1, k.Index)
		}
	}
	prefix, pool := cmp.Or(opts.Prefix, DefaultPrefix), cmp.Or(opts.Pool, DefaultPool)
	return &Ring{rdb: rdb, keys: keys, rotation: rotationKey(prefix, pool)}, nil
}

// Keys returns the keys of the ring in their configured order.
func (r *Ring) Keys() []Key { return append([]Key(nil), r.keys...) }

// Len is the number of keys.
func (r *Ring) Len() int { return len(r.keys) }

// Pick returns the next key of the fleet-wide rotation, in one Redis round
// trip. Keys in skip are passed over while the ring has any other; other
// replicas move the counter meanwhile, so "next" is the next free slot from
// wherever the shared counter stands, not simply the caller's last key + 1.
func (r *Ring) Pick(ctx context.Context, skip *Skip) (Key, error) {
	args := make([]any, 1, 1+skip.Len())
	args[0] = len(r.keys)
	for slot := range skip.slots() {
		args = append(args, slot)
	}
	res, err := pickScript.Run(ctx, r.rdb, []string{r.rotation}, args...).Result()
	if err != nil {
		return Key{}, fmt.Errorf("keyring: pick: %w", err)
	}
	slot, err := firstInt(res)
	if err != nil {
		return Key{}, err
	}
	if slot < 0 || slot >= int64(len(r.keys)) {
		return Key{}, fmt.Errorf("keyring: pick: slot %d out of range for %d keys (another replica with another key list?)", slot, len(r.keys))
	}
	return r.keys[slot], nil
}

// firstInt reads the first integer of a script's array reply, checking its
// type instead of trusting it.
func firstInt(res any) (int64, error) {
	arr, ok := res.([]any)
	if !ok || len(arr) == 0 {
		return 0, fmt.Errorf("keyring: unexpected script reply %T", res)
	}
	n, ok := arr[0].(int64)
	if !ok {
		return 0, fmt.Errorf("keyring: unexpected script reply element %T", arr[0])
	}
	return n, nil
}

// Skip is the set of keys one job run has tried. The zero value (and nil) is
// empty and ready to use; it is not safe for concurrent use.
type Skip struct{ set map[int]struct{} }

// Add marks the key as tried.
func (s *Skip) Add(k Key) {
	if s.set == nil {
		s.set = make(map[int]struct{})
	}
	s.set[k.Index-1] = struct{}{}
}

// Has reports whether the key was marked.
func (s *Skip) Has(k Key) bool {
	if s == nil {
		return false
	}
	_, ok := s.set[k.Index-1]
	return ok
}

// Len is the number of marked keys.
func (s *Skip) Len() int {
	if s == nil {
		return 0
	}
	return len(s.set)
}

// Clear forgets every mark.
func (s *Skip) Clear() { clear(s.set) }

func (s *Skip) slots() map[int]struct{} {
	if s == nil {
		return nil
	}
	return s.set
}

// Clone returns an independent copy.
func (s *Skip) Clone() Skip { return Skip{set: maps.Clone(s.slots())} }
