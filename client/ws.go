package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// subscribeMsg is the client's subscribe message.
type subscribeMsg struct {
	Type          string  `json:"type"`
	ID            string  `json:"id"`
	Kind          string  `json:"kind"`
	Limit         int     `json:"limit,omitempty"`
	ParticipantID string  `json:"participant_id,omitempty"`
	Radius        *int    `json:"radius,omitempty"`
	SinceVersion  *uint64 `json:"since_version,omitempty"`
	Epoch         string  `json:"epoch,omitempty"`
}

// subscribeFrame builds the subscribe message, resuming from the last
// applied message when resume is true and there is one.
func (w *Watcher) subscribeFrame(resume bool) []byte {
	m := subscribeMsg{Type: "subscribe", ID: w.cfg.subscription, Kind: w.sub.kind}
	switch w.sub.kind {
	case KindTop:
		m.Limit = w.sub.limit
	case KindParticipant:
		m.ParticipantID = w.sub.participant
	case KindAround:
		m.ParticipantID = w.sub.participant
		r := w.sub.radius
		m.Radius = &r
	}
	if resume {
		if since, epoch, ok := w.resumePoint(); ok {
			m.SinceVersion, m.Epoch = &since, epoch
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// wsURL turns the base URL into the WebSocket address of the subscribe route.
func (w *Watcher) wsURL() string {
	u := w.c.path("v1", "leaderboards", w.board, "subscribe")
	switch {
	case strings.HasPrefix(u, "https://"):
		return "wss://" + u[len("https://"):]
	case strings.HasPrefix(u, "http://"):
		return "ws://" + u[len("http://"):]
	}
	return u
}

// routed asks the connection router for the WebSocket URL to use (only with
// WithRouter).
func (w *Watcher) routed(ctx context.Context) (string, bool) {
	if !w.cfg.router {
		return "", false
	}
	var out struct {
		URL string `json:"url"`
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.c.doCfg(rctx, &w.cfg, http.MethodGet, w.c.path("v1", "leaderboards", w.board, "connect"), nil, &out); err != nil || out.URL == "" {
		return "", false
	}
	return out.URL, true
}

// runWebSocket runs one WebSocket connection until it ends.
func (w *Watcher) runWebSocket(ctx context.Context) sessionResult {
	header := http.Header{}
	w.c.authorize(header, &w.cfg)
	h := &wsHandler{w: w, sess: session{id: w.cfg.subscription}, closed: make(chan struct{})}
	var tlsConf *tls.Config
	if t, ok := w.cfg.http.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		tlsConf = t.TLSClientConfig
	}
	var (
		conn *gws.Conn
		resp *http.Response
		body []byte
		err  error
	)
	// A dial is silent until the upgrade is answered: it gets the read
	// timeout, as an SSE request does (and at most gws's 10 s handshake).
	timeout := min(w.cfg.readTimeout, 10*time.Second)
	if routed, ok := w.routed(ctx); ok {
		conn, resp, body, err = dialWebSocket(ctx, timeout, routed, header, tlsConf, h)
	}
	if conn == nil { // no router, or its gateway could not be reached: the base URL
		conn, resp, body, err = dialWebSocket(ctx, timeout, w.wsURL(), header, tlsConf, h)
	}
	if err != nil {
		if resp != nil {
			e := parseAPIError(resp.StatusCode, resp.Header, body)
			if e.Code == CodeLeaderboardNotFound {
				return sessionResult{fatal: e}
			}
			if r, ok := rateLimited(e); ok {
				return r
			}
			return sessionResult{refused: true, err: e}
		}
		return sessionResult{err: err}
	}
	start := time.Now()
	h.conn = conn
	w.setTransport(TransportWebSocket)
	_ = conn.SetReadDeadline(time.Now().Add(w.cfg.readTimeout))
	go conn.ReadLoop()
	h.send(w.subscribeFrame(true))

	ping := time.NewTicker(max(w.cfg.readTimeout/3, time.Millisecond))
	defer ping.Stop()
	res := sessionResult{connected: true}
	for {
		select {
		case <-ctx.Done():
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = conn.WriteClose(1000, nil)
			<-h.closed
			res.err = ctx.Err()
			return res
		case <-h.closed:
			res.stable = time.Since(start) >= w.cfg.stableAfter()
			res.fatal, res.err = h.fatal, h.err
			return res
		case <-ping.C:
			h.send([]byte(`{"type":"ping"}`))
		}
	}
}

// wsHandler receives the events of one connection. gws calls its methods
// from the connection's read loop, one at a time.
type wsHandler struct {
	w      *Watcher
	conn   *gws.Conn
	sess   session
	fatal  error
	err    error
	closed chan struct{}
}

// send writes one message. Every write sets its own deadline: the
// connection keeps the last one set, so a write without one (a pong) would
// meet the deadline of an earlier write, long past.
func (h *wsHandler) send(b []byte) {
	_ = h.conn.SetWriteDeadline(time.Now().Add(h.w.cfg.writeTimeout))
	_ = h.conn.WriteMessage(gws.OpcodeText, b)
}

func (h *wsHandler) alive(c *gws.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(h.w.cfg.readTimeout))
}

func (h *wsHandler) OnOpen(c *gws.Conn) {}

func (h *wsHandler) OnClose(c *gws.Conn, err error) {
	if h.err == nil {
		h.err = err
	}
	close(h.closed)
}

func (h *wsHandler) OnPing(c *gws.Conn, payload []byte) {
	h.alive(c)
	_ = c.SetWriteDeadline(time.Now().Add(h.w.cfg.writeTimeout))
	_ = c.WritePong(payload)
}

func (h *wsHandler) OnPong(c *gws.Conn, payload []byte) { h.alive(c) }

func (h *wsHandler) OnMessage(c *gws.Conn, message *gws.Message) {
	defer message.Close()
	h.alive(c)
	var m liveMsg
	if json.Unmarshal(message.Bytes(), &m) != nil {
		return
	}
	act, err := h.w.apply(&h.sess, &m)
	switch act {
	case actResubscribe:
		h.send(h.w.subscribeFrame(false))
	case actFatal:
		h.fatal = err
		_ = c.WriteClose(1000, nil)
	case actReconnect:
		h.err = err
		_ = c.WriteClose(1000, nil)
	}
}

// holdConn lets the handshake's failure path keep the connection open: gws
// closes it when the upgrade is refused, before the refusal's body (the
// error code that tells an unknown leaderboard from an unknown route) could
// be read.
//
// It also bounds what the handshake reads: the answer's head is read with
// no limit of its own, so a server sending an endless header line grew the
// reader by gigabytes until the handshake timed out.
type holdConn struct {
	net.Conn
	hold atomic.Bool
	left atomic.Int64 // bytes the handshake may still read; negative: no limit
}

// maxHandshakeRead bounds the upgrade answer's head (net/http's server
// takes 1 MiB of request headers).
const maxHandshakeRead = 1 << 20

var errHandshakeTooLarge = errors.New("leaderboard: WebSocket upgrade answer too large")

func (c *holdConn) Read(p []byte) (int, error) {
	left := c.left.Load()
	if left < 0 {
		return c.Conn.Read(p)
	}
	if left == 0 {
		return 0, errHandshakeTooLarge
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.left.Add(-int64(n))
	return n, err
}

func (c *holdConn) Close() error {
	if c.hold.Load() {
		return nil
	}
	return c.Conn.Close()
}

// dialWebSocket dials addr (ws:// or wss://) and upgrades. On a refused
// upgrade it returns the response and up to 64 KiB of its body. Dialing and
// the handshake end when ctx does, or after timeout: the TCP dial and the
// TLS handshake had no limit but ctx, so a server that accepted and never
// spoke TLS held the watcher forever.
func dialWebSocket(ctx context.Context, timeout time.Duration, addr string, header http.Header, tlsConf *tls.Config, h gws.Event) (*gws.Conn, *http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u, err := url.Parse(addr)
	if err != nil {
		return nil, nil, nil, err
	}
	secure := u.Scheme == "wss"
	port := u.Port()
	if port == "" {
		port = "80"
		if secure {
			port = "443"
		}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, nil, nil, err
	}
	nc := raw
	if secure {
		conf := &tls.Config{}
		if tlsConf != nil {
			conf = tlsConf.Clone()
		}
		if conf.ServerName == "" {
			conf.ServerName = u.Hostname()
		}
		tc := tls.Client(raw, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, nil, nil, err
		}
		nc = tc
	}
	hc := &holdConn{Conn: nc}
	hc.hold.Store(true)
	hc.left.Store(maxHandshakeRead)
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	conn, resp, err := gws.NewClientFromConn(h, &gws.ClientOption{
		Addr:             addr,
		RequestHeader:    header,
		HandshakeTimeout: 10 * time.Second,
	}, hc)
	hc.hold.Store(false)
	hc.left.Store(-1) // the frames that follow (or a refusal's body, read with its own limit)
	if err != nil {
		var body []byte
		if resp != nil && resp.Body != nil {
			_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		}
		stop()
		_ = nc.Close()
		return nil, resp, body, err
	}
	if !stop() { // ctx ended during the handshake and closed the connection
		_ = nc.Close()
		return nil, nil, nil, ctx.Err()
	}
	return conn, resp, nil, nil
}
