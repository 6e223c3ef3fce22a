package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// With --procs > 1 the viewers live in child processes: this program re-executed as the hidden
// mode "bench viewers-child --group <json>", one group of viewers each. The parent drives the
// submissions. The protocol is lines of text:
//
//	child stdout: ready {"connected":..,"failed":..,"subscribed":..}   all viewers subscribed or given up
//	parent stdin: window <start-unix-ns> <end-unix-ns>                   the measured window (again to shorten it)
//	parent stdin: mk-<k> <unix-ns>                                       marker k was acknowledged at that time
//	parent stdin: stop                                                   close the viewers and report
//	child stdout: result {groupResult JSON}                              histograms encoded (HDR V2)
//
// Both processes run on the same machine, so Unix times compare across them. A child exits when
// its stdin closes (the parent went away), with or without "stop".

const viewersChildMode = "viewers-child"

func viewersChildMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(viewersChildMode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	spec := fs.String("group", "", "the group's configuration as JSON (set by the parent)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var gc groupConfig
	if err := json.Unmarshal([]byte(*spec), &gc); err != nil || gc.Viewers < 1 {
		fmt.Fprintf(stderr, "bench %s: bad --group %q: %v\n", viewersChildMode, *spec, err)
		return 2
	}
	label := fmt.Sprintf("viewers %d..%d: ", gc.Offset, gc.Offset+gc.Viewers-1)
	g, err := newViewerGroup(gc, new(ackTable))
	if err != nil {
		fmt.Fprintf(stderr, "bench %s: %v\n", viewersChildMode, err)
		return 2
	}

	cpu := &childCPU{}
	stop := make(chan struct{})
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(os.Stdin)
		stopped := false
		for sc.Scan() {
			line := sc.Bytes()
			switch {
			case bytes.HasPrefix(line, []byte(markerPrefix)):
				k, ns, ok := parseAckLine(line)
				if ok {
					g.acks.set(k-gc.MarkerBase, ns)
				}
			case bytes.HasPrefix(line, []byte("window ")):
				var s, e int64
				if _, err := fmt.Sscanf(string(line), "window %d %d", &s, &e); err == nil {
					g.setWindow(time.Unix(0, s), time.Unix(0, e))
					cpu.window(time.Unix(0, s), time.Unix(0, e))
				}
			case string(line) == "stop":
				// Every acknowledgement sent before "stop" has been applied: lines are read in order.
				if !stopped {
					stopped = true
					close(stop)
				}
			}
		}
	}()

	g.start()
	ri, err := g.waitReady(eof, readyTimeout(Config{Timeout: gc.Timeout}, gc.Viewers, gc.Ramp), stderr, label)
	if err != nil { // the parent went away
		g.stop()
		return 1
	}
	b, _ := json.Marshal(ri)
	if _, err := fmt.Fprintf(stdout, "ready %s\n", b); err != nil {
		g.stop()
		return 1
	}

	select {
	case <-stop:
	case <-eof:
		select {
		case <-stop: // "stop" was the last line
		default:
			g.stop()
			return 1
		}
	}
	res := g.finish()
	res.CPUS = round3(cpu.used().Seconds())
	if err := res.encodeHists(); err != nil {
		fmt.Fprintf(stderr, "bench %s: %v\n", viewersChildMode, err)
		return 1
	}
	b, err = json.Marshal(res)
	if err == nil {
		_, err = fmt.Fprintf(stdout, "result %s\n", b)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench %s: %v\n", viewersChildMode, err)
		return 1
	}
	return 0
}

// parseAckLine reads "mk-<k> <unix-ns>".
func parseAckLine(line []byte) (k, ns int64, ok bool) {
	line = line[len(markerPrefix):]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return 0, 0, false
	}
	k, err1 := strconv.ParseInt(string(line[:sp]), 10, 64)
	ns, err2 := strconv.ParseInt(string(line[sp+1:]), 10, 64)
	return k, ns, err1 == nil && err2 == nil
}

// childCPU measures this process's CPU over the measured window: sampled when it opens and when
// it closes (or when the results are taken, if earlier).
type childCPU struct {
	mu     sync.Mutex
	t0, t1 *time.Timer
	c0, c1 *cpuSample
}

func (c *childCPU) window(start, end time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t0 == nil {
		c.t0 = time.AfterFunc(time.Until(start), func() {
			s := takeCPUSample(0)
			c.mu.Lock()
			c.c0 = &s
			c.mu.Unlock()
		})
	}
	if c.t1 != nil {
		c.t1.Stop()
	}
	c.t1 = time.AfterFunc(time.Until(end), func() {
		s := takeCPUSample(0)
		c.mu.Lock()
		c.c1 = &s
		c.mu.Unlock()
	})
}

func (c *childCPU) used() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c0 == nil {
		return 0
	}
	end := c.c1
	if end == nil {
		s := takeCPUSample(0)
		end = &s
	}
	return end.self - c.c0.self
}

// childSet is the parent's side: the viewer processes, and the acknowledgements on their way to them.
type childSet struct {
	children   []*viewerChild
	timeout    time.Duration
	markerBase int64

	mu      sync.Mutex
	pending []byte // acknowledgement lines not yet sent
	flushed chan struct{}
	quit    chan struct{}
	done    chan struct{}
	closed  sync.Once
}

type viewerChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	w     *bufio.Writer
	lines chan string // stdout, line by line; closed at EOF
	werr  error       // first error writing to stdin
}

// ackFlushInterval: acknowledgements are batched to the children this often. Their delay does not
// enter the measurement (viewers keep what they saw until the acknowledgement time arrives).
const ackFlushInterval = 5 * time.Millisecond

func startViewerChildren(ctx context.Context, cfg Config, gcfgs []groupConfig, logw io.Writer) (*childSet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("viewer processes: %w", err)
	}
	s := &childSet{
		timeout:    readyTimeout(cfg, cfg.Viewers, cfg.Ramp),
		markerBase: gcfgs[0].MarkerBase,
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, gc := range gcfgs {
		spec, _ := json.Marshal(gc)
		cmd := exec.Command(exe, "bench", viewersChildMode, "--group", string(spec))
		// Its own process group: a Ctrl-C in the terminal reaches the parent only, which then stops
		// the children in order (and if the parent dies, their stdin closes).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		// One processor per viewer process unless GOMAXPROCS says otherwise: its goroutines only
		// wait on sockets, and more processors only add hand-offs between threads (at 7,500
		// viewers the tool's CPU fell from 1.0 to 0.77 cores with it, docs/BENCHMARKS.md); with
		// --procs 2 the two processes still use both cores.
		if os.Getenv("GOMAXPROCS") == "" {
			cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		}
		if logw != io.Discard {
			cmd.Stderr = logw
		}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("viewer process: %w", err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("viewer process: %w", err)
		}
		if err := cmd.Start(); err != nil {
			s.close()
			return nil, fmt.Errorf("viewer process (%s bench %s): %w", exe, viewersChildMode, err)
		}
		c := &viewerChild{cmd: cmd, stdin: stdin, w: bufio.NewWriterSize(stdin, 64<<10), lines: make(chan string, 4)}
		go func() {
			defer close(c.lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 256<<20) // a result carries encoded histograms
			for sc.Scan() {
				c.lines <- sc.Text()
			}
		}()
		s.children = append(s.children, c)
	}
	go s.flushLoop()
	return s, nil
}

// expect waits for the next line of child i starting with prefix, and returns the rest.
func (s *childSet) expect(ctx context.Context, i int, prefix string, timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-s.children[i].lines:
			if !ok {
				return nil, fmt.Errorf("viewer process %d exited before %q", i, prefix)
			}
			if rest, found := bytes.CutPrefix([]byte(line), []byte(prefix+" ")); found {
				return rest, nil
			}
		case <-t.C:
			return nil, fmt.Errorf("viewer process %d: no %q line within %s", i, prefix, timeout)
		case <-ctx.Done():
			return nil, errInterrupted
		}
	}
}

func (s *childSet) waitReady(ctx context.Context) (readyInfo, error) {
	var sum readyInfo
	for i := range s.children {
		b, err := s.expect(ctx, i, "ready", s.timeout)
		if err != nil {
			return sum, err
		}
		var ri readyInfo
		if err := json.Unmarshal(b, &ri); err != nil {
			return sum, fmt.Errorf("viewer process %d: bad ready line: %v", i, err)
		}
		sum.Connected += ri.Connected
		sum.Failed += ri.Failed
		sum.Subscribed += ri.Subscribed
	}
	return sum, nil
}

// broadcast writes b to every child (from one goroutine at a time).
func (s *childSet) broadcast(b []byte) {
	for _, c := range s.children {
		if c.werr != nil {
			continue
		}
		if _, err := c.w.Write(b); err == nil {
			c.werr = c.w.Flush()
		} else {
			c.werr = err
		}
	}
}

// flushLoop sends the pending acknowledgements every ackFlushInterval until quit.
func (s *childSet) flushLoop() {
	defer close(s.done)
	t := time.NewTicker(ackFlushInterval)
	defer t.Stop()
	var buf []byte
	for {
		select {
		case <-t.C:
		case <-s.quit:
			return
		}
		s.mu.Lock()
		buf, s.pending = s.pending, buf[:0]
		if len(buf) > 0 {
			s.broadcast(buf)
		}
		s.mu.Unlock()
	}
}

func (s *childSet) setWindow(start, end time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broadcast([]byte(fmt.Sprintf("window %d %d\n", start.UnixNano(), end.UnixNano())))
}

func (s *childSet) ack(idx, ns int64) {
	s.mu.Lock()
	// The line names the marker by its id number: idx is relative to the marker base, which the
	// children subtract again.
	s.pending = append(s.pending, markerPrefix...)
	s.pending = strconv.AppendInt(s.pending, idx+s.markerBase, 10)
	s.pending = append(s.pending, ' ')
	s.pending = strconv.AppendInt(s.pending, ns, 10)
	s.pending = append(s.pending, '\n')
	s.mu.Unlock()
}

// finish sends the last acknowledgements and "stop", then collects and merges the results.
func (s *childSet) finish() (*groupResult, error) {
	s.stopFlusher()
	s.mu.Lock()
	s.broadcast(append(s.pending, "stop\n"...))
	s.pending = nil
	s.mu.Unlock()
	total := &groupResult{}
	var firstErr error
	for i := range s.children {
		// Closing thousands of connections and encoding the histograms takes a moment.
		b, err := s.expect(context.Background(), i, "result", 60*time.Second)
		if err == nil {
			var r groupResult
			if err = json.Unmarshal(b, &r); err == nil {
				err = r.decodeHists()
			}
			if err == nil {
				total.add(&r)
				continue
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("viewer process %d: %w", i, err)
		}
	}
	s.close()
	return total, firstErr
}

func (s *childSet) stopFlusher() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
		<-s.done
	}
}

// close closes the children's stdin (they exit), waits a little and kills what is left.
func (s *childSet) close() {
	s.closed.Do(func() {
		s.mu.Lock()
		select {
		case <-s.quit:
		default:
			close(s.quit)
		}
		s.mu.Unlock()
		for _, c := range s.children {
			_ = c.stdin.Close()
		}
		for _, c := range s.children {
			exited := make(chan struct{})
			go func() { _ = c.cmd.Wait(); close(exited) }()
			t := time.NewTimer(10 * time.Second)
			select {
			case <-exited:
			case <-t.C:
				_ = c.cmd.Process.Kill()
				<-exited
			}
			t.Stop()
		}
	})
}
