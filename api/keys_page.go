package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/keyq/keyq/keyring"
)

// The /keys console: the pool at a glance (counts by state, each
// project's quota use against its budgets, calls a minute for the last
// hour), a filtered, paged table of keys with live countdowns, and, when
// the dashboard is writable, enable/disable buttons. Server-rendered; the
// only script (nonce'd) runs the countdowns.

//go:embed keys_page.html
var keysPageSource string

var keysPage = template.Must(template.New("keys").Funcs(template.FuncMap{
	"ms":     func(t *time.Time) int64 { return t.UnixMilli() },
	"ms2":    func(t time.Time) int64 { return t.UnixMilli() },
	"until":  func(t *time.Time) string { return untilText(*t) },
	"until2": untilText,
	"ago": func(t *time.Time) string {
		return time.Since(*t).Round(time.Second).String() + " ago"
	},
	"bar":   bar,
	"count": func(m map[keyring.State]int, s string) int { return m[keyring.State(s)] },
}).Parse(keysPageSource))

// consoleProjects is how many projects the console lists (the most called
// today first); a ?project= filter shows that one.
const consoleProjects = 20

type consoleData struct {
	Pool, Err, Now, Monitoring, Nonce, CSRF, Back string
	Summary                                       *keyring.Summary
	Projects                                      []projectRow
	ProjectCount                                  int
	MoreProjects, Writable                        bool
	States                                        []keyring.State
	State                                         keyring.State
	Project                                       string
	Keys                                          []keyRow
	Next                                          string
}

type projectRow struct {
	keyring.ProjectSummary
	Chart template.HTML
}

// keyRow is a key's status with what the console derives from it.
type keyRow struct {
	keyring.Status
	LastError                        string
	LastErrorAt, LastUsed            *time.Time
	Rate                             string
	KeyFaults, Upstream              int64
	KeyFaultClasses, UpstreamClasses string
}

// keyFaultClasses are the failure classes that are the key's own doing;
// every other class (the model's capacity, timeouts, the request, quota)
// is not held against it.
var keyFaultClasses = map[string]bool{"key_invalid": true, "unauthenticated": true, "permission_denied": true, "billing": true}

func rowOf(s keyring.Status) keyRow {
	r := keyRow{Status: s, LastError: s.LastFailure, LastErrorAt: s.LastFailureAt, LastUsed: s.LastUsedAt}
	var kc, uc []string
	for class, n := range s.Failures {
		if keyFaultClasses[class] {
			r.KeyFaults += n
			kc = append(kc, fmt.Sprintf("%s %d", class, n))
		} else {
			r.Upstream += n
			uc = append(uc, fmt.Sprintf("%s %d", class, n))
		}
	}
	sort.Strings(kc)
	sort.Strings(uc)
	r.KeyFaultClasses, r.UpstreamClasses = strings.Join(kc, ", "), strings.Join(uc, ", ")
	if d := s.Successes + r.KeyFaults; d > 0 {
		r.Rate = fmt.Sprintf("%.1f%%", 100*float64(s.Successes)/float64(d))
	}
	return r
}

// keysPage answers GET /keys.
func (s *Server) keysPage(w http.ResponseWriter, r *http.Request) error {
	q, err := keysQuery(r)
	if err != nil {
		return err
	}
	d := consoleData{Pool: s.pool, Now: time.Now().UTC().Format(time.RFC3339), Monitoring: DashboardPath,
		Nonce: nonce(), CSRF: s.csrfToken(), Back: r.URL.RequestURI(), Writable: s.dashWritable,
		States: []keyring.State{"", keyring.StateReady, keyring.StateCooling, keyring.StateDisabled}, State: q.State, Project: q.Project}
	status := http.StatusOK
	if s.keys == nil {
		d.Err = errNoKeyAdmin.Message
	} else if err := s.fillConsole(r.Context(), &d, q); err != nil {
		s.log.Error("keys page: cannot read the key pool", "err", err)
		d.Err, status = errRedis.Error(), http.StatusServiceUnavailable
	}
	var b bytes.Buffer
	if err := keysPage.Execute(&b, d); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-"+d.Nonce+"'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
	return nil
}

func (s *Server) fillConsole(ctx context.Context, d *consoleData, q keyring.Query) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	sum, err := s.keys.Summary(ctx)
	if err != nil {
		return err
	}
	d.Summary, d.ProjectCount = &sum, len(sum.Projects)
	ps := append([]keyring.ProjectSummary(nil), sum.Projects...)
	if q.Project != "" {
		ps = slicesFilter(ps, q.Project)
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].CallsToday > ps[j].CallsToday })
	d.MoreProjects = len(ps) > consoleProjects
	ps = ps[:min(len(ps), consoleProjects)]
	charts := s.callCharts(ctx, ps)
	for i, p := range ps {
		d.Projects = append(d.Projects, projectRow{ProjectSummary: p, Chart: charts[i]})
	}
	page, err := s.keys.Page(ctx, q)
	if err != nil {
		return err
	}
	for _, st := range page.Keys {
		d.Keys = append(d.Keys, rowOf(st))
	}
	if page.Next != "" {
		v := url.Values{"cursor": {page.Next}}
		if q.State != "" {
			v.Set("state", string(q.State))
		}
		if q.Project != "" {
			v.Set("project", q.Project)
		}
		d.Next = "/keys?" + v.Encode()
	}
	return nil
}

func slicesFilter(ps []keyring.ProjectSummary, name string) []keyring.ProjectSummary {
	for _, p := range ps {
		if p.Project == name {
			return []keyring.ProjectSummary{p}
		}
	}
	return nil
}

// callCharts draws each project's calls a minute over the last hour as a
// small inline SVG, from the keyring's per-minute counts when the key view
// keeps them.
func (s *Server) callCharts(ctx context.Context, ps []keyring.ProjectSummary) []template.HTML {
	out := make([]template.HTML, len(ps))
	cs, ok := s.keys.(callSource)
	if !ok || len(ps) == 0 {
		return out
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Project
	}
	series, err := cs.CallsPerMinute(ctx, names)
	if err != nil {
		return out
	}
	for i, n := range names {
		out[i] = sparkline(series[n])
	}
	return out
}

// callSource is what the chart needs of the key view.
type callSource interface {
	CallsPerMinute(ctx context.Context, projects []string) (map[string][]int, error)
}

// sparkline draws counts (oldest first) as a 120x24 SVG polyline.
func sparkline(counts []int) template.HTML {
	if len(counts) == 0 {
		return ""
	}
	peak := 1
	for _, c := range counts {
		peak = max(peak, c)
	}
	var pts strings.Builder
	step := 120.0 / float64(max(len(counts)-1, 1))
	for i, c := range counts {
		fmt.Fprintf(&pts, "%.1f,%.1f ", float64(i)*step, 23-22*float64(c)/float64(peak))
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="120" height="24" viewBox="0 0 120 24" role="img" aria-label="calls a minute, peak %d"><polyline fill="none" stroke="#4a7dd6" stroke-width="1.5" points="%s"/></svg> <small>peak %d</small>`,
		peak, strings.TrimSpace(pts.String()), peak))
}

// bar draws used against a budget; no budget, no bar.
func bar(used, budget int) template.HTML {
	if budget <= 0 {
		return ""
	}
	pct := min(100, 100*used/budget)
	class := ""
	switch {
	case pct >= 100:
		class = ` class="full"`
	case pct >= 80:
		class = ` class="hot"`
	}
	return template.HTML(fmt.Sprintf(`<span class="bar" title="%d%%"><i%s style="width:%d%%"></i></span>`, pct, class, pct))
}

func untilText(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d <= 0 {
		return "now"
	}
	return "in " + d.String()
}

func nonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawStdEncoding.EncodeToString(b[:])
}

// csrfToken is the token the console's forms carry. It is derived from the
// dashboard password, so every API replica accepts it, and a page of
// another origin cannot read it.
func (s *Server) csrfToken() string {
	m := hmac.New(sha256.New, s.csrfKey[:])
	m.Write([]byte("keyq /keys actions"))
	return hex.EncodeToString(m.Sum(nil))
}

// postKeysAction answers the console's POST /keys/{fingerprint}/{action}
// (enable or disable), then sends the operator back to the page.
func (s *Server) postKeysAction(w http.ResponseWriter, r *http.Request) error {
	if !s.dashWritable {
		return &Error{Code: CodeForbidden, Message: "the dashboard is read-only; set DASHBOARD_READONLY=false on keyq api to allow changes"}
	}
	if err := r.ParseForm(); err != nil {
		return &Error{Code: CodeInvalidRequest, Message: "the form could not be read"}
	}
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(s.csrfToken())) || crossSite(r) {
		return &Error{Code: CodeForbidden, Message: "the form's CSRF token is missing or wrong: reload /keys and try again"}
	}
	if err := s.keyAction(r.Context(), r.PathValue("fingerprint"), r.PathValue("action"), "disabled by an operator on /keys"); err != nil {
		return err
	}
	back := r.PostForm.Get("back")
	if !strings.HasPrefix(back, "/keys") || strings.HasPrefix(back, "//") {
		back = "/keys"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

// crossSite reports a request a browser marks as coming from another site.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err != nil || u.Host != r.Host
	}
	return false
}
