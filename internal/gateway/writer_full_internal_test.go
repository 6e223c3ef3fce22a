package gateway

import (
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/store"
	"github.com/lbhq/leaderboard/internal/wsframe"
)

// socketConn is a connection of g to board "b" over a loopback TCP socket
// whose other end reads and discards everything: the writers can write to it
// for real.
func socketConn(t *testing.T, g *Gateway) *wsConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, client)
	t.Cleanup(func() { client.Close(); server.Close() })
	c := &wsConn{g: g, board: "b", subs: map[string]*wsSub{}, nc: wsframe.NewConn(server)}
	c.queue = c.first[:0]
	c.raw, _ = server.(syscall.Conn).SyscallConn()
	return c
}

// TestClosedConnectionsWaitingForTheWriterDoNotBlockTheHub: a writer's
// channel has room for MaxConnections connections, and a connection is in
// it at most once; but a connection that closed (a reconnect storm on a node
// that is behind) gives back its place under MaxConnections at once, while
// it may still wait in the channel for its writer. The connections that
// take those places can then find the channel full. Handing a frame to a
// connection must never wait for a writer: the hub does it holding the
// board's lock, and a writer merging a connection's updates (conflate)
// takes that lock, so the flush and the writer waited for each other for
// good, and every viewer of the board and of the writer froze.
//
// Deterministic: one writer with room for MaxConnections (2) connections,
// not started until the channel is full of closed connections.
func TestClosedConnectionsWaitingForTheWriterDoNotBlockTheHub(t *testing.T) {
	ctx := context.Background()
	hub, mem := seededHub(10, 1, nil)
	g := New(hub, Options{MaxConnections: 2, SendQueue: 64})
	g.writers.stop()
	g.writers = &writerPool{chans: []chan *wsConn{make(chan *wsConn, 2)}, batches: []*batch{{counts: &writeCounts{}}}, done: make(chan struct{})}
	defer g.writers.stop()
	res := make([]store.Result, 1)
	change := func(i int) {
		mem.Submit(ctx, "b", []store.Submission{{ParticipantID: "p0", Score: uint64(1000 + i)}}, res)
		hub.Flush(ctx)
	}
	spec := fanout.Spec{Kind: fanout.Top, Limit: 5}

	// Two viewers, each with two updates waiting (a writer that is behind),
	// then gone.
	a, b := socketConn(t, g), socketConn(t, g)
	a.subscribe("x", spec, nil, "")
	b.subscribe("x", spec, nil, "")
	change(1)
	change(2)
	a.close()
	b.close()

	// Two new viewers take their places; their writer is behind too, and
	// has written what they had so far.
	a2, b2 := socketConn(t, g), socketConn(t, g)
	for _, c := range []*wsConn{a2, b2} {
		c.scheduled = true
		c.subscribe("x", spec, nil, "")
		c.qmu.Lock()
		c.queue, c.scheduled = c.first[:0], false
		c.qmu.Unlock()
	}

	flushed := make(chan struct{})
	go func() { change(3); close(flushed) }() // the channel is full: a2's frame waits
	time.Sleep(50 * time.Millisecond)
	go g.writers.run(g.writers.chans[0], g.writers.batches[0])
	select {
	case <-flushed:
	case <-time.After(5 * time.Second):
		t.Fatal("the flush is still waiting for the writer, and the writer for the flush's lock")
	}
	for _, c := range []*wsConn{a2, b2} {
		for i := 0; ; i++ {
			c.qmu.Lock()
			n := len(c.queue)
			c.qmu.Unlock()
			if n == 0 {
				break
			}
			if i > 500 {
				t.Fatalf("%d frames still waiting for the writer", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
