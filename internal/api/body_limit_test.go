package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
)

// TestOversizedChunkedBodyIsAnsweredAtOnce: a chunked body past the limit is
// answered 413 as soon as the limit is crossed, and the connection closes.
// The 413 used to wait for up to 256 KiB more of the body (net/http drains an
// unread body to keep the connection), so a client that had sent its 65 KiB
// and waited got nothing until the read timeout.
func TestOversizedChunkedBodyIsAnsweredAtOnce(t *testing.T) {
	e := newEnv(t, board.Options{})
	e.create(map[string]any{"leaderboard_id": "s", "name": "n"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/leaderboards/s/scores HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat(" ", 1024)
	for i := 0; i < 70; i++ { // 70 KiB, and the body does not end
		fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to an oversized body: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || !res.Close {
		t.Fatalf("status %d, close %v; want 413 and the connection closed", res.StatusCode, res.Close)
	}
}
