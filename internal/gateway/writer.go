package gateway

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/wsframe"
)

// The fan-out hands frames to connections in bursts: every flush, one frame
// for each of thousands of connections. Writing each on a goroutine of its
// own (as gws's asynchronous writer does) puts thousands of runnable
// goroutines in front of the HTTP handlers for the length of the burst, and
// submissions wait behind them. So a few writer goroutines (one per
// processor) write the frames of the connections assigned to them, one write
// call per connection (see writeQueued). Such a write must never block:
// before it, the writer checks that the socket's send buffer has room for the
// frames. A connection whose buffer
// is full gets a goroutine of its own, which may block (up to WriteTimeout)
// without holding anyone else back; its queue grows, and past SendQueue its
// subscriptions are told to resync.
type writerPool struct {
	chans   []chan *wsConn
	batches []*batch // each writer's, for its counters
	// done, closed by stop, ends the writers (they outlived the server).
	// Nothing is sent on chans after it, and no channel is ever closed. A
	// connection is in at most one channel once; a channel holds
	// MaxConnections of them, and schedule never waits when it is full.
	done     chan struct{}
	stopOnce sync.Once
}

func newWriterPool(g *Gateway, workers, capacity int) *writerPool {
	p := &writerPool{chans: make([]chan *wsConn, workers), batches: make([]*batch, workers), done: make(chan struct{})}
	for i := range p.chans {
		ch := make(chan *wsConn, capacity) // a connection is in at most one channel once
		p.chans[i] = ch
		b := &batch{counts: &writeCounts{}}
		p.batches[i] = b
		go p.run(ch, b)
	}
	return p
}

// stop ends the writers once they are idle.
func (p *writerPool) stop() { p.stopOnce.Do(func() { close(p.done) }) }

// run is one pool writer: it writes the queues of the connections handed to
// it, in turn.
//
// Two things keep the HTTP handlers going while it works. Every 16
// connections it yields, so that runnable handlers are not kept waiting for
// a whole burst. And once it has been busy for longer than busyYield without
// a real rest (a node past its capacity, where bursts run into each other),
// it also sleeps briefly every 32 connections. Go's scheduler looks for
// sockets that became readable (the next request on a keep-alive connection)
// only when a processor has nothing else to run, or every 10 ms from its
// monitor thread, so writers that are always runnable would hold each
// keep-alive connection to about 100 requests a second (measured: 16
// connections offering 10,000 submissions/s got 1,900/s through at 15,000
// viewers, and all of them with these pauses). There is one writer per
// processor, so that a sleeping writer leaves its processor idle rather than
// to another writer. A node within its capacity rests between bursts and
// never pauses: a pause can last up to a millisecond when the processor is
// otherwise idle (the poller's timeout granularity), which such a node would
// pay as latency.
func (p *writerPool) run(ch chan *wsConn, b *batch) {
	var (
		busySince = time.Now()
		waited    time.Duration // waiting for work since busySince
		n         int
	)
	for {
		var c *wsConn
		select {
		case c = <-ch:
		default:
			t := time.Now()
			select { // idle until the next connection has frames
			case c = <-ch:
			case <-p.done:
				return
			}
			now := time.Now()
			w := now.Sub(t)
			waited += w
			// A rest: one wait of a few milliseconds (the gap between one
			// window's burst and the next), or short waits adding up to half
			// the time (a trickle of work on a node that is mostly idle). Short
			// gaps between bursts that run into each other are not one.
			if w > restedAfter || 2*waited > now.Sub(busySince) {
				busySince, waited = now, 0
			}
		}
		c.writeQueued(false, b)
		n++
		if n%16 == 0 {
			runtime.Gosched()
		}
		if n%32 == 0 && time.Since(busySince) > busyYield {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// busyYield is how long a writer works without a rest before it starts
// sleeping between connections (see run): half a flush window. A node within
// its capacity writes a window's frames in less (5,000 viewers, 10,000
// submissions/s: ~25 ms) and rests until the next; a node past it never
// rests.
const (
	busyYield   = 50 * time.Millisecond
	restedAfter = 5 * time.Millisecond
)

// schedule hands c to its writer. It must not wait for the writer: the hub
// calls it (through Send) holding a board's lock, which a writer merging
// updates (conflate) takes. The channel has room for every connection
// MaxConnections admits, but a connection that closed gives its place back
// at once while it may still wait in the channel, so a reconnect storm on a
// node that is behind can find it full: then a goroutine waits instead.
func (p *writerPool) schedule(c *wsConn) {
	ch := p.chans[c.shard%len(p.chans)]
	select {
	case ch <- c:
	default:
		go func() {
			select {
			case ch <- c:
			case <-p.done:
			}
		}()
	}
}

// Frames written in one system call: a connection that fell behind (its
// writer came round after several flushes) gets every frame waiting, up to
// these bounds, as one vectored write of complete WebSocket frames (package
// wsframe). Much of a frame's cost is per write, not per byte, so a node past
// its capacity then spends less per frame the further behind it is, instead
// of falling further behind: measured at 15,000 viewers on the project's
// machine, delivery p99 went from 2.8 s (growing with the run) to 0.33-0.39 s.
const (
	maxBatchFrames = 64
	maxBatchBytes  = 256 << 10
)

// batch is a writer's scratch space for one vectored write: the frames'
// headers and the list of buffers. A pool writer keeps one for its life; a
// connection's own blocking writer makes its own.
type batch struct {
	headers [maxBatchFrames * wsframe.MaxHeader]byte
	bufs    [3 * maxBatchFrames][]byte
	join    []byte       // for a connection that cannot take a vectored write (not TCP)
	counts  *writeCounts // a pool writer's own; the gateway's shared ones for the others
	runs    []mergeRun   // conflate's scratch space
}

// writeCounts counts the write calls and the frames they carried: frames per
// write above 1 says the node is behind (see the metric
// leaderboard_live_websocket_writes_total). Each pool writer counts in its own,
// so that 100,000s of increments a second do not bounce one cache line
// between processors.
type writeCounts struct {
	writes, frames atomic.Uint64
	merged         atomic.Uint64 // updates merged away by conflate
	_              [40]byte      // its own cache line
}

func (p *writerPool) counts() (writes, frames, merged uint64) {
	for _, b := range p.batches {
		writes += b.counts.writes.Load()
		frames += b.counts.frames.Load()
		merged += b.counts.merged.Load()
	}
	return writes, frames, merged
}

// writeQueued writes what the connection has queued. A pool writer calls it
// with blocking false: it writes only while the socket has room (roomFor
// admits frames only when they fit in half the send buffer, so these writes
// do not block and need no deadline, which would cost two timer updates per
// connection per flush), and hands the rest to a goroutine of the connection's
// own, which calls it with blocking true: every write then has a deadline.
func (c *wsConn) writeQueued(blocking bool, b *batch) {
	for {
		if c.g.merger != nil {
			c.conflate(b)
		}
		c.qmu.Lock()
		if len(c.queue) == 0 {
			c.release()
			c.qmu.Unlock()
			c.drained()
			return
		}
		bufs, size := b.bufs[:0], 0
		n := 0
		for ; n < len(c.queue) && n < maxBatchFrames; n++ {
			f := &c.queue[n]
			l := f.Len() + wsframe.MaxHeader
			if n > 0 && size+l > maxBatchBytes {
				break
			}
			if !blocking && !c.roomFor(l) {
				break
			}
			size += l
			h := wsframe.AppendTextHeader(b.headers[n*wsframe.MaxHeader:n*wsframe.MaxHeader], f.Len())
			bufs = append(bufs, h, f.Prefix, f.Body)
		}
		if n == 0 {
			c.qmu.Unlock()
			go c.writeQueued(true, &batch{counts: &c.g.stats.slowWrites}) // keeps scheduled: that goroutine owns the queue now
			return
		}
		c.queue = c.queue[n:]
		c.qmu.Unlock()
		if blocking && !c.g.closing.Load() { // at shutdown, Shutdown's deadline stands
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.g.opts.WriteTimeout))
			c.deadline = true
		}
		err := c.nc.WriteFrames(bufs, &b.join)
		clear(bufs) // the frames are written: do not keep them alive until the next write
		if err != nil {
			c.abort()
			return
		}
		b.counts.writes.Add(1)
		b.counts.frames.Add(uint64(n))
	}
}

// release ends a writer's ownership of the connection's queue. A write
// deadline set by a blocking writer is cleared first, while it still owns the connection:
// gws writes pings and pongs on its own, and an expired deadline would fail
// them; the next owner sets its own deadline before writing. Called with qmu held.
func (c *wsConn) release() {
	if c.deadline && !c.g.closing.Load() {
		_ = c.ws.SetWriteDeadline(time.Time{})
	}
	c.deadline = false
	c.scheduled = false
	// Back to the connection's own one-frame storage: a burst's larger array
	// is dropped (a [:0:0] slice would still point at it), and so is the last
	// frame, which the queue must not keep alive.
	c.first[0] = fanout.Frame{}
	c.queue = c.first[:0]
}

// abort stops writing to a connection whose write failed, and closes it; its
// reader then sees the close and unsubscribes everything. A write fails on a
// socket already closed (by the reader, or by gws after its close frame), or
// is refused because gws has just written its close frame (1008 for a
// flooding client, 1009 for an oversized message, 1001 at shutdown): the
// frame is on its way, and closing the socket after it loses nothing.
func (c *wsConn) abort() {
	c.qmu.Lock()
	c.queue = nil
	c.scheduled = true // nothing more is written
	c.qmu.Unlock()
	_ = c.ws.NetConn().Close()
}

// roomFor reports whether the socket's send buffer can take n more bytes
// without the write blocking (a frame larger than the whole buffer never can:
// it goes to the blocking path). The room found
// by one check is kept as credit: the kernel only drains the buffer, so until
// that credit is spent no further check (a system call) is needed.
func (c *wsConn) roomFor(n int) bool {
	if c.raw == nil {
		return false // no socket to ask: the connection's own writer, with a deadline
	}
	if c.tls {
		n += (n/16384 + 1) * 32 // a TLS record's header and tag, per 16 KB
	}
	if c.credit >= n {
		c.credit -= n
		return true
	}
	ok := true
	_ = c.raw.Control(func(fd uintptr) {
		outq, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		if err != nil {
			return
		}
		if outq+n > c.sndbuf/2 { // the buffer may have grown (autotuning): look again
			if b, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil {
				c.sndbuf = b
			}
		}
		// The kernel counts memory, not payload; half of SO_SNDBUF is a safe payload bound.
		if c.sndbuf == 0 {
			if b, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil {
				c.sndbuf = b
			}
		}
		free := c.sndbuf/2 - outq
		ok = n <= free
		c.credit = max(free-n, 0)
	})
	return ok
}

// conflate merges the waiting updates of each subscription into one, when
// there are two or more: a connection that fell behind then gets, per
// subscription, one update from the version its client has to the newest
// one waiting, in place of each window's (fanout.Hub.Conflate: the same
// frame a resume would get, encoded once for every connection as far
// behind). The client's chain stays unbroken (the merged update's
// prev_version is the first waiting one's), it does less work, and the
// node writes and the network carries one frame where there were several,
// so a node past its capacity catches up instead of delivering every
// window late. Called by the queue's owner: only the owner removes frames,
// so the frames it looked at stay where they are while it asks the hub
// without holding qmu (the hub holds its lock while it queues frames, so
// asking under qmu could deadlock).
func (c *wsConn) conflate(b *batch) {
	c.qmu.Lock()
	n := len(c.queue)
	if n < 2 {
		c.qmu.Unlock()
		return
	}
	runs := findRuns(c.queue, b.runs[:0])
	c.qmu.Unlock()
	if askMerges(c.g.merger, runs) > 0 {
		c.qmu.Lock()
		if len(c.queue) >= n { // always, while this writer owns the queue; never index past it
			c.queue = replaceMerged(c.queue, n, runs, b.counts)
		}
		c.qmu.Unlock()
	}
	clear(runs)
	b.runs = runs[:0]
}

// findRuns appends to runs each subscription's updates among frames: from
// the first one's prev_version to the last one's version.
func findRuns(frames []fanout.Frame, runs []mergeRun) []mergeRun {
	for i := range frames {
		f := &frames[i]
		if f.Sub == nil {
			continue
		}
		r := findRun(runs, f.Sub)
		if r == nil {
			runs = append(runs, mergeRun{sub: f.Sub, from: f.PrevVersion, to: f.Version, last: i})
			continue
		}
		if f.PrevVersion != r.to {
			r.broken = true // not one chain: leave this subscription's frames alone
		}
		r.to, r.last, r.count = f.Version, i, r.count+1
	}
	return runs
}

// askMerges asks the hub for a merged update for each run of two or more
// updates, and returns how many it made.
func askMerges(m conflater, runs []mergeRun) int {
	merged := 0
	for i := range runs {
		r := &runs[i]
		if r.count == 0 || r.broken {
			continue
		}
		if r.frame, r.ok = m.Conflate(r.sub, r.from, r.to); r.ok {
			merged++
		}
	}
	return merged
}

// replaceMerged puts each merged update in place of the last of the updates
// it replaces among the first n frames, drops the others, and returns the
// frames.
func replaceMerged(frames []fanout.Frame, n int, runs []mergeRun, counts *writeCounts) []fanout.Frame {
	out := make([]fanout.Frame, 0, len(frames)-n+len(runs))
	for i := 0; i < n; i++ {
		f := frames[i]
		if r := findRun(runs, f.Sub); r != nil && r.ok {
			if i == r.last {
				out = append(out, r.frame)
				counts.merged.Add(uint64(r.count))
			}
			continue
		}
		out = append(out, f)
	}
	return append(out, frames[n:]...)
}

// mergeRun is one subscription's waiting updates: from the first's
// prev_version to the last's version; count is how many follow the first.
type mergeRun struct {
	sub      *fanout.Subscription
	from, to uint64
	last     int
	count    int
	broken   bool
	frame    fanout.Frame
	ok       bool
}

func findRun(runs []mergeRun, sub *fanout.Subscription) *mergeRun {
	if sub == nil {
		return nil
	}
	for i := range runs {
		if runs[i].sub == sub {
			return &runs[i]
		}
	}
	return nil
}
