// Package gateway owns viewer connections: WebSocket (lxzan/gws), SSE and long
// polling, all fed the same frames by the fan-out hub.
//
// Why gws: in public benchmarks it spends the least CPU per message of the
// mainstream Go WebSocket libraries, an idle connection holds just its reader
// goroutine and a small read buffer (11 KB per idle connection measured, see
// docs/BENCHMARKS.md), and it writes a frame from several buffers at once,
// which lets a subscription's small prefix and the segment's shared body go
// out without being joined. Frames are written by the gateway's own pool of
// writers (writer.go), not by gws's asynchronous writer.
package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lxzan/gws"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/wsframe"
)

// Options configure a Gateway.
type Options struct {
	PingInterval     time.Duration // server pings (default 25 s)
	HeartbeatTimeout time.Duration // close a connection silent this long (default 60 s)
	MaxConnections   int           // WebSockets, SSE streams and long polls together (default 10000)
	MaxSubscriptions int           // per connection (default 16)
	SendQueue        int           // frames queued per connection before it counts as slow (default 256)
	AllowedOrigins   []string      // empty: any origin
	WriteTimeout     time.Duration // a write blocked this long closes the connection (default 10 s)
	// MessageRate and MessageBurst bound the messages one client sends on a
	// connection (a token bucket; default 10/s, burst 32): a subscribe costs
	// a snapshot, and a client looping on it would take the processor from
	// everyone else. A message past the limit is answered with an error
	// rate_limited and not acted on; MessageBurst such answers in a row close
	// the connection (1008). A negative MessageRate means no limit.
	MessageRate  float64
	MessageBurst int
	// NoConflate keeps every update of a connection or SSE stream that fell
	// behind: by default its waiting updates of one subscription are merged
	// into one (when the hub can: an in-process fanout.Hub), see conflate.
	NoConflate bool
	Logger     *slog.Logger
}

// conflater merges a subscription's waiting updates (fanout.Hub.Conflate).
type conflater interface {
	Conflate(sub *fanout.Subscription, from, to uint64) (fanout.Frame, bool)
}

// MaxMessageBytes bounds a client message; a larger frame closes the
// connection with 1009.
const MaxMessageBytes = 4096

// Hub is what the gateway needs from the fan-out: *fanout.Hub (fan-out in
// this process) and *fanout.Remote (frames from fan-out nodes over the bus)
// implement it.
type Hub interface {
	// Subscribe sends sink `subscribed` and then a snapshot or the resume's
	// catch-up, and from then on the subscription's updates; onDrop is
	// called, outside the hub's locks, when sink refused a frame.
	Subscribe(ctx context.Context, board, id string, spec fanout.Spec, since *uint64, epoch string, sink fanout.Sink, onDrop func(*fanout.Subscription)) (*fanout.Subscription, error)
	// Unsubscribe ends a subscription; calling it twice, or after a drop, is safe.
	Unsubscribe(sub *fanout.Subscription)
	// Exists returns fanout.ErrNotFound for a leaderboard that does not exist.
	Exists(ctx context.Context, board string) error
}

var _ Hub = (*fanout.Hub)(nil)

// Gateway serves live updates.
type Gateway struct {
	hub      Hub
	opts     Options
	log      *slog.Logger
	upgrader *gws.Upgrader

	mu    sync.Mutex
	conns map[*wsConn]struct{}
	count atomic.Int64 // WebSockets
	live  atomic.Int64 // WebSockets, SSE streams and long polls: MaxConnections bounds them together

	closing atomic.Bool
	closed  chan struct{} // closed by Shutdown: ends SSE streams and long polls
	stats   counters
	writers *writerPool
	nextID  atomic.Uint64
	merger  conflater // nil: updates are never merged
}

type counters struct {
	wsTotal, sseTotal, pollTotal atomic.Uint64
	resyncs                      atomic.Uint64
	rejected                     atomic.Uint64
	messagesRefused              atomic.Uint64
	rateLimited                  atomic.Uint64
	sseActive, pollActive        atomic.Int64
	slowWrites                   writeCounts // by connections' own writers (sockets without room)
	sseMerges                    writeCounts // updates SSE streams merged (only its merged count is used)
}

// New returns a gateway over hub.
func New(hub Hub, opts Options) *Gateway {
	if opts.PingInterval <= 0 {
		opts.PingInterval = 25 * time.Second
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = 60 * time.Second
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 10000
	}
	if opts.MaxSubscriptions <= 0 {
		opts.MaxSubscriptions = 16
	}
	if opts.SendQueue <= 0 {
		opts.SendQueue = 256
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.MessageRate == 0 {
		opts.MessageRate = 10
	}
	if opts.MessageBurst <= 0 {
		opts.MessageBurst = 32
	}
	g := &Gateway{hub: hub, opts: opts, log: opts.Logger, conns: map[*wsConn]struct{}{}, closed: make(chan struct{})}
	if m, ok := hub.(conflater); ok && !opts.NoConflate {
		g.merger = m
	}
	g.writers = newWriterPool(g, runtime.GOMAXPROCS(0), opts.MaxConnections)
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.upgrader = gws.NewUpgrader(&events{g}, &gws.ServerOption{
		ReadMaxPayloadSize: MaxMessageBytes,
		ReadBufferSize:     wsReadBuffer,
		CheckUtf8Enabled:   false, // frames are built ASCII; json decoding of client messages tolerates bad UTF-8
		HandshakeTimeout:   5 * time.Second,
		Recovery:           gws.Recovery,
	})
	return g
}

// wsReadBuffer is the read buffer of a WebSocket connection: client messages
// are small, and gws's default 4 KB per idle connection is waste.
const wsReadBuffer = 1024

// errHeartbeat is what a connection's read returns when the heartbeat timeout
// passed with nothing received.
var errHeartbeat = errors.New("heartbeat timeout: nothing received from the client")

// heartbeatReader is the connection as gws reads it. gws closes a connection
// whose read failed with the error's text as the close reason; a read past the
// heartbeat deadline fails with "read tcp <server address>-><client
// address>: i/o timeout", which would tell every client the server's own
// address (an internal one behind a proxy). The close says why instead.
type heartbeatReader struct{ net.Conn }

func (r heartbeatReader) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = errHeartbeat
	}
	return n, err
}

// Connections is the number of open WebSocket connections.
func (g *Gateway) Connections() int64 { return g.count.Load() }

// Stats is what the gateway reports for metrics.
type Stats struct {
	WebSockets, SSE, LongPolls int64  // open now
	Opened                     uint64 // WebSocket connections accepted in total
	Rejected                   uint64 // upgrades refused by the connection cap
	Resyncs                    uint64 // subscriptions told to resync
	MessagesRefused            uint64 // client messages past MessageRate, answered rate_limited
	RateLimitedCloses          uint64 // connections closed for sending past it MessageBurst times in a row
	// Writes is the write calls that carried frames to WebSockets, Frames the
	// frames they carried: a connection that fell behind gets all it has
	// waiting in one write, so Frames/Writes above 1 says the node is behind.
	Writes, FramesWritten uint64
	// UpdatesMerged is the updates that never went out on their own: a
	// connection that fell behind got them merged into one per subscription.
	UpdatesMerged uint64
}

// Snapshot returns the gateway's counters.
func (g *Gateway) Snapshot() Stats {
	w, f, m := g.writers.counts()
	return Stats{
		WebSockets: g.count.Load(), SSE: g.stats.sseActive.Load(), LongPolls: g.stats.pollActive.Load(),
		Opened: g.stats.wsTotal.Load(), Rejected: g.stats.rejected.Load(), Resyncs: g.stats.resyncs.Load(),
		MessagesRefused: g.stats.messagesRefused.Load(), RateLimitedCloses: g.stats.rateLimited.Load(),
		Writes: w + g.stats.slowWrites.writes.Load(), FramesWritten: f + g.stats.slowWrites.frames.Load(),
		UpdatesMerged: m + g.stats.slowWrites.merged.Load() + g.stats.sseMerges.merged.Load(),
	}
}

// Run pings every connection every PingInterval until ctx ends; then it
// stops the WebSocket writers, which otherwise outlived the server.
func (g *Gateway) Run(ctx context.Context) {
	t := time.NewTicker(g.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			g.writers.stop()
			return
		case <-t.C:
			for _, c := range g.snapshotConns() {
				c.ws.WriteAsync(gws.OpcodePing, nil, nil)
			}
		}
	}
}

func (g *Gateway) snapshotConns() []*wsConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*wsConn, 0, len(g.conns))
	for c := range g.conns {
		out = append(out, c)
	}
	return out
}

// Shutdown sends every WebSocket a going-away close (1001) and ends every SSE
// stream and long poll, so that clients reconnect elsewhere, and refuses new
// connections. Hijacked WebSockets are invisible to http.Server.Shutdown, and
// streams would otherwise hold it until its timeout.
func (g *Gateway) Shutdown() {
	if !g.closing.CompareAndSwap(false, true) {
		return
	}
	close(g.closed) // SSE streams and long polls end; their clients reconnect elsewhere
	conns := g.snapshotConns()
	var wg sync.WaitGroup
	for i := 0; i < len(conns); i += 256 {
		part := conns[i:min(i+256, len(conns))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every deadline first (writers leave them alone from now on), so
			// that connections whose readers stopped cost a second in all,
			// not a second each.
			deadline := time.Now().Add(time.Second)
			for _, c := range part {
				_ = c.ws.SetWriteDeadline(deadline)
			}
			for _, c := range part {
				_ = c.ws.WriteClose(1001, []byte("server shutting down"))
			}
		}()
	}
	wg.Wait()
}

func (g *Gateway) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(g.opts.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range g.opts.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// ServeWebSocket upgrades GET /v1/leaderboards/{id}/subscribe. Errors before
// the upgrade are returned for the API to write as JSON.
func (g *Gateway) ServeWebSocket(w http.ResponseWriter, r *http.Request, boardID string) error {
	if g.closing.Load() {
		return &board.Error{Code: board.CodeUnavailable, Message: "the server is shutting down", RetryAfter: time.Second}
	}
	if !g.originAllowed(r) {
		return &board.Error{Code: CodePermissionDenied, Message: "origin " + r.Header.Get("Origin") + " may not open live connections"}
	}
	if err := handshakeError(r); err != nil {
		return err
	}
	if err := g.boardExists(r.Context(), boardID); err != nil {
		return err
	}
	if err := g.acquire(); err != nil {
		return err
	}
	g.count.Add(1)
	netConn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		g.count.Add(-1)
		g.live.Add(-1)
		return &board.Error{Code: board.CodeUnavailable, Message: "this connection cannot be upgraded: " + err.Error(), RetryAfter: time.Second}
	}
	// gws reads and writes through nc; the writers write frames beside it
	// through nc too (see writer.go and package wsframe).
	nc := wsframe.NewConn(netConn)
	ws, err := g.upgrader.UpgradeFromConn(nc, bufio.NewReaderSize(heartbeatReader{nc}, wsReadBuffer), r)
	if err != nil {
		g.count.Add(-1)
		g.live.Add(-1)
		return nil // gws has answered the failed handshake
	}
	c := &wsConn{g: g, ws: ws, nc: nc, board: boardID, subs: map[string]*wsSub{}, shard: int(g.nextID.Add(1))}
	c.queue = c.first[:0]
	socket := netConn
	if tc, ok := socket.(*tls.Conn); ok {
		socket, c.tls = tc.NetConn(), true
	}
	if sc, ok := socket.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	ws.Session().Store("c", c)
	// The HTTP server's deadlines do not apply to a live connection.
	_ = ws.SetDeadline(time.Time{})
	_ = ws.SetReadDeadline(time.Now().Add(g.opts.HeartbeatTimeout))
	// closing is read under g.mu, which Shutdown's snapshot of the
	// connections takes after setting it: an upgrade that passed the check
	// above while Shutdown ran is either in that snapshot or sees closing
	// here and sends its own going-away close. Missed by both, it stayed
	// open (hijacked, so http.Server.Shutdown does not see it either) until
	// its heartbeat timeout.
	g.mu.Lock()
	g.conns[c] = struct{}{}
	closing := g.closing.Load()
	g.mu.Unlock()
	g.stats.wsTotal.Add(1)
	go ws.ReadLoop()
	if closing {
		_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
		_ = ws.WriteClose(1001, []byte("server shutting down"))
	}
	return nil
}

// handshakeError refuses, as the contract's JSON 400, a request that is no
// WebSocket handshake (a plain GET or a HEAD), with the checks gws makes.
// After the hijack only gws could refuse it: in plain text, with the
// request counted as a 101 in the metrics, and a live slot taken meanwhile.
func handshakeError(r *http.Request) error {
	h := r.Header
	if r.Method != http.MethodGet || !strings.EqualFold(h.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(h.Get("Connection")), "upgrade") || h.Get("Sec-WebSocket-Key") == "" {
		return board.Invalid("this route takes a WebSocket handshake (GET with Upgrade: websocket, Connection: Upgrade and Sec-WebSocket-Key); without WebSocket, use .../stream (SSE) or .../updates (long poll)")
	}
	if h.Get("Sec-WebSocket-Version") != "13" {
		return board.Invalid("Sec-WebSocket-Version must be 13")
	}
	return nil
}

// acquire takes a place for a live connection (WebSocket, SSE stream or long
// poll) under MaxConnections; g.live.Add(-1) gives it back.
func (g *Gateway) acquire() error {
	if g.live.Add(1) > int64(g.opts.MaxConnections) {
		g.live.Add(-1)
		g.stats.rejected.Add(1)
		return &board.Error{Code: board.CodeUnavailable, Message: "too many live connections on this server; retry later", RetryAfter: 5 * time.Second}
	}
	return nil
}

// CodePermissionDenied is the contract's 403 code.
const CodePermissionDenied = "permission_denied"

func (g *Gateway) boardExists(ctx context.Context, id string) error {
	if err := g.hub.Exists(ctx, id); err != nil {
		if errors.Is(err, fanout.ErrNotFound) {
			return &board.Error{Code: board.CodeLeaderboardNotFound, Message: "leaderboard \"" + id + "\" does not exist"}
		}
		return &board.Error{Code: board.CodeUnavailable, Message: err.Error(), RetryAfter: time.Second}
	}
	return nil
}

// clientMessage is every field a client message may carry.
type clientMessage struct {
	Type          string  `json:"type"`
	ID            string  `json:"id"`
	Kind          string  `json:"kind"`
	Limit         *int    `json:"limit"`
	ParticipantID string  `json:"participant_id"`
	Radius        *int    `json:"radius"`
	SinceVersion  *uint64 `json:"since_version"`
	Epoch         string  `json:"epoch"`
}

// decodeClientMessage parses and validates one client message. The error is
// a board.Error carrying the protocol's code; id is set when it is known.
func decodeClientMessage(data []byte) (clientMessage, fanout.Spec, error) {
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fanout.Spec{}, board.Invalid("the message is not a valid JSON object: " + err.Error())
	}
	switch m.Type {
	case "ping":
		return m, fanout.Spec{}, nil
	case "subscribe", "unsubscribe":
	default:
		return m, fanout.Spec{}, board.Invalid(`type must be "subscribe", "unsubscribe" or "ping"`)
	}
	if !validSubID(m.ID) {
		m.ID = ""
		return m, fanout.Spec{}, board.Invalid("id must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
	}
	if m.Type == "unsubscribe" {
		return m, fanout.Spec{}, nil
	}
	spec, err := specOf(m.Kind, m.Limit, m.ParticipantID, m.Radius)
	return m, spec, err
}

// specOf builds and validates a window spec from protocol fields.
func specOf(kind string, limit *int, participant string, radius *int) (fanout.Spec, error) {
	k, ok := fanout.ParseKind(kind)
	if !ok {
		return fanout.Spec{}, board.Invalid(`kind must be "top", "participant" or "around"`)
	}
	spec := fanout.Spec{Kind: k, Limit: fanout.DefaultTopLimit, Radius: fanout.DefaultRadius, ParticipantID: participant}
	if limit != nil {
		spec.Limit = *limit
	}
	if radius != nil {
		spec.Radius = *radius
	}
	if k != fanout.Top {
		if err := board.ValidateID("participant_id", participant); err != nil {
			return spec, err
		}
	}
	if err := spec.Validate(); err != nil {
		return spec, board.Invalid(err.Error())
	}
	return spec, nil
}

func validSubID(id string) bool { return len(id) <= 64 && board.ValidID(id) }
