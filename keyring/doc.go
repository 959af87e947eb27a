// Package keyring holds the pool of API keys and the one rotation over it
// that every replica shares through Redis.
//
// A key is known by its 1-based index in the configured list and by its
// fingerprint (the first hex digits of its SHA-256); neither reveals the key,
// and only fingerprints-derived names and counters ever reach Redis.
//
// The keyring knows Redis and keys. It knows nothing of HTTP, asynq or Gemini:
// callers tell it which keys to skip, it answers with the next one.
package keyring
