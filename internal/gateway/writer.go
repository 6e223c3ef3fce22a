package gateway

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"time"
	"unsafe"

	"github.com/lxzan/gws"
	"golang.org/x/sys/unix"

	"github.com/lbhq/leaderboard/internal/fanout"
)

// The fan-out hands frames to connections in bursts: every flush, one frame
// for each of thousands of connections. Writing each on a goroutine of its
// own (as gws's asynchronous writer does) puts thousands of runnable
// goroutines in front of the HTTP handlers for the length of the burst, and
// submissions wait behind them. So a few writer goroutines (two per
// processor) write the frames of the connections assigned to them, one write
// call each. Such a write must never block: before it, the writer checks that
// the socket's send buffer has room for the frame. A connection whose buffer
// is full gets a goroutine of its own, which may block (up to WriteTimeout)
// without holding anyone else back; its queue grows, and past SendQueue its
// subscriptions are told to resync.
type writerPool struct {
	chans []chan *wsConn
}

func newWriterPool(g *Gateway, workers, capacity int) *writerPool {
	p := &writerPool{chans: make([]chan *wsConn, workers)}
	for i := range p.chans {
		ch := make(chan *wsConn, capacity) // a connection is in at most one channel once
		p.chans[i] = ch
		go func() {
			n := 0
			var wire wireFrames
			for c := range ch {
				c.writeQueued(&wire)
				// Let the HTTP handlers in between: a burst of thousands of
				// writes otherwise keeps submissions waiting for its whole length.
				if n++; n%16 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	return p
}

func (p *writerPool) schedule(c *wsConn) { p.chans[c.shard%len(p.chans)] <- c }

// wireFrames holds the last WebSocket frame (header and JSON) a pool writer
// built. In a burst, the connections a writer serves one after the other get
// the same Body (shared by every subscriber of a segment) after, usually, the
// same Prefix (the same subscription id): their frames are the same bytes,
// built once and written as they are, where gws would build and copy each.
type wireFrames struct {
	body, prefix []byte // what wire was built from; body compared by identity
	wire         []byte
}

func (w *wireFrames) frame(f fanout.Frame) []byte {
	if len(f.Body) > 0 && len(f.Body) == len(w.body) && &f.Body[0] == &w.body[0] && bytes.Equal(f.Prefix, w.prefix) {
		return w.wire
	}
	// A new array each time: the previous one may still be referenced by
	// nothing but this cache, and a write never outlives the call.
	n := f.Len()
	b := appendTextHeader(make([]byte, 0, n+10), n)
	b = f.AppendJSON(b)
	if len(f.Body) > 0 {
		w.body, w.prefix, w.wire = f.Body, f.Prefix, b
	}
	return b
}

// appendTextHeader appends the header of an unfragmented, unmasked (server to
// client), uncompressed text frame of n payload bytes (RFC 6455, 5.2). The
// gateway never negotiates permessage-deflate, so no frame is compressed.
func appendTextHeader(b []byte, n int) []byte {
	const finText = 0x80 | byte(gws.OpcodeText)
	switch {
	case n < 126:
		return append(b, finText, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, finText, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, finText, 127), uint64(n))
	}
}

// writeQueued writes what the connection has queued. A pool writer calls it
// with its frame cache: it writes only while the socket has room (roomFor
// admits a frame only when it fits in half the send buffer, so these writes
// do not block and need no deadline, which would cost two timer updates per
// connection per flush), and hands the rest to a goroutine of the connection's
// own, which calls it with wire nil: every write then has a deadline.
//
// A pool writer writes the frame's bytes to the socket itself: one Write of
// the whole frame, which the net package never interleaves with another
// Write on the same connection (gws's own pings, pongs and close frames).
func (c *wsConn) writeQueued(wire *wireFrames) {
	blocking := wire == nil
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 {
			c.release()
			c.qmu.Unlock()
			c.drained()
			return
		}
		f := c.queue[0]
		if !blocking && !c.roomFor(f.Len()+14) {
			c.qmu.Unlock()
			go c.writeQueued(nil) // keeps scheduled: that goroutine owns the queue now
			return
		}
		c.queue = c.queue[1:]
		c.qmu.Unlock()
		var err error
		if blocking {
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.g.opts.WriteTimeout))
			c.deadline = true
			err = c.ws.Writev(gws.OpcodeText, f.Prefix, f.Body)
		} else {
			err = c.writeNow(wire.frame(f))
		}
		if err != nil {
			c.abort()
			return
		}
	}
}

// writeNow writes b, which roomFor said fits in the socket's send buffer.
// The write is a raw system call, made without telling the Go scheduler (a
// write to a non-blocking socket with room does not block): a pool writer
// makes thousands in a row, and the scheduler's bookkeeping around each
// system call, and its monitor thread taking over processors from writers
// it sees in system calls, cost about as much as the user-space side of the
// write itself on this kind of machine. Should the buffer be full after all
// (EAGAIN), RawConn.Write waits for room like net.Conn.Write.
func (c *wsConn) writeNow(b []byte) error {
	if c.raw == nil {
		_, err := c.ws.NetConn().Write(b)
		return err
	}
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch errno {
			case 0:
				b = b[n:]
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				werr = errno
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return werr
}

// release ends a writer's ownership of the connection's queue. A write
// deadline set by a blocking writer is cleared first, while it still owns the connection:
// gws writes pings and pongs on its own, and an expired deadline would fail
// them; the next owner sets its own deadline before writing. Called with qmu held.
func (c *wsConn) release() {
	if c.deadline {
		_ = c.ws.SetWriteDeadline(time.Time{})
		c.deadline = false
	}
	c.scheduled = false
	// Back to the connection's own one-frame storage: a burst's larger array
	// is dropped (a [:0:0] slice would still point at it), and so is the last
	// frame, which the queue must not keep alive.
	c.first[0] = fanout.Frame{}
	c.queue = c.first[:0]
}

// abort closes a connection whose write failed; its reader then sees the
// close and unsubscribes everything.
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
		return true
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
