package api

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/keyq/keyq/keyring"
)

// keysRefresh is how often the keys page reloads itself.
const keysRefresh = 5 * time.Second

var keysPage = template.Must(template.New("keys").Funcs(template.FuncMap{
	"since": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		d := time.Until(*t).Round(time.Second)
		if d <= 0 {
			return "now"
		}
		return "in " + d.String()
	},
	"failures": func(m map[string]int64) string {
		parts := make([]string, 0, len(m))
		for class, n := range m {
			parts = append(parts, fmt.Sprintf("%s %d", class, n))
		}
		sort.Strings(parts)
		return strings.Join(parts, ", ")
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>keyq keys</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:13px}
.ready{color:#176f2c}.cooling{color:#a15c00;font-weight:bold}.disabled{color:#b00020;font-weight:bold}
.err{color:#b00020}small{color:#666}
</style></head><body>
<h1>keyq keys</h1>
{{if .Err}}<p class="err">{{.Err}}</p>{{end}}
{{if .Keys}}<table>
<tr><th>#</th><th>fingerprint</th><th>project</th><th>state</th><th>until</th><th>reason</th><th>picks</th><th>successes</th><th>failures</th></tr>
{{range .Keys}}<tr><td class="n">{{.Index}}</td><td><code>{{.Fingerprint}}</code></td><td>{{.Project}}</td><td class="{{.State}}">{{.State}}</td><td>{{since .Until}}</td><td>{{.Reason}}</td><td class="n">{{.Picks}}</td><td class="n">{{.Successes}}</td><td>{{failures .Failures}}</td></tr>
{{end}}</table>{{else if not .Err}}<p>No key has been announced yet: start a worker.</p>{{end}}
<p><small>{{.Now}}, refreshed every {{.Refresh}} s. Keys are named by index and fingerprint (first 12 hex digits of their SHA-256), never shown. <a href="{{.Monitoring}}/">queues</a></small></p>
</body></html>
`))

// keysPage answers GET /keys: the table of /api/keys as HTML, reloading
// itself every few seconds.
func (s *Server) keysPage(w http.ResponseWriter, r *http.Request) error {
	data := struct {
		Keys       []keyring.Status
		Err        string
		Now        string
		Refresh    int
		Monitoring string
	}{Now: time.Now().UTC().Format(time.RFC3339), Refresh: int(keysRefresh / time.Second), Monitoring: DashboardPath}
	status := http.StatusOK
	if s.keys == nil {
		data.Err = errNoKeyAdmin.Message
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
		defer cancel()
		st, err := s.keys.Statuses(ctx)
		if err != nil {
			s.log.Error("keys page: cannot read the key pool", "err", err)
			data.Err, status = errRedis.Error(), http.StatusServiceUnavailable
		}
		data.Keys = st
	}
	var b bytes.Buffer
	if err := keysPage.Execute(&b, data); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
	return nil
}
