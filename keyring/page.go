package keyring

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

// Query selects one page of keys for Admin.Page.
type Query struct {
	// State keeps only keys in that state: StateReady (in the rotation,
	// least recently picked first), StateCooling (waiting, soonest back
	// first) or StateDisabled (longest disabled first). "" keeps every key,
	// in index order.
	State State
	// Project keeps only that project's keys, in index order.
	Project string
	// Cursor is Page.Next of the page before; "" for the first page.
	Cursor string
	// Limit is the most keys on the page. Default 100, at most 1000.
	Limit int
}

// Page is one page of keys.
type Page struct {
	Keys []Status `json:"keys"`
	// Next is the cursor of the next page, "" after the last one.
	Next string `json:"next,omitempty"`
}

// Page reads one page of keys, reading only those keys' state: its cost
// follows Limit, not the pool's size. Cursors are positions: a key that
// changes state between two pages may be seen twice or not at all.
func (a *Admin) Page(ctx context.Context, q Query) (Page, error) {
	limit, off, err := q.bounds()
	if err != nil {
		return Page{}, err
	}
	fps, more, err := a.pageFingerprints(ctx, q, off, limit)
	if err != nil || len(fps) == 0 {
		return Page{Keys: []Status{}}, err
	}
	vals, err := a.rdb.HMGet(ctx, a.names.members(), fps...).Result()
	if err != nil {
		return Page{}, fmt.Errorf("keyring: page: %w", err)
	}
	ms := make([]member, 0, len(fps))
	for i, v := range vals {
		if s, ok := v.(string); ok { // else: no longer in the pool
			ms = append(ms, parseMember(fps[i], s))
		}
	}
	if q.Project != "" {
		sortMembers(ms)
		if q.State != "" || off > 0 || len(ms) > limit {
			return a.projectPage(ctx, ms, q.State, off, limit)
		}
	}
	st, err := a.statuses(ctx, ms)
	if err != nil {
		return Page{}, err
	}
	p := Page{Keys: st}
	if more {
		p.Next = strconv.Itoa(off + limit)
	}
	return p, nil
}

// bounds reads the query's page size (default 100, at most 1000) and its
// cursor, a position.
func (q Query) bounds() (limit, off int, err error) {
	limit = min(cmp.Or(max(q.Limit, 0), 100), 1000)
	if q.Cursor != "" {
		if off, err = strconv.Atoi(q.Cursor); err != nil || off < 0 {
			return 0, 0, fmt.Errorf("keyring: page: bad cursor %q", q.Cursor)
		}
	}
	return limit, off, nil
}

// pageFingerprints lists the fingerprints of the page: a project's keys
// (all of them; projects are small), or one slice of the index of the
// state asked for (more: there are keys after it).
func (a *Admin) pageFingerprints(ctx context.Context, q Query, off, limit int) (fps []string, more bool, err error) {
	n := a.names
	if q.Project != "" {
		list, err := a.rdb.HGet(ctx, n.projKeys(), q.Project).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, false, fmt.Errorf("keyring: page: %w", err)
		}
		return strings.Fields(list), false, nil
	}
	src := n.order()
	switch q.State {
	case "":
	case StateReady:
		src = n.ring()
	case StateCooling:
		src = n.wait()
	case StateDisabled:
		src = n.disabled()
	default:
		return nil, false, fmt.Errorf("keyring: page: unknown state %q", q.State)
	}
	fps, err = a.rdb.ZRange(ctx, src, int64(off), int64(off+limit)).Result()
	if err != nil {
		return nil, false, fmt.Errorf("keyring: page: %w", err)
	}
	if len(fps) > limit {
		return fps[:limit], true, nil
	}
	return fps, false, nil
}

// projectPage filters a project's keys by state and cuts the page.
func (a *Admin) projectPage(ctx context.Context, ms []member, state State, off, limit int) (Page, error) {
	all, err := a.statuses(ctx, ms)
	if err != nil {
		return Page{}, err
	}
	var keep []Status
	for _, s := range all {
		if state == "" || s.State == state {
			keep = append(keep, s)
		}
	}
	keep = keep[min(off, len(keep)):]
	p := Page{Keys: keep[:min(limit, len(keep))]}
	if len(keep) > limit {
		p.Next = strconv.Itoa(off + limit)
	}
	return p, nil
}

// Summary is the pool at a glance: cheap enough for every scrape.
type Summary struct {
	// Keys is the number of keys in the pool (all replicas' keys).
	Keys int `json:"keys"`
	// States counts keys by state (ready, cooling, disabled); keys of a
	// paused pool count where they would be without the pause.
	States map[State]int `json:"states"`
	// PausedUntil is set while the whole pool rests after a 429 storm.
	PausedUntil *time.Time `json:"paused_until,omitempty"`
	PauseReason string     `json:"pause_reason,omitempty"`
	// Projects, by name.
	Projects []ProjectSummary `json:"projects"`
}

// ProjectSummary is one project's keys and budgets.
type ProjectSummary struct {
	Project string        `json:"project"`
	Keys    int           `json:"keys"`
	States  map[State]int `json:"states"`
	// CoolingUntil is when the project's own cooldown (a 429) ends.
	CoolingUntil *time.Time `json:"cooling_until,omitempty"`
	// CallsThisMinute are the calls in the per-minute window (a minute
	// plus RPMMargin), against RPM (0: no limit).
	CallsThisMinute int `json:"calls_this_minute"`
	RPM             int `json:"rpm"`
	// CallsToday are the calls this Pacific day, against RPD (0: no
	// limit); the day's quota resets at DayResets.
	CallsToday int       `json:"calls_today"`
	RPD        int       `json:"rpd"`
	DayResets  time.Time `json:"day_resets"`
}

// Summary counts keys by state, overall and per project, with each
// project's calls this minute and today against its budgets. It reads the
// pool's indexes, not every key's hash: two pipelines, O(keys + projects)
// small replies (about 10-30 ms at 10,000 keys).
func (a *Admin) Summary(ctx context.Context) (Summary, error) {
	n := a.names
	now := a.opts.Now()
	day := now.In(pacific).Format("2006-01-02")
	pipe := a.rdb.Pipeline()
	tm := pipe.Time(ctx)
	pause := pipe.PTTL(ctx, n.pause())
	pauseWhy := pipe.Get(ctx, n.pause())
	members := pipe.HGetAll(ctx, n.members())
	wait := pipe.ZRangeWithScores(ctx, n.wait(), 0, -1)
	disabled := pipe.ZRange(ctx, n.disabled(), 0, -1)
	projUntil := pipe.HGetAll(ctx, n.projUntil())
	rpd := pipe.HGetAll(ctx, n.rpd(day))
	logged := pipe.Exists(ctx, n.rpmLog())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Summary{}, fmt.Errorf("keyring: summary: %w", err)
	}
	nowMs := tm.Val().UnixMilli()
	waiting := map[string]bool{}
	for _, z := range wait.Val() {
		if int64(z.Score) > nowMs {
			waiting[z.Member.(string)] = true
		}
	}
	off := map[string]bool{}
	for _, fp := range disabled.Val() {
		off[fp] = true
	}
	s := Summary{States: map[State]int{StateReady: 0, StateCooling: 0, StateDisabled: 0}}
	if p := pause.Val(); p > 0 {
		s.PausedUntil, s.PauseReason = msTime(nowMs+p.Milliseconds()), pauseWhy.Val()
	}
	resets := NextPacificMidnight(now)
	tallyProjects(&s, members.Val(), waiting, off, func(p string) ProjectSummary {
		ps := ProjectSummary{Project: p, States: map[State]int{StateReady: 0, StateCooling: 0, StateDisabled: 0},
			RPM: a.opts.RPM, RPD: a.opts.RPD, DayResets: resets}
		ps.CallsToday, _ = strconv.Atoi(rpd.Val()[p])
		if u, _ := strconv.ParseInt(projUntil.Val()[p], 10, 64); u > nowMs {
			ps.CoolingUntil = msTime(u)
		}
		return ps
	})
	if logged.Val() > 0 {
		if err := a.callsThisMinute(ctx, nowMs, s.Projects); err != nil {
			return Summary{}, err
		}
	}
	return s, nil
}

// tallyProjects counts the pool's keys by state, overall and per project
// (made by newProject), into s; projects come out sorted by name.
func tallyProjects(s *Summary, members map[string]string, waiting, off map[string]bool, newProject func(string) ProjectSummary) {
	byName := map[string]*ProjectSummary{}
	for fp, v := range members {
		m := parseMember(fp, v)
		ps := byName[m.project]
		if ps == nil {
			p := newProject(m.project)
			ps = &p
			byName[m.project] = ps
		}
		st := StateReady
		switch {
		case off[fp]:
			st = StateDisabled
		case waiting[fp]:
			st = StateCooling
		}
		ps.Keys++
		ps.States[st]++
		s.States[st]++
		s.Keys++
	}
	s.Projects = make([]ProjectSummary, 0, len(byName))
	for _, ps := range byName {
		s.Projects = append(s.Projects, *ps)
	}
	sort.Slice(s.Projects, func(i, j int) bool { return s.Projects[i].Project < s.Projects[j].Project })
}

// callsThisMinute counts each project's calls in its per-minute window.
func (a *Admin) callsThisMinute(ctx context.Context, nowMs int64, ps []ProjectSummary) error {
	from := nowMs - (time.Minute + a.opts.RPMMargin).Milliseconds() + 1
	pipe := a.rdb.Pipeline()
	counts := make([]*redis.IntCmd, len(ps))
	for i, p := range ps {
		counts[i] = pipe.ZLexCount(ctx, a.names.rpmLog(), "["+p.Project+"|"+fmt.Sprintf("%015d", from), "("+p.Project+"}")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("keyring: summary: %w", err)
	}
	for i := range ps {
		ps[i].CallsThisMinute = int(counts[i].Val())
	}
	return nil
}
