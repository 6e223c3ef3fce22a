// Command leaderboard runs the real-time leaderboard service and its tools.
//
//	leaderboard serve [flags]     run the service (embedded defaults: no other service needed)
//	leaderboard token --role R    mint a bearer token
//	leaderboard bench <mode> ...  the load tool
//	leaderboard version           print the version
//
// Every serve flag can also be given as LEADERBOARD_<FLAG> (dashes become
// underscores), e.g. LEADERBOARD_ADDR=127.0.0.1:9000.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/bench"
	"github.com/lbhq/leaderboard/internal/flagenv"
	"github.com/lbhq/leaderboard/internal/server"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise
// the module version or VCS revision from the build info is printed.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "token":
		return token(args[1:], stdout, stderr)
	case "bench":
		return bench.Main(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "leaderboard", versionString())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "leaderboard: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: leaderboard <command> [flags]

commands:
  serve     run the service (leaderboard serve -h lists its flags)
  token     mint a bearer token: leaderboard token --role participant|server|admin [--sub ID] [--ttl 24h]
  bench     the load tool (leaderboard bench -h lists its modes)
  version   print the version

Every serve flag can also be set as LEADERBOARD_<FLAG>, e.g. LEADERBOARD_ADDR.
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("leaderboard serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	cfg.Flags(fs)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: leaderboard serve [flags]\n\nEvery flag can also be set as LEADERBOARD_<FLAG> (dashes as underscores).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := flagenv.Parse(fs, "LEADERBOARD", args, nil); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "leaderboard serve:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, "leaderboard serve: --log-level:", err)
		return 2
	}
	if *logFormat != "text" && *logFormat != "json" {
		fmt.Fprintf(stderr, "leaderboard serve: --log-format must be text or json, not %q\n", *logFormat)
		return 2
	}
	// A value no part of the server can take is a usage error, before
	// anything opens (Run checks again, for callers of the package).
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "leaderboard serve:", err)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if *logFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(h)
	if *logFormat != "json" {
		cfg.Console = stderr // the first admin token, in a form to copy
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log.Info("starting leaderboard", "version", versionString())
	if err := server.Run(ctx, cfg, log, nil); err != nil {
		log.Error("server failed", "err", err)
		return 1
	}
	return 0
}

// token mints a bearer token with the server's secret: --secret (or
// LEADERBOARD_AUTH_SECRET), else the auth-secret file of --data-dir (or
// LEADERBOARD_DATA_DIR, default ./data).
func token(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("leaderboard token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "", "the server's --auth-secret (env LEADERBOARD_AUTH_SECRET); empty: read <data-dir>/auth-secret")
	dataDir := fs.String("data-dir", "./data", "the server's --data-dir (env LEADERBOARD_DATA_DIR), where it keeps the secret it created")
	role := fs.String("role", "", "participant (submits only its own scores), server (submits for anyone) or admin (everything)")
	sub := fs.String("sub", "", "subject: the participant id (required for participant tokens); a free name for the others")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid (every token expires)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: leaderboard token --role participant|server|admin [--sub ID] [--ttl 24h] [--secret S | --data-dir DIR]\n\nPrints a bearer token signed with the server's secret.\n\nflags:")
		fs.PrintDefaults()
	}
	env := map[string]string{"secret": "LEADERBOARD_AUTH_SECRET", "data-dir": "LEADERBOARD_DATA_DIR"}
	lookup := func(name string) (string, bool) {
		for flagName, envName := range env {
			if flagenv.Name("LEADERBOARD", flagName) == name {
				return os.LookupEnv(envName)
			}
		}
		return "", false
	}
	if err := flagenv.Parse(fs, "LEADERBOARD", args, lookup); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "leaderboard token:", err)
		return 2
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		fmt.Fprintln(stderr, "leaderboard token: --role:", err)
		return 2
	}
	key, err := server.ReadSecret(*secret, *dataDir)
	if err != nil {
		fmt.Fprintln(stderr, "leaderboard token:", err)
		return 1
	}
	tok, err := auth.Mint(key, r, *sub, *ttl)
	if err != nil {
		fmt.Fprintln(stderr, "leaderboard token:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
