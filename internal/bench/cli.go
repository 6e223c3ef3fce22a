package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/flagenv"
)

// envPrefix: every flag --some-flag can also come from LEADERBOARD_BENCH_SOME_FLAG.
const envPrefix = "LEADERBOARD_BENCH"

func envName(flagName string) string { return flagenv.Name(envPrefix, flagName) }

var modeSummary = map[string]string{
	ModeSubmit:  "POST scores to /v1/leaderboards/{id}/scores (or scores:batch with --batch)",
	ModeRead:    "seed participants through scores:batch, then GET top-100 rankings and participant lookups",
	ModeFloor:   "the same client against a trivial net/http server in a child process: the HTTP floor",
	ModeViewers: "WebSocket viewers of one leaderboard while submitting: delay from a score's acknowledgement to each viewer",
}

var modeOrder = []string{ModeSubmit, ModeRead, ModeFloor, ModeViewers}

// options are the command-line settings: the run's Config plus what only the CLI needs.
type options struct {
	cfg      Config
	jsonPath string
	secret   string // the server's --auth-secret: mint an admin token when --token is not given
}

// newFlagSet declares the flags of mode, bound to o (whose values are the defaults). It returns
// nil for an unknown mode.
func newFlagSet(mode string, o *options, out io.Writer) *flag.FlagSet {
	if _, ok := modeSummary[mode]; !ok {
		return nil
	}
	c := &o.cfg
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(out)

	if mode != ModeFloor {
		fs.StringVar(&c.URL, "url", c.URL, "base URL of the leaderboard service")
	}
	if mode == ModeViewers {
		fs.Float64Var(&c.Rate, "rate", c.Rate, "submissions/s, open loop spread over --connections (markers included)")
	} else {
		fs.Float64Var(&c.Rate, "rate", c.Rate, "target requests/s, open loop with latency measured from the intended send time;\n0 = closed loop, each connection sends back-to-back")
	}
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured duration")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "load before the measured duration, not recorded")
	fs.IntVar(&c.Connections, "connections", c.Connections, "keep-alive connections (one worker goroutine each)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "per-request timeout")
	fs.StringVar(&o.jsonPath, "json", "", `write the JSON report to this file; "-" prints JSON on stdout instead of the text report`)
	if mode != ModeFloor {
		fs.StringVar(&c.Token, "token", c.Token, "sent as \"Authorization: Bearer <token>\" on every request")
		fs.StringVar(&o.secret, "secret", "", "the server's --auth-secret: without --token, mint an admin token for the run with it\n(admin: the run creates leaderboards; server and admin tokens are not limited per IP)")
		fs.BoolVar(&c.Create, "create", c.Create, "create the leaderboards before the run (409 already_exists is fine)")
	}
	if mode == ModeSubmit || mode == ModeRead {
		fs.IntVar(&c.Leaderboards, "leaderboards", c.Leaderboards, "number of leaderboards, ids <prefix>-0 .. <prefix>-<n-1>, each request picks one at random")
		fs.StringVar(&c.Prefix, "prefix", c.Prefix, "leaderboard id prefix")
		fs.Uint64Var(&c.Seed, "seed", c.Seed, "random seed; 0 = from the clock (the report shows the seed used)")
	}
	switch mode {
	case ModeSubmit:
		fs.IntVar(&c.Participants, "participants", c.Participants, "participant ids p%015d drawn uniformly from [0, n)")
		fs.IntVar(&c.Batch, "batch", c.Batch, "0 = single submissions; n > 0 = POST scores:batch with n items per request (max 1000)")
	case ModeRead:
		fs.IntVar(&c.SeedParticipants, "seed-participants", c.SeedParticipants, "participants seeded into each leaderboard before measuring (batches of 1000)")
		fs.Float64Var(&c.TopRatio, "top-ratio", c.TopRatio, "share of GET rankings?limit=100; the rest are GET participants/{pid}?neighbors=2")
	case ModeFloor:
		fs.StringVar(&c.Method, "method", c.Method, "GET, or POST with a submission-sized JSON body")
		fs.IntVar(&c.BodyBytes, "body-bytes", c.BodyBytes, "response body size of the trivial server (0: {\"ok\":true}; a top-100 page is about 7000)")
	case ModeViewers:
		viewersFlags(fs, c)
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: leaderboard bench %s [flags]\n\n%s.\n\n", mode, modeSummary[mode])
		fmt.Fprintf(w, "Flags (each also read from %s_<FLAG> when not given, e.g. %s):\n", envPrefix, envName("connections"))
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, fills flags not given on the command line from the environment and
// rejects positional arguments. On failure it returns the exit code (0 for -h, 2 otherwise).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	// Empty environment values count as unset, so LEADERBOARD_BENCH_X= does not override a default.
	nonEmpty := func(k string) (string, bool) { v, ok := os.LookupEnv(k); return v, ok && v != "" }
	if err := flagenv.Parse(fs, envPrefix, args, nonEmpty); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		if strings.HasPrefix(err.Error(), envPrefix) { // a bad environment value; flag errors are printed by flag
			fmt.Fprintf(stderr, "bench %s: %v\n", fs.Name(), err)
		}
		return 2, false // the flag package already printed parse errors and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

// parseArgs turns "mode flags..." into options; the exit code is meaningful when ok is false.
func parseArgs(mode string, args []string, stderr io.Writer) (o options, code int, ok bool) {
	o = options{cfg: DefaultConfig(mode)}
	fs := newFlagSet(mode, &o, stderr)
	if fs == nil {
		fmt.Fprintf(stderr, "bench: unknown mode %q\n\n", mode)
		printUsage(stderr)
		return o, 2, false
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return o, code, false
	}
	if err := o.cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "bench %s: %v (see leaderboard bench %s -h)\n", mode, err, mode)
		return o, 2, false
	}
	if o.secret != "" && o.cfg.Token == "" {
		tok, err := auth.Mint([]byte(o.secret), auth.Admin, "bench", o.cfg.Warmup+o.cfg.Duration+time.Hour)
		if err != nil {
			fmt.Fprintf(stderr, "bench %s: --secret: %v\n", mode, err)
			return o, 2, false
		}
		o.cfg.Token = tok
	}
	return o, 0, true
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, `usage: leaderboard bench <mode> [flags]

Load tool for the leaderboard HTTP API.

Modes:
`)
	for _, m := range modeOrder {
		fmt.Fprintf(w, "  %-9s %s\n", m, modeSummary[m])
	}
	fmt.Fprintf(w, "  %-9s %s\n", "capacity", capacitySummary)
	fmt.Fprintf(w, `
With --rate > 0 the load is open loop: requests leave on a fixed schedule spread over the
connections and latency is measured from the intended send time (coordinated omission corrected).
With --rate 0 each connection sends back-to-back (closed loop). The text report goes to stdout;
--json FILE also writes a JSON report, --json - prints only the JSON. Progress goes to stderr.

Every flag can also be set with an environment variable %s_<FLAG>
(upper case, '-' as '_'), e.g. %s=5000 or %s=0.5;
a flag given on the command line wins.

Exit status: 0 done (the report counts any request errors), 1 the run failed, 2 usage error.
`, envPrefix, envName("rate"), envName("top-ratio"))
	for _, m := range modeOrder {
		o := options{cfg: DefaultConfig(m)}
		fs := newFlagSet(m, &o, w)
		fmt.Fprintf(w, "\nFlags of %s:\n", m)
		fs.PrintDefaults()
	}
	fmt.Fprint(w, `
Examples:
  leaderboard bench submit --rate 10000 --duration 30s
  leaderboard bench submit --batch 100 --connections 16 --json submit.json
  leaderboard bench read --top-ratio 0.5 --leaderboards 4 --rate 20000
  leaderboard bench floor --method POST --rate 10000
  leaderboard bench viewers --viewers 1000 --mix top=8,participant=1,around=1 --rate 1000 --top-rate 100
  leaderboard bench viewers --viewers 1000 --marker-rank top --json viewers-worst-case.json
  leaderboard bench viewers --viewers 15000 --procs 2 --ramp 2000 --duration 30s --json viewers.json
  leaderboard bench viewers --viewers 15000 --procs 2 --idle --duration 10s
  leaderboard bench viewers --floor --viewers 15000 --procs 2 --rate 10000 --duration 20s   (the same run against the floor)
  leaderboard bench capacity --viewers 10000000 --updates 10000   (sizing, see docs/SCALING.md; -h for its figures)
`)
}

// Main runs "leaderboard bench <args>". It returns 0 on success, 1 when the run failed, 2 on a
// usage error.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		printUsage(stdout)
		return 0
	case "floor-server":
		return floorServerMain(args[1:], stdout, stderr)
	case wsFloorMode:
		return wsFloorServerMain(args[1:], stdout, stderr)
	case "capacity":
		return capacityMain(args[1:], stdout, stderr)
	case viewersChildMode:
		return viewersChildMain(args[1:], stdout, stderr)
	}

	o, code, ok := parseArgs(args[0], args[1:], stderr)
	if !ok {
		return code
	}
	o.cfg.Log = stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first Ctrl-C the run drains and reports; a second one kills the process.
		<-ctx.Done()
		stop()
	}()

	rep, err := Run(ctx, o.cfg)
	if err != nil {
		fmt.Fprintf(stderr, "bench %s: %v\n", o.cfg.Mode, err)
		return 1
	}
	if rep.Interrupted {
		fmt.Fprintf(stderr, "bench: interrupted, reporting the %.3f s measured\n", rep.DurationS)
	}

	if o.jsonPath == "-" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
		if err == nil && o.jsonPath != "" {
			err = writeJSONFile(o.jsonPath, rep)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench %s: writing the report: %v\n", o.cfg.Mode, err)
		return 1
	}
	return 0
}

func writeJSONFile(path string, rep Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
