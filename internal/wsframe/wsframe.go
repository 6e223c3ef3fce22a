// Package wsframe writes complete WebSocket frames straight to a socket, several
// in one system call.
//
// The WebSocket library (gws) writes one frame per call, which is right for one
// message. A broadcaster that fell behind has several frames waiting for a
// connection; on loopback most of a frame's cost is per write (the send, the
// receiver's softirq and wakeup), not per byte, so they go out as one vectored
// write instead. Writing beside the library is safe as long as every write is a
// single call on the connection (Go serialises calls on one socket, and gws
// writes each of its frames, pings, pongs and close, in one call) and the
// library does not compress (per-message deflate keeps state across frames).
package wsframe

import "net"

// MaxHeader is the largest header of a server frame: unmasked, 8 bytes of length.
const MaxHeader = 10

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

// Write writes bufs, which hold whole frames (headers and payloads), to nc in
// one call: a writev on TCP, otherwise (TLS, pipes in tests) one Write of the
// buffers joined in *join, which is reused.
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
