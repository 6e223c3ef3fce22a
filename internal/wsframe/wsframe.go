// Package wsframe writes complete WebSocket frames straight to a socket, several
// in one system call, beside the WebSocket library.
//
// The library (gws) writes one frame per call, which is right for one message.
// A broadcaster that fell behind has several frames waiting for a connection;
// much of a frame's cost on loopback is per write (the send, the receiver's
// softirq and wakeup), so they go out as one vectored write instead.
//
// Writing beside the library takes two things. Frames must never interleave:
// every write, the library's and ours, is one call on the connection, made
// under Conn's lock. And nothing may follow the close frame (RFC 6455, 5.5.1):
// Conn notices the library's close frame go by and refuses frames after it. The
// library must not compress (per-message deflate keeps state across frames).
package wsframe

import (
	"errors"
	"net"
	"sync"
)

// MaxHeader is the largest header of a server frame: unmasked, 8 bytes of length.
const MaxHeader = 10

// ErrClosed is returned by WriteFrames once the close frame has been written.
var ErrClosed = errors.New("wsframe: the connection's close frame has been sent")

// AppendTextHeader appends the header of an unmasked, final text frame with
// an n-byte payload (RFC 6455, section 5.2).
func AppendTextHeader(h []byte, n int) []byte {
	const finText = 0x81
	switch {
	case n < 126:
		return append(h, finText, byte(n))
	case n < 1<<16:
		return append(h, finText, 126, byte(n>>8), byte(n))
	default:
		return append(h, finText, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// Conn is the connection as the WebSocket library sees it: hand the library a
// Conn instead of the raw connection, and write frames beside it with
// WriteFrames. The library writes each frame in one Write call (gws does), so
// a Write whose first byte is that of a final close frame is the close frame.
type Conn struct {
	net.Conn
	mu     sync.Mutex
	closed bool // the close frame went out
}

// NewConn wraps c.
func NewConn(c net.Conn) *Conn { return &Conn{Conn: c} }

// finClose is the first byte of an unfragmented close frame.
const finClose = 0x88

// Write is the library's write: one frame (or, before the upgrade, the
// handshake response), under the lock WriteFrames takes.
func (c *Conn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.Conn.Write(b)
	if len(b) > 0 && b[0] == finClose {
		c.closed = true
	}
	return n, err
}

// WriteFrames writes bufs, which hold whole frames (headers and payloads), in
// one call: a writev on TCP, otherwise (TLS, pipes in tests) one Write of the
// buffers joined in *join, which is reused. After the close frame it writes
// nothing and returns ErrClosed.
func (c *Conn) WriteFrames(bufs [][]byte, join *[]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return Write(c.Conn, bufs, join)
}

// Write writes bufs, which hold whole frames, to nc in one call, as
// Conn.WriteFrames does, for a connection no library writes to.
func Write(nc net.Conn, bufs [][]byte, join *[]byte) error {
	if _, ok := nc.(*net.TCPConn); ok {
		v := net.Buffers(bufs)
		_, err := v.WriteTo(nc) // writev, up to 1,024 buffers per call
		return err
	}
	b := (*join)[:0]
	for _, p := range bufs {
		b = append(b, p...)
	}
	*join = b
	_, err := nc.Write(b)
	return err
}
