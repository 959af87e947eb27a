package usage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Retention is how long a day's sums stay in Redis.
const Retention = 35 * 24 * time.Hour

// The kinds of count kept for each dimension. A kind string, once
// shipped, never changes (metrics and the usage answer use them).
const (
	KindPrompt     = "prompt"     // promptTokenCount (cached ones included)
	KindCandidates = "candidates" // candidatesTokenCount
	KindThoughts   = "thoughts"   // thoughtsTokenCount
	KindCached     = "cached"     // cachedContentTokenCount
	KindTotal      = "total"      // totalTokenCount
	KindCalls      = "calls"      // answers counted
)

// Kinds lists the kinds, in the order answers show them.
var Kinds = []string{KindPrompt, KindCandidates, KindThoughts, KindCached, KindTotal, KindCalls}

// Dimensions a usage answer can be grouped by.
const (
	ByModel   = "model"
	ByProject = "project"
	ByKey     = "key"
	ByToken   = "token"
	ByDay     = "day"
)

// dimCode is the field prefix each grouping reads. Every field carries its
// model, and every answer is summed under its token ("-" for the open
// API), so sums by model and by day are read from the token fields: an
// answer writes three groupings, not four. (Days written before kept "m"
// fields too; they are not read, and expire with their day.)
var dimCode = map[string]string{ByModel: "t", ByProject: "p", ByKey: "k", ByToken: "t", ByDay: "t"}

// Entry is one billed answer.
type Entry struct {
	Model, Tier                                 string // Tier "" is standard
	Project                                     string
	Key                                         string // fingerprint
	Token                                       string // API token id; "" = open API
	Prompt, Candidates, Thoughts, Cached, Total int
}

// Store keeps the sums in Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// NewStore uses rdb under prefix (default "keyq").
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: cmp.Or(prefix, "keyq"), now: time.Now}
}

var pacific, _ = time.LoadLocation("America/Los_Angeles") // keyring embeds tzdata

// Day is the Pacific date of t, "2026-11-28": Gemini's days.
func Day(t time.Time) string { return t.In(pacific).Format(time.DateOnly) }

// Today is the current Pacific date.
func (s *Store) Today() string { return Day(s.now()) }

// Record adds e to today's sums: one pipeline of HINCRBYs and an EXPIRE.
func (s *Store) Record(ctx context.Context, e Entry) error {
	pipe := s.rdb.Pipeline()
	s.Queue(ctx, pipe, e)
	_, err := pipe.Exec(ctx)
	return err
}

// Queue adds Record's writes to pipe, for a caller that sends them with
// its own (a worker, with the job's result), and returns them to check
// once pipe is executed.
func (s *Store) Queue(ctx context.Context, pipe redis.Pipeliner, e Entry) []redis.Cmder {
	key := dayKey(s.prefix, s.Today())
	tier := cmp.Or(e.Tier, "standard")
	vals := map[string]int{KindPrompt: e.Prompt, KindCandidates: e.Candidates, KindThoughts: e.Thoughts,
		KindCached: e.Cached, KindTotal: e.Total, KindCalls: 1}
	dims := map[string]string{"p": cmp.Or(e.Project, "-"), "k": cmp.Or(e.Key, "-"), "t": cmp.Or(e.Token, "-")}
	var cmds []redis.Cmder
	for dim, v := range dims {
		for kind, n := range vals {
			if n != 0 {
				cmds = append(cmds, pipe.HIncrBy(ctx, key, field(dim, v, e.Model, tier, kind), int64(n)))
			}
		}
	}
	return append(cmds, pipe.Expire(ctx, key, Retention))
}

// Counts are the sums of one group.
type Counts map[string]int64

// Row is one group of a usage answer: its value ("gemini-3.5-flash",
// a project, a fingerprint, a token id or a day), its counts by kind and
// the estimated cost in USD.
type Row struct {
	Group   string  `json:"group"`
	Counts  Counts  `json:"tokens"`
	CostUSD float64 `json:"estimated_cost_usd"`
	Priced  bool    `json:"priced"` // every model in the row has a price
}

// Query sums the days from..to (Pacific dates, inclusive) grouped by by.
// keep, if set, drops groups it refuses.
func (s *Store) Query(ctx context.Context, from, to, by string, prices Prices, keep func(group string) bool) ([]Row, error) {
	return s.query(ctx, from, to, by, prices, keep, "")
}

// QueryModel sums one day of one model, grouped by by.
func (s *Store) QueryModel(ctx context.Context, day, by, model string, prices Prices) ([]Row, error) {
	return s.query(ctx, day, day, by, prices, nil, model)
}

func (s *Store) query(ctx context.Context, from, to, by string, prices Prices, keep func(group string) bool, model string) ([]Row, error) {
	days, err := daysBetween(from, to)
	if err != nil {
		return nil, err
	}
	code := dimCode[by]
	if code == "" {
		return nil, fmt.Errorf("by must be model, project, key, token or day")
	}
	rows := map[string]*Row{}
	for _, day := range days {
		h, err := s.rdb.HGetAll(ctx, dayKey(s.prefix, day)).Result()
		if err != nil {
			return nil, err
		}
		for f, v := range h {
			parts := strings.Split(f, "|")
			if len(parts) != 5 || parts[0] != code || model != "" && parts[2] != model {
				continue
			}
			group := parts[1]
			switch by {
			case ByModel:
				group = parts[2]
			case ByDay:
				group = day
			}
			if keep != nil && !keep(group) {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			r := rows[group]
			if r == nil {
				r = &Row{Group: group, Counts: Counts{}, Priced: true}
				rows[group] = r
			}
			r.Counts[parts[4]] += n
			cost, ok := prices.cost(parts[2], parts[3], parts[4], n)
			r.CostUSD += cost
			r.Priced = r.Priced && ok
		}
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// MaxDays is the longest range a query may cover.
const MaxDays = 35

func daysBetween(from, to string) ([]string, error) {
	f, err1 := time.Parse(time.DateOnly, from)
	t, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil {
		return nil, errors.New("from and to must be dates like 2026-11-28 (Pacific)")
	}
	if t.Before(f) || t.Sub(f) >= MaxDays*24*time.Hour {
		return nil, fmt.Errorf("to must be on or after from, at most %d days apart", MaxDays)
	}
	var days []string
	for d := f; !d.After(t); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(time.DateOnly))
	}
	return days, nil
}
