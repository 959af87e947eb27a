package jobstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Indexed is one job of an owner's index.
type Indexed struct {
	ID    string
	Score int64 // enqueue time, Unix microseconds (batches: + the item's position)
}

// indexSpan is how long an entry stays in an owner's index: a job may wait
// and retry for a while before its retention starts, so twice the
// retention and a day. Entries whose job is gone are skipped when listed.
func indexSpan(retention time.Duration) time.Duration {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return 2*retention + 24*time.Hour
}

// Index adds jobs to their owner's index, and trims entries past the span.
func (s *Store) Index(ctx context.Context, owner string, jobs []Indexed, retention time.Duration) error {
	p := s.rdb.Pipeline()
	QueueIndex(ctx, p, owner, jobs, retention)
	_, err := p.Exec(ctx)
	return err
}

// QueueIndex adds Index's writes to pipe, for a caller that sends several
// owners' at once.
func QueueIndex(ctx context.Context, pipe redis.Pipeliner, owner string, jobs []Indexed, retention time.Duration) {
	key, span := OwnerKey(owner), indexSpan(retention)
	for i := 0; i < len(jobs); i += 1000 {
		zs := make([]redis.Z, 0, 1000)
		for _, j := range jobs[i:min(i+1000, len(jobs))] {
			zs = append(zs, redis.Z{Score: float64(j.Score), Member: j.ID})
		}
		pipe.ZAdd(ctx, key, zs...)
	}
	pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(time.Now().Add(-span).UnixMicro(), 10))
	pipe.Expire(ctx, key, span)
}

// Cursor is where a page of an owner's index starts: after (older than)
// the entry it names.
type Cursor struct {
	Score int64
	ID    string
}

// String is the cursor as clients carry it.
func (c Cursor) String() string { return strconv.FormatInt(c.Score, 36) + "." + c.ID }

// ParseCursor reads a cursor made by String.
func ParseCursor(s string) (Cursor, error) {
	a, id, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(a, 36, 64)
	if !ok || err != nil || id == "" || len(id) > 64 {
		return Cursor{}, errors.New("the cursor is not one this API gave")
	}
	return Cursor{Score: n, ID: id}, nil
}

// Page returns up to n entries of an owner's index, newest first, after
// the cursor (nil: from the newest).
func (s *Store) Page(ctx context.Context, owner string, after *Cursor, n int) ([]Indexed, error) {
	start := "+inf"
	if after != nil {
		start = strconv.FormatInt(after.Score, 10)
	}
	// Entries of the cursor's own score come first and are skipped up to
	// and including the cursor's id; ask for a few more to make up.
	zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: OwnerKey(owner), Start: start, Stop: "-inf",
		ByScore: true, Rev: true, Count: int64(n + 64)}).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Indexed, 0, n)
	for _, z := range zs {
		id, _ := z.Member.(string)
		sc := int64(z.Score)
		if after != nil && sc == after.Score && id >= after.ID {
			continue
		}
		if out = append(out, Indexed{ID: id, Score: sc}); len(out) == n {
			break
		}
	}
	return out, nil
}
