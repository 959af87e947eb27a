// Package keyring holds the pool of API keys and the one rotation over it
// that every replica shares through Redis.
//
// A key is known by its 1-based index in the configured list and by its
// fingerprint (the first hex digits of its SHA-256); neither reveals the key,
// and only fingerprints-derived names and counters ever reach Redis.
//
// The keyring knows Redis and keys. It knows nothing of HTTP, asynq or Gemini:
// callers tell it which keys to skip, it answers with the next one.
//
// # The pool in Redis
//
// The pool's membership lives in Redis: each replica announces the
// fingerprints it holds (Ring.Announce, or its first Pick), and the pool is
// the union of the live replicas' sets. The rotation is a sorted set of the
// usable keys scored by the number of their last pick: a pick takes the
// least recently picked key that this replica holds and the job has not
// tried (Skip), so the rotation is one and even for the whole fleet,
// whatever order replicas list their keys in, and a replica is never given
// a key it does not hold. Keys cooling down, over their project's budget
// or disabled are out of the rotation, in sorted sets scored by when they
// may be back, and come back by themselves. A pick is one round trip and
// O(log n) in the pool's size n (see pick.lua and redis_keys.go).
//
// Ring.Membership tells a replica how its keys differ from the fleet's;
// Admin.Page and Admin.Summary read the pool at any size.
package keyring
