package gateway

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lxzan/gws"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/wsframe"
)

// wsConn is one WebSocket connection. It is the fan-out Sink of all its
// subscriptions: Send appends the frame to the connection's queue and hands
// the connection to its writer (see writer.go). Past SendQueue frames waiting
// the connection is slow: its subscriptions leave the hot path (the hub stops
// handing it frames), each gets a resync, and once the queue has drained they
// are subscribed again.
type wsConn struct {
	g     *Gateway
	ws    *gws.Conn
	board string
	shard int
	nc    *wsframe.Conn   // what gws writes through, and the writers beside it
	raw   syscall.RawConn // the TCP socket, for the send-buffer check; nil when not TCP
	tls   bool            // the socket carries TLS: writes take a little more room

	qmu   sync.Mutex
	queue []fanout.Frame
	// first is the queue's storage while it holds at most one frame, the
	// usual case (one update per flush): a queue drained and refilled every
	// flush then allocates nothing.
	first     [1]fanout.Frame
	scheduled bool // with its writer, or draining on a goroutine of its own
	sndbuf    int  // last SO_SNDBUF read
	credit    int  // bytes known to fit in the send buffer without another check
	deadline  bool // a blocking writer left a write deadline on the socket

	// The client's message budget (see Options.MessageRate); only the
	// connection's reader touches these.
	tokens  float64
	refill  time.Time
	refused int // messages refused in a row

	// The pong owed for the latest ping (RFC 6455 5.5.3 lets an endpoint
	// answer only the most recent one): pings from a client that does not
	// read cannot queue pongs without bound.
	pongPending atomic.Bool
	pongPayload atomic.Pointer[[]byte]

	// subMu makes one subscribe or unsubscribe at a time: the client's
	// reader and a resubscribe after a resync may both (re)create an id, and
	// two subscriptions of one id live at once would both get the next
	// update (the client would see it twice). Taken before mu.
	subMu sync.Mutex

	mu      sync.Mutex
	subs    map[string]*wsSub // by the client's id
	waiting bool              // some subscriptions wait for the queue to drain
	closed  bool
}

type wsSub struct {
	id    string
	spec  fanout.Spec
	sub   *fanout.Subscription // nil while dropped
	ready bool                 // false after a drop, until resubscribed
}

// Send implements fanout.Sink.
func (c *wsConn) Send(f fanout.Frame) bool { return c.enqueue(f, false) }

// Phase implements fanout.Phaser: all the connection's subscriptions are
// flushed in one phase, so their frames leave in one write. Connections
// take phases in turn within each writer's share (the shard picks the
// writer), so that every phase's flush keeps every writer busy.
func (c *wsConn) Phase() uint32 { return uint32(c.shard / len(c.g.writers.chans)) }

// write queues a frame regardless of the limit (resync notices, errors, pongs).
func (c *wsConn) write(f fanout.Frame) { c.enqueue(f, true) }

func (c *wsConn) enqueue(f fanout.Frame, force bool) bool {
	c.qmu.Lock()
	if !force && len(c.queue) >= c.g.opts.SendQueue {
		c.qmu.Unlock()
		return false
	}
	if len(c.queue) >= 2*c.g.opts.SendQueue {
		// Even notices and errors pile up: the client sends faster than it reads.
		c.qmu.Unlock()
		_ = c.ws.NetConn().Close()
		return false
	}
	c.queue = append(c.queue, f)
	schedule := !c.scheduled
	c.scheduled = true
	c.qmu.Unlock()
	if schedule {
		c.g.writers.schedule(c)
	}
	return true
}

// drained runs when the queue has emptied: subscriptions dropped as slow get
// their fresh snapshots now.
func (c *wsConn) drained() {
	c.mu.Lock()
	resume := c.waiting && !c.closed
	c.waiting = false
	c.mu.Unlock()
	if resume {
		go c.resubscribe()
	}
}

// onDrop is the fan-out's callback for a subscription it took off the hot path.
func (c *wsConn) onDrop(s *fanout.Subscription) {
	c.mu.Lock()
	ws := c.subs[s.ID]
	if ws == nil || ws.sub != s || c.closed {
		c.mu.Unlock()
		return
	}
	ws.sub, ws.ready = nil, false
	c.waiting = true
	// Queued under c.mu, so a resubscribe (which takes c.mu) cannot put a
	// snapshot ahead of this notice.
	c.write(fanout.ResyncFrame(s.ID, "slow_consumer"))
	c.mu.Unlock()
	c.g.stats.resyncs.Add(1)
}

// resubscribe gives every dropped subscription a fresh snapshot.
func (c *wsConn) resubscribe() {
	c.mu.Lock()
	var todo []*wsSub
	for _, s := range c.subs {
		if !s.ready {
			todo = append(todo, s)
		}
	}
	c.mu.Unlock()
	for _, s := range todo {
		// The check and the subscribe under one hold of subMu: a client's
		// unsubscribe or subscribe of this id in between would otherwise be
		// undone (the id subscribed again, or again with its old spec).
		c.subMu.Lock()
		c.mu.Lock()
		current := c.subs[s.id] == s && !s.ready && !c.closed // not unsubscribed or replaced meanwhile
		c.mu.Unlock()
		if current {
			c.subscribeLocked(s.id, s.spec, nil, "")
		}
		c.subMu.Unlock()
	}
}

// subscribe (re)creates subscription id.
func (c *wsConn) subscribe(id string, spec fanout.Spec, since *uint64, epoch string) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.subscribeLocked(id, spec, since, epoch)
}

// subscribeLocked is subscribe with subMu held.
func (c *wsConn) subscribeLocked(id string, spec fanout.Spec, since *uint64, epoch string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	old := c.subs[id]
	if old == nil && len(c.subs) >= c.g.opts.MaxSubscriptions {
		c.mu.Unlock()
		c.write(fanout.ErrorFrame(id, "too_many_subscriptions", "at most "+strconv.Itoa(c.g.opts.MaxSubscriptions)+" subscriptions per connection"))
		return
	}
	entry := &wsSub{id: id, spec: spec}
	c.subs[id] = entry
	c.mu.Unlock()
	if old != nil && old.sub != nil {
		c.g.hub.Unsubscribe(old.sub)
	}
	sub, err := c.g.hub.Subscribe(context.Background(), c.board, id, spec, since, epoch, c, c.onDrop)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.subs[id] == entry {
			delete(c.subs, id)
		}
		code, msg := board.CodeUnavailable, err.Error()
		if errors.Is(err, fanout.ErrNotFound) {
			code, msg = board.CodeLeaderboardNotFound, "leaderboard \""+c.board+"\" does not exist"
		}
		c.write(fanout.ErrorFrame(id, code, msg))
		return
	}
	if c.closed || c.subs[id] != entry {
		// Closed or replaced while subscribing (c.mu before the hub's lock is
		// the lock order, so this is safe here).
		c.g.hub.Unsubscribe(sub)
		return
	}
	if sub.Dropped() { // the queue was full already: resync once it drains
		c.waiting = true
		c.g.stats.resyncs.Add(1)
		c.write(fanout.ResyncFrame(id, "slow_consumer"))
		return
	}
	entry.sub, entry.ready = sub, true
}

func (c *wsConn) unsubscribe(id string) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	s := c.subs[id]
	delete(c.subs, id)
	c.mu.Unlock()
	if s != nil && s.sub != nil {
		c.g.hub.Unsubscribe(s.sub)
	}
}

func (c *wsConn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	subs := c.subs
	c.subs = map[string]*wsSub{}
	c.mu.Unlock()
	for _, s := range subs {
		if s.sub != nil {
			c.g.hub.Unsubscribe(s.sub)
		}
	}
	c.g.mu.Lock()
	delete(c.g.conns, c)
	c.g.mu.Unlock()
	c.g.count.Add(-1)
	c.g.live.Add(-1)
}

// allowMessage takes one token from the connection's message budget.
func (c *wsConn) allowMessage(now time.Time) bool {
	rate, burst := c.g.opts.MessageRate, float64(c.g.opts.MessageBurst)
	if rate < 0 {
		return true
	}
	if c.refill.IsZero() {
		c.tokens = burst
	} else {
		c.tokens = min(burst, c.tokens+now.Sub(c.refill).Seconds()*rate)
	}
	c.refill = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// events routes gws callbacks to the connection.
type events struct{ g *Gateway }

func conn(socket *gws.Conn) *wsConn {
	v, _ := socket.Session().Load("c")
	c, _ := v.(*wsConn)
	return c
}

func (e *events) OnOpen(socket *gws.Conn) {}

func (e *events) OnClose(socket *gws.Conn, err error) {
	if c := conn(socket); c != nil {
		c.close()
	}
}

func (e *events) alive(socket *gws.Conn) {
	_ = socket.SetReadDeadline(time.Now().Add(e.g.opts.HeartbeatTimeout))
}

func (e *events) OnPing(socket *gws.Conn, payload []byte) {
	e.alive(socket)
	c := conn(socket)
	if c == nil {
		socket.WriteAsync(gws.OpcodePong, payload, nil)
		return
	}
	c.pongPayload.Store(&payload) // gws hands each ping a buffer of its own
	if c.pongPending.Swap(true) {
		return // a pong is queued already; it carries the latest payload
	}
	socket.Async(func() {
		c.pongPending.Store(false)
		if p := c.pongPayload.Swap(nil); p != nil {
			_ = socket.WriteMessage(gws.OpcodePong, *p)
		}
	})
}

func (e *events) OnPong(socket *gws.Conn, payload []byte) { e.alive(socket) }

func (e *events) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	e.alive(socket)
	c := conn(socket)
	if c == nil {
		return
	}
	if !c.allowMessage(time.Now()) {
		e.g.stats.messagesRefused.Add(1)
		if c.refused++; c.refused >= e.g.opts.MessageBurst {
			e.g.stats.rateLimited.Add(1)
			socket.WriteClose(1008, []byte("too many messages"))
			return
		}
		c.write(fanout.ErrorFrame("", board.CodeRateLimited, "more than "+strconv.FormatFloat(e.g.opts.MessageRate, 'g', -1, 64)+" messages per second on this connection; this one was not acted on"))
		return
	}
	c.refused = 0
	m, spec, err := decodeClientMessage(message.Bytes())
	if err != nil {
		var be *board.Error
		code, msg := board.CodeInvalidArgument, err.Error()
		if errors.As(err, &be) {
			code, msg = be.Code, be.Message
		}
		if m.ID != "" && validSubID(m.ID) {
			// An error with an id ends that subscription (docs/LIVE.md): a
			// rejected subscribe, or any other bad message naming it.
			c.unsubscribe(m.ID)
		}
		c.write(fanout.ErrorFrame(m.ID, code, msg))
		return
	}
	switch m.Type {
	case "ping":
		c.write(fanout.PongFrame)
	case "unsubscribe":
		c.unsubscribe(m.ID)
	case "subscribe":
		c.subscribe(m.ID, spec, m.SinceVersion, m.Epoch)
	}
}
