package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultAddr is where keyq api listens when API_ADDR is unset.
const DefaultAddr = ":8080"

// DefaultMaxConns is how many connections Serve holds open at once when
// Options.MaxConns is 0. Each costs the process a goroutine and its
// buffers (some 20 KB, more while a body is read), so this bounds the
// memory a flood of connections can take (10,000 at once took keyq api
// from 18 MB to 250 MB without it).
const DefaultMaxConns = 1024

// maxHeaderBytes bounds a request's header, like nginx's default (4 x 8
// KiB): a bearer token, an Idempotency-Key and a browser's cookies fit
// many times over; net/http's own default is 1 MiB per connection.
const maxHeaderBytes = 32 << 10

// afterFlood is how long after a flood ebbs its memory is handed back.
const afterFlood = 5 * time.Second

// drainTimeout bounds how long Serve waits for requests in flight once its
// context ends.
const drainTimeout = 15 * time.Second

// Serve answers requests on ln until ctx ends, then drains the requests in
// flight. The caller listens first, so that a taken port fails at once.
//
// At most Options.MaxConns connections are open at once; the next waits,
// unaccepted, in the kernel's listen backlog, where it costs the process
// nothing, and is taken when one closes. While every slot is taken, idle
// keep-alive connections are closed and answers say Connection: close, so
// that idle clients cannot hold the slots others wait for.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, newLimitListener(ln, s.maxConns))
}

func (s *Server) serve(ctx context.Context, ln *limitListener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // a 10 MiB body on a slow link
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	ln.onFull = func(full bool) {
		if full {
			s.log.Warn("API at its connection limit: new connections wait, idle ones are closed", "max_conns", cap(ln.sem))
		}
		hs.SetKeepAlivesEnabled(!full) // false also closes the idle ones
		if !full {
			// The flood is ebbing. Once it is over, hand its memory back:
			// with nothing allocating afterwards, no GC would run and the
			// runtime would keep the flood's heap for good.
			time.AfterFunc(afterFlood, debug.FreeOSMemory)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	healCtx, stopHeal := context.WithCancel(ctx)
	defer stopHeal()
	go s.healLoop(healCtx)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("API shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// limitListener accepts a connection only while fewer than cap(sem) it
// accepted are open: Accept takes a slot first, and a connection gives its
// slot back when it is closed.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	// waiting counts Accept calls waiting for a slot.
	waiting atomic.Int32
	// onFull, if set, is told true when Accept finds every slot taken,
	// and false once half of them are free again.
	onFull func(full bool)
	full   atomic.Bool
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	if max <= 0 {
		max = DefaultMaxConns
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		if l.full.CompareAndSwap(false, true) && l.onFull != nil {
			l.onFull(true)
			if !l.full.Load() {
				// Half the slots came free while onFull ran, and
				// release's onFull(false) may have come first.
				l.onFull(false)
			}
		}
		l.waiting.Add(1)
		select {
		case l.sem <- struct{}{}:
			l.waiting.Add(-1)
		case <-l.done:
			l.waiting.Add(-1)
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) release() {
	<-l.sem
	if len(l.sem) <= cap(l.sem)/2 && l.full.CompareAndSwap(true, false) && l.onFull != nil {
		l.onFull(false)
	}
}

// Close stops the listener; an Accept waiting for a slot returns.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its listener's slot back on its first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}
