// Package usage sums the tokens of every Gemini answer per day (Pacific),
// model, tier, project, key fingerprint and API token in Redis, and turns
// them into an estimated cost with a price table. It never holds a key or
// a token: keys are fingerprints, tokens their ids.
package usage
