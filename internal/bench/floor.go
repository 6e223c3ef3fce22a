package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The floor server is the cheapest possible net/http server that still looks like the real one
// (JSON body, production timeouts, body read): whatever a real run costs above it is the service.

// floorBody returns the floor's response: {"ok":true}, padded to size bytes when size is
// larger, so that a floor can be measured with the same response size as a real read (a top-100
// page is about 7 KB, which takes two write calls where a small body takes one).
func floorBody(size int) []byte {
	body := []byte(`{"ok":true}`)
	if pad := size - len(body) - len(`,"pad":""`); pad > 0 {
		body = append(body[:len(body)-1], `,"pad":"`...)
		body = append(body, strings.Repeat("x", pad)...)
		body = append(body, `"}`...)
	}
	return body
}

func floorHandler(body []byte) http.HandlerFunc {
	length := []string{strconv.Itoa(len(body))}
	return func(w http.ResponseWriter, r *http.Request) {
		// A real handler reads the request body; so does this one, so a POST floor pays for it too.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header()["Content-Length"] = length
		_, _ = w.Write(body)
	}
}

func newFloorServer(bodyBytes int) *http.Server {
	return &http.Server{
		Handler:           floorHandler(floorBody(bodyBytes)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
}

// floorServerMain is the hidden mode "floor-server": it prints the address it listens on as its
// first stdout line, then serves until killed, interrupted, --max-lifetime passes, or (with
// --exit-on-stdin-eof) its parent goes away.
func floorServerMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("floor-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address; port 0 picks a free port")
	maxLifetime := fs.Duration("max-lifetime", 10*time.Minute, "exit after this long even if nobody kills the server")
	bodyBytes := fs.Int("body-bytes", 0, "pad the response body to this many bytes")
	exitOnEOF := fs.Bool("exit-on-stdin-eof", false, "exit when stdin is closed (the parent holds it open while it needs the server)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *maxLifetime <= 0 {
		fmt.Fprintln(stderr, "bench floor-server: --max-lifetime must be > 0")
		return 2
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "bench floor-server: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, ln.Addr().String())

	srv := newFloorServer(*bodyBytes)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	code := waitForExit("floor-server", served, *exitOnEOF, *maxLifetime, stderr)
	_ = srv.Close()
	return code
}

// waitForExit is the end of a floor server's main: it returns 0 when the process is interrupted
// or terminated, when --max-lifetime passes or (with exitOnEOF) when stdin is closed because the
// parent went away, and 1 when serving fails.
func waitForExit(mode string, served <-chan error, exitOnEOF bool, maxLifetime time.Duration, stderr io.Writer) int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	parentGone := make(chan struct{})
	if exitOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(parentGone)
		}()
	}
	lifetime := time.NewTimer(maxLifetime)
	defer lifetime.Stop()

	select {
	case err := <-served:
		fmt.Fprintf(stderr, "bench %s: %v\n", mode, err)
		return 1
	case <-sig:
	case <-parentGone:
	case <-lifetime.C:
	}
	return 0
}

// floorChild is a floor server (floor-server or ws-floor-server) running in a child process of
// this executable, so that its CPU use is separate from the client's, as it would be for the real
// server.
type floorChild struct {
	addr  string
	pid   int
	cmd   *exec.Cmd
	stdin io.Closer
}

const floorStartTimeout = 10 * time.Second

// startFloorServer re-executes os.Executable() as "bench <mode> --addr 127.0.0.1:0
// --exit-on-stdin-eof <args>" (mode is "floor-server" or "ws-floor-server") and waits for the
// address it prints first. Inside `go test` the executable is the test binary, which must then
// dispatch to Main (see TestMain in the tests).
func startFloorServer(ctx context.Context, logw io.Writer, mode string, args ...string) (*floorChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	argv := append([]string{"bench", mode, "--addr", "127.0.0.1:0", "--exit-on-stdin-eof"}, args...)
	cmd := exec.Command(exe, argv...)
	if logw != io.Discard {
		cmd.Stderr = logw
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	c := &floorChild{pid: cmd.Process.Pid, cmd: cmd, stdin: stdin}

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	timeout := time.NewTimer(floorStartTimeout)
	defer timeout.Stop()
	select {
	case line := <-lines:
		// The first line is the address; tolerate a "listening on ADDR" style line too.
		fields := strings.Fields(line)
		if len(fields) > 0 {
			if _, _, err := net.SplitHostPort(fields[len(fields)-1]); err == nil {
				c.addr = fields[len(fields)-1]
				return c, nil
			}
		}
		c.stop()
		return nil, fmt.Errorf("%s (%s bench %s) did not print its address, first line %q", mode, exe, mode, line)
	case <-timeout.C:
		c.stop()
		return nil, errors.New(mode + " did not print its address within " + floorStartTimeout.String())
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// stop kills the child and reaps it. Closing stdin first also makes it exit by itself if the
// kill were to fail.
func (c *floorChild) stop() {
	_ = c.stdin.Close()
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}
