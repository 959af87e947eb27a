package worker

import "github.com/keyq/keyq/keyring"

// rounds is what one job run passes over when it picks: the keys it tried
// since it last walked the whole pool, and the keys that failed in
// themselves (invalid, denied...), which it passes over for the whole run.
type rounds struct {
	tried, bad keyring.Skip
}

// skip returns the keys to pass over now, starting a new round when every
// key of a pool of n has had its turn.
func (r *rounds) skip(n int) *keyring.Skip {
	if r.tried.Len() >= n {
		r.tried = r.bad.Clone()
		if r.tried.Len() >= n {
			r.tried.Clear()
		}
	}
	return &r.tried
}

// add records a key the run tried, and whether it failed in itself.
func (r *rounds) add(k keyring.Key, bad bool) {
	r.tried.Add(k)
	if bad {
		r.bad.Add(k)
	}
}
