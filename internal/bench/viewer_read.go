package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"
	"unsafe"

	"github.com/lxzan/gws"
	"golang.org/x/sys/unix"
)

// The viewers' own read loop. With 15,000 viewers on a 2-core machine the load tool competes with
// the server for the processors, so reading has to be cheap: gws's ReadLoop reads a frame through a
// bufio.Reader and then reads again until the socket says EAGAIN, two read calls per frame. This
// loop reads the socket once per wake-up into the viewer's buffer, handles every complete frame
// in it, and waits for the next wake-up when a read came back short (the socket was drained); the
// handshake and the writes (subscribe, pong, close) stay with gws.

// viewerBufSize is a viewer's read buffer while idle: an update frame of a top-100 window fits
// (about 2.8 KB at --marker-rank bottom); a snapshot (about 9.5 KB) grows it for as long as needed.
const viewerBufSize = 4096

// maxViewerFrame bounds a frame the viewer accepts: the server never sends more than a top-1000
// snapshot, far below it.
const maxViewerFrame = 1 << 20

var errViewerClosed = errors.New("the server closed the connection")

// readLoop reads frames until the connection ends (the error says why), calling onFrame for each
// text frame and answering pings.
func (v *viewer) readLoop(conn *gws.Conn) error {
	sc, ok := conn.NetConn().(syscall.Conn)
	if !ok {
		return errors.New("not a TCP connection")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// The kernel stamps each arriving segment with the time it reached the socket; a read hands
	// back the stamp of the last segment it took. That is when the frame reached the viewer, apart
	// from how long this process took to get round to reading it (see arrivalOf).
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	buf := make([]byte, 0, viewerBufSize)
	var oob [64]byte
	var loopErr error
	rerr := raw.Read(func(fd uintptr) bool {
		for {
			if len(buf) == cap(buf) { // a frame larger than the buffer: make room for it
				buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
			}
			free := buf[len(buf):cap(buf)]
			n, oobn, _, _, err := unix.Recvmsg(int(fd), free, oob[:], 0)
			if err == nil {
				v.arrived = arrivalOf(oob[:oobn])
			}
			switch {
			case err == unix.EAGAIN:
				return false // drained: wait for the next wake-up
			case err == unix.EINTR:
				continue
			case err != nil:
				loopErr = err
				return true
			case n == 0:
				loopErr = io.EOF
				return true
			}
			buf = buf[:len(buf)+n]
			rest, err := v.handleFrames(conn, buf)
			if err != nil {
				loopErr = err
				return true
			}
			buf = buf[:copy(buf, rest)]
			if len(buf) == 0 && cap(buf) > viewerBufSize {
				buf = make([]byte, 0, viewerBufSize) // a snapshot's room is not kept
			}
			if n < len(free) {
				return false // a short read: the socket is drained
			}
		}
	})
	if loopErr != nil {
		return loopErr
	}
	return rerr
}

// arrivalOf returns the receive timestamp (Unix nanoseconds) in a recvmsg's control data, or 0
// when it holds none. Parsed by hand: unix.ParseSocketControlMessage allocates on every read.
func arrivalOf(oob []byte) int64 {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.SizeofCmsghdr+int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.SizeofCmsghdr]))
			return ts.Nano()
		}
		oob = oob[min(cmsgAlign(l), len(oob)):]
	}
	return 0
}

func cmsgAlign(n int) int { return (n + 7) &^ 7 }

// handleFrames handles the complete frames at the start of b and returns what is left (the start
// of a frame still arriving).
func (v *viewer) handleFrames(conn *gws.Conn, b []byte) ([]byte, error) {
	for {
		payload, opcode, size, err := nextFrame(b)
		if err != nil || size == 0 {
			return b, err
		}
		switch opcode {
		case gws.OpcodeText:
			v.onFrame(conn, payload, time.Now().UnixNano())
		case gws.OpcodePing:
			_ = conn.WritePong(payload)
		case gws.OpcodeCloseConnection:
			return nil, errViewerClosed
		case gws.OpcodePong, gws.OpcodeBinary:
		default:
			return nil, fmt.Errorf("unexpected frame opcode %d", opcode)
		}
		b = b[size:]
	}
}

// nextFrame parses the server's frame at the start of b (RFC 6455, 5.2: unfragmented, unmasked,
// uncompressed, as this server sends them). size is 0 when b does not hold a whole frame yet.
func nextFrame(b []byte) (payload []byte, opcode gws.Opcode, size int, err error) {
	if len(b) < 2 {
		return nil, 0, 0, nil
	}
	if b[0]&0x80 == 0 || b[0]&0x70 != 0 {
		return nil, 0, 0, fmt.Errorf("fragmented or compressed frame (first byte %#x)", b[0])
	}
	if b[1]&0x80 != 0 {
		return nil, 0, 0, errors.New("masked frame from the server")
	}
	opcode = gws.Opcode(b[0] & 0x0F)
	n, head := uint64(b[1]&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return nil, 0, 0, nil
		}
		n, head = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return nil, 0, 0, nil
		}
		n, head = binary.BigEndian.Uint64(b[2:]), 10
	}
	if n > maxViewerFrame {
		return nil, 0, 0, fmt.Errorf("a frame of %d bytes", n)
	}
	if len(b) < head+int(n) {
		return nil, 0, 0, nil
	}
	return b[head : head+int(n)], opcode, head + int(n), nil
}
