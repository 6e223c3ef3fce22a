package bench

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/lxzan/gws"
	"golang.org/x/sys/unix"
)

// serverFrame is a frame as the service writes it: FIN, the opcode, no mask.
func serverFrame(opcode byte, payload []byte) []byte {
	b := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
	return append(b, payload...)
}

// The viewers' frame parser at each length encoding, on frames cut anywhere, and on frames the
// service never sends.
func TestNextFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 2742, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{'x'}, n)
		whole := append(serverFrame(byte(gws.OpcodeText), payload), serverFrame(byte(gws.OpcodePing), []byte("hi"))...)
		first := len(whole) - 4
		for cut := 0; cut < first; cut += max(1, first/50) {
			if _, _, size, err := nextFrame(whole[:cut]); size != 0 || err != nil {
				t.Fatalf("%d bytes cut at %d: size %d, err %v, want no frame yet", n, cut, size, err)
			}
		}
		p, op, size, err := nextFrame(whole)
		if err != nil || size != first || op != gws.OpcodeText || !bytes.Equal(p, payload) {
			t.Fatalf("%d bytes: size %d (want %d), opcode %d, err %v", n, size, first, op, err)
		}
		p, op, size, err = nextFrame(whole[first:])
		if err != nil || size != 4 || op != gws.OpcodePing || string(p) != "hi" {
			t.Fatalf("the ping after %d bytes: size %d, opcode %d, %q, %v", n, size, op, p, err)
		}
	}
	for name, b := range map[string][]byte{
		"fragment":   {0x01, 0x01, 'x'},
		"compressed": {0xC1, 0x01, 'x'},
		"masked":     {0x81, 0x81, 1, 2, 3, 4, 'x'},
		"huge":       binary.BigEndian.AppendUint64([]byte{0x81, 127}, 1<<40),
	} {
		if _, _, _, err := nextFrame(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzNextFrame(f *testing.F) {
	f.Add(serverFrame(1, []byte(`{"type":"update"}`)))
	f.Add([]byte{0x81, 126, 0, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, _, size, err := nextFrame(b)
		if err == nil && size > 0 && (size > len(b) || len(p) > size) {
			t.Fatalf("size %d, payload %d of %d bytes", size, len(p), len(b))
		}
	})
}

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	h := unix.Cmsghdr{Level: level, Type: typ}
	h.SetLen(unix.CmsgLen(len(data)))
	b := make([]byte, unix.CmsgSpace(len(data)))
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr))
	copy(b[unix.SizeofCmsghdr:], data)
	return b
}

func TestArrivalOfControlData(t *testing.T) {
	ts := unix.NsecToTimespec(1_790_000_000_123_456_789)
	stamp := unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts))
	other := cmsg(unix.SOL_SOCKET, unix.SCM_RIGHTS, []byte{1, 2, 3, 4})
	good := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, stamp)
	for _, tc := range []struct {
		name string
		oob  []byte
		want int64
	}{
		{"none", nil, 0},
		{"timestamp", good, 1_790_000_000_123_456_789},
		{"after another message", append(append([]byte{}, other...), good...), 1_790_000_000_123_456_789},
		{"another message only", other, 0},
		{"cut short", good[:len(good)-4], 0},
		{"length below a header", func() []byte { b := append([]byte{}, good...); b[0] = 3; return b }(), 0},
		{"length past the data", func() []byte { b := append([]byte{}, good...); b[0] = 200; return b }(), 0},
		{"timestamp too short", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, stamp[:8]), 0},
	} {
		if got := arrivalOf(tc.oob); got != tc.want {
			t.Errorf("%s: arrivalOf = %d, want %d", tc.name, got, tc.want)
		}
	}
}
