package keyring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/redis/go-redis/v9"
)

// Membership is how the keys this replica holds compare with the fleet's.
//
// The pool in Redis is the union of the keys the live replicas hold (a
// replica is live while it picks or announced within the last 2 minutes).
// A replica is only ever given keys it holds; the rotation stays even
// over the keys the fleet holds, whatever order each replica lists them in.
// The fleet's set is the one most live replicas hold (ties: the larger,
// then the smaller digest), so that in a fleet where one replica differs,
// only that one differs from the fleet. Admin.Fleet shows the sets.
type Membership struct {
	// Replicas is the number of live replicas, this one included, and Sets
	// the number of distinct key sets among them (1 when all agree).
	Replicas int `json:"replicas"`
	Sets     int `json:"sets"`
	// Pool is the number of keys in the pool (every live replica's keys),
	// Fleet the number in the fleet's set, Held the number this replica holds.
	Pool  int `json:"pool"`
	Fleet int `json:"fleet"`
	Held  int `json:"held"`
	// Missing are the fingerprints of the fleet's set that this replica
	// lacks (other replicas use them, this one never will); Extra the
	// fingerprints it holds that the fleet's set lacks. Sorted.
	Missing []string `json:"missing,omitempty"`
	Extra   []string `json:"extra,omitempty"`
}

// Differs reports whether this replica's keys differ from the fleet's.
func (m Membership) Differs() bool { return len(m.Missing) > 0 || len(m.Extra) > 0 }

// Membership compares this replica's keys with the fleet's, by
// fingerprint. It announces this replica first if Redis does not know it.
// It reads every live set: call it now and then (every 30 s, say), not per
// job.
func (r *Ring) Membership(ctx context.Context) (Membership, error) {
	s := r.snap.Load()
	for try := 0; ; try++ {
		m, holders, me, err := r.liveReplicas(ctx, s)
		if err != nil {
			return Membership{}, err
		}
		if !me {
			if try > 0 {
				return Membership{}, errors.New("keyring: membership: this replica's announce did not hold")
			}
			if err := r.announce(ctx, s); err != nil {
				return Membership{}, err
			}
			continue
		}
		m.Sets = len(holders)
		fleet, err := r.fleetDigest(ctx, holders)
		if err != nil {
			return Membership{}, err
		}
		if fleet == s.digest {
			m.Fleet = len(s.keys)
			return m, nil
		}
		return r.compare(ctx, s, m, fleet)
	}
}

// liveReplicas counts the live replicas by the digest of the key set each
// holds; me reports whether Redis knows this replica with its own set.
func (r *Ring) liveReplicas(ctx context.Context, s *snapshot) (m Membership, holders map[string]int, me bool, err error) {
	n := r.admin.names
	pipe := r.admin.rdb.Pipeline()
	tm := pipe.Time(ctx)
	seen := pipe.ZRangeWithScores(ctx, n.seen(), 0, -1)
	reps := pipe.HGetAll(ctx, n.replicas())
	pool := pipe.HLen(ctx, n.members())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return m, nil, false, fmt.Errorf("keyring: membership: %w", err)
	}
	nowMs := tm.Val().UnixMilli()
	holders = map[string]int{}
	m = Membership{Pool: int(pool.Val()), Held: len(s.keys)}
	for _, z := range seen.Val() {
		id, _ := z.Member.(string)
		d, ok := reps.Val()[id]
		if !ok || int64(z.Score) < nowMs-liveFor.Milliseconds() {
			continue
		}
		if id == r.id && d == s.digest {
			me = true
		}
		m.Replicas++
		holders[d]++
	}
	return m, holders, me, nil
}

// fleetDigest is the digest of the fleet's set: the one most live replicas
// hold (ties: the larger, then the smaller digest).
func (r *Ring) fleetDigest(ctx context.Context, holders map[string]int) (string, error) {
	if len(holders) == 1 {
		for d := range holders {
			return d, nil
		}
	}
	pipe := r.admin.rdb.Pipeline()
	cards := map[string]*redis.IntCmd{}
	for d := range holders {
		cards[d] = pipe.SCard(ctx, r.admin.names.set(d))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("keyring: membership: %w", err)
	}
	sets := make([]KeySet, 0, len(holders))
	for d, h := range holders {
		sets = append(sets, KeySet{Digest: d, Keys: int(cards[d].Val()), Replicas: h})
	}
	sortSets(sets)
	return sets[0].Digest, nil
}

// compare fills m with the keys this replica lacks of the fleet's set, and
// those it holds that the fleet's set lacks.
func (r *Ring) compare(ctx context.Context, s *snapshot, m Membership, fleet string) (Membership, error) {
	fps, err := r.admin.rdb.SMembers(ctx, r.admin.names.set(fleet)).Result()
	if err != nil {
		return Membership{}, fmt.Errorf("keyring: membership: %w", err)
	}
	m.Fleet = len(fps)
	inFleet := make(map[string]bool, len(fps))
	for _, fp := range fps {
		inFleet[fp] = true
		if _, ok := s.byFP[fp]; !ok {
			m.Missing = append(m.Missing, fp)
		}
	}
	for _, k := range s.keys {
		if !inFleet[k.Fingerprint] {
			m.Extra = append(m.Extra, k.Fingerprint)
		}
	}
	slices.Sort(m.Missing)
	slices.Sort(m.Extra)
	return m, nil
}

// Fleet is the fleet's key sets as Admin sees them, without holding any
// key: for /api/keys and a metric on the API side.
type Fleet struct {
	// Replicas is the number of live replicas; Pool the keys in the pool.
	Replicas int `json:"replicas"`
	Pool     int `json:"pool"`
	// Sets are the distinct key sets among live replicas, the fleet's
	// (held by most replicas) first; more than one means some replicas
	// hold keys others lack.
	Sets []KeySet `json:"sets"`
}

// KeySet is one distinct set of keys and how many live replicas hold it.
type KeySet struct {
	// Digest names the set (a hash of its sorted fingerprints).
	Digest   string `json:"digest"`
	Keys     int    `json:"keys"`
	Replicas int    `json:"replicas"`
}

// Fleet reads the live replicas' key sets: a few small reads.
func (a *Admin) Fleet(ctx context.Context) (Fleet, error) {
	n := a.names
	pipe := a.rdb.Pipeline()
	tm := pipe.Time(ctx)
	seen := pipe.ZRangeWithScores(ctx, n.seen(), 0, -1)
	reps := pipe.HGetAll(ctx, n.replicas())
	pool := pipe.HLen(ctx, n.members())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Fleet{}, fmt.Errorf("keyring: fleet: %w", err)
	}
	nowMs := tm.Val().UnixMilli()
	f := Fleet{Pool: int(pool.Val())}
	holders := map[string]int{}
	for _, z := range seen.Val() {
		id, _ := z.Member.(string)
		d, ok := reps.Val()[id]
		if ok && int64(z.Score) >= nowMs-liveFor.Milliseconds() {
			f.Replicas++
			holders[d]++
		}
	}
	pipe = a.rdb.Pipeline()
	cards := map[string]*redis.IntCmd{}
	for d := range holders {
		cards[d] = pipe.SCard(ctx, n.set(d))
	}
	if len(cards) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return Fleet{}, fmt.Errorf("keyring: fleet: %w", err)
		}
	}
	for d, r := range holders {
		f.Sets = append(f.Sets, KeySet{Digest: d, Keys: int(cards[d].Val()), Replicas: r})
	}
	sortSets(f.Sets)
	return f, nil
}

// sortSets puts the fleet's set first: most replicas, then most keys,
// then the smaller digest.
func sortSets(s []KeySet) {
	sort.Slice(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.Replicas != b.Replicas {
			return a.Replicas > b.Replicas
		}
		if a.Keys != b.Keys {
			return a.Keys > b.Keys
		}
		return a.Digest < b.Digest
	})
}
