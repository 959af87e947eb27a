package usage

import (
	"math"
	"testing"

	"github.com/keyq/keyq/internal/redistest"
)

func TestRecordAndQuery(t *testing.T) {
	rdb, _ := redistest.Open(t)
	s := NewStore(rdb, "t")
	prices, err := ParsePrices("m1=1/10/10/0.1")
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Model: "m1", Project: "a", Key: "fp1", Token: "tok1", Prompt: 1_000_000, Candidates: 100_000, Thoughts: 50_000, Cached: 400_000, Total: 1_150_000}
	for range 2 {
		if err := s.Record(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	e.Tier, e.Project, e.Key, e.Token = "flex", "b", "fp2", ""
	if err := s.Record(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	day := s.Today()
	rows, err := s.Query(t.Context(), day, day, ByProject, prices, nil)
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %+v, err %v", rows, err)
	}
	// One call: 0.6M input at $1 + 0.4M cached at $0.1 + 0.1M out at $10 + 0.05M thinking at $10 = $2.14.
	if a := rows[0]; a.Group != "a" || a.Counts[KindCalls] != 2 || a.Counts[KindPrompt] != 2_000_000 || math.Abs(a.CostUSD-4.28) > 1e-9 {
		t.Errorf("project a: %+v", a)
	}
	if b := rows[1]; b.Group != "b" || math.Abs(b.CostUSD-1.07) > 1e-9 {
		t.Errorf("project b (flex, half price): %+v", b)
	}
	rows, _ = s.Query(t.Context(), day, day, ByToken, prices, func(g string) bool { return g == "-" })
	if len(rows) != 1 || rows[0].Counts[KindTotal] != 1_150_000 {
		t.Errorf("open API's row: %+v", rows)
	}
	if ttl := rdb.TTL(t.Context(), dayKey("t", day)).Val(); ttl <= 0 || ttl > Retention {
		t.Errorf("TTL %v", ttl)
	}
	// By model and by day: every answer, from the token fields, over
	// both tokens; the "m" fields days written before kept are not
	// counted again.
	if err := rdb.HIncrBy(t.Context(), dayKey("t", day), field("m", "m1", "m1", "standard", KindCalls), 2).Err(); err != nil {
		t.Fatal(err)
	}
	for by, group := range map[string]string{ByModel: "m1", ByDay: day} {
		rows, err = s.Query(t.Context(), day, day, by, prices, nil)
		if err != nil || len(rows) != 1 || rows[0].Group != group || rows[0].Counts[KindCalls] != 3 || math.Abs(rows[0].CostUSD-4.28-1.07) > 1e-9 {
			t.Errorf("by %s: %+v, %v; want one row %q of 3 calls, $5.35", by, rows, err, group)
		}
	}
	if _, err := s.Query(t.Context(), day, day, "color", prices, nil); err == nil {
		t.Error("by=color accepted")
	}
}
