package wsframe

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// collector is a gws client handler that records the messages it reads.
type collector struct {
	gws.BuiltinEventHandler
	msgs chan []byte
}

func (c *collector) OnMessage(_ *gws.Conn, m *gws.Message) {
	c.msgs <- bytes.Clone(m.Bytes())
	m.Close()
}

// accept answers a WebSocket handshake on conn by hand (what an upgrade does),
// so that what follows on conn is only what the test writes.
func accept(t *testing.T, conn net.Conn) {
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		t.Errorf("handshake: %v", err)
		return
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_, err = conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"))
	if err != nil {
		t.Errorf("handshake: %v", err)
	}
}

// TestFramesReadByAClient writes frames of every header size (7-bit, 16-bit and
// 64-bit lengths, at their edges) in one call, over TCP (the vectored write) and
// over a pipe (the joined one), and checks that a WebSocket client reads each
// message whole, in order.
func TestFramesReadByAClient(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 200_000}
	payloads := make([][]byte, len(sizes))
	var bufs [][]byte
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = 'a' + byte((i+j)%26)
		}
		payloads[i] = p
		bufs = append(bufs, AppendTextHeader(nil, n), p)
	}
	for _, transport := range []string{"tcp", "pipe"} {
		t.Run(transport, func(t *testing.T) {
			var server, client net.Conn
			if transport == "tcp" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				accepted := make(chan net.Conn, 1)
				go func() {
					c, err := ln.Accept()
					if err != nil {
						t.Error(err)
					}
					accepted <- c
				}()
				if client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
					t.Fatal(err)
				}
				server = <-accepted
			} else {
				server, client = net.Pipe()
			}
			defer server.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				accept(t, server)
				var join []byte
				// Twice: the second call reuses what the first left in join.
				for range 2 {
					if err := Write(server, append([][]byte(nil), bufs...), &join); err != nil {
						t.Errorf("write: %v", err)
					}
				}
			}()
			h := &collector{msgs: make(chan []byte, 2*len(sizes))}
			ws, _, err := gws.NewClientFromConn(h, &gws.ClientOption{Addr: "ws://example/", ReadMaxPayloadSize: 1 << 20}, client)
			if err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			go ws.ReadLoop()
			defer ws.NetConn().Close()
			for round := range 2 {
				for i, want := range payloads {
					select {
					case got := <-h.msgs:
						if !bytes.Equal(got, want) {
							t.Fatalf("round %d message %d: %d bytes, want %d (%q...)", round, i, len(got), len(want), got[:min(len(got), 8)])
						}
					case <-time.After(10 * time.Second):
						t.Fatalf("round %d message %d never arrived", round, i)
					}
				}
			}
			<-done
		})
	}
}

// TestConnRefusesFramesAfterClose: once the library's close frame has gone
// through Conn, WriteFrames writes nothing more; the handshake response (which
// starts with "HTTP") and other frames do not count as a close.
func TestConnRefusesFramesAfterClose(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	c := NewConn(server)
	var join []byte
	frame := [][]byte{AppendTextHeader(nil, 2), []byte("hi")}
	steps := []struct {
		lib     []byte // written by "the library" first, if any
		wantErr error
	}{
		{lib: []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")},
		{lib: []byte{0x89, 0}}, // a ping
		{},
		{lib: []byte{0x88, 2, 0x03, 0xe9}, wantErr: ErrClosed}, // close 1001
		{wantErr: ErrClosed},
	}
	for i, s := range steps {
		if s.lib != nil {
			if _, err := c.Write(s.lib); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.WriteFrames(append([][]byte(nil), frame...), &join); err != s.wantErr {
			t.Fatalf("step %d: WriteFrames returned %v, want %v", i, err, s.wantErr)
		}
	}
	server.Close()
	b := <-got
	// The handshake, the ping, three 4-byte frames (steps 0-2), the close frame.
	if want := len(steps[0].lib) + 2 + 3*4 + 4; len(b) != want {
		t.Fatalf("%d bytes on the wire, want %d: %q", len(b), want, b)
	}
	if !bytes.HasSuffix(b, []byte{0x88, 2, 0x03, 0xe9}) {
		t.Fatalf("the close frame is not the last thing written: %q", b)
	}
}
