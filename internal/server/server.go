// Package server assembles the service (store, board service, HTTP API),
// listens, runs the lifecycle sweep, and shuts down gracefully.
package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// Config is everything `leaderboard serve` takes. Each field is a flag (see
// Flags) and an environment variable LEADERBOARD_<FLAG>.
type Config struct {
	Addr              string
	SubmitRate        float64
	SubmitBurst       int
	MaxBodyBytes      int64
	MaxBatchBodyBytes int64
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	SweepInterval     time.Duration
	PprofAddr         string
}

// Flags registers the configuration's flags on fs, with their defaults.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free port; the chosen address is logged)")
	fs.Float64Var(&c.SubmitRate, "submit-rate", 10, "submissions per second allowed per participant per leaderboard (0 = unlimited)")
	fs.IntVar(&c.SubmitBurst, "submit-burst", 20, "burst of submissions allowed per participant per leaderboard")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 64<<10, "largest request body, except batches (413 above)")
	fs.Int64Var(&c.MaxBatchBodyBytes, "max-batch-body-bytes", 1<<20, "largest batch submission body (413 above)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "time allowed to read request headers (slowloris guard)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", 15*time.Second, "time allowed to read a whole request")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 15*time.Second, "time allowed to write a response")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", time.Second, "how often leaderboards past ends_at are completed and idle rate-limit buckets dropped")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "if set, serve Go's net/http/pprof profiles on this separate address (keep it private)")
}

// DefaultConfig returns the configuration with every flag at its default.
func DefaultConfig() Config {
	var c Config
	c.Flags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}

// Run serves until ctx is cancelled, then drains: /readyz turns 503, the
// listener closes, and in-flight requests get up to ShutdownTimeout to finish.
// ready, when not nil, is called with the listening address once requests can
// be served.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	st := memory.New(memory.Options{})
	svc := board.New(st, board.Options{SubmitRate: cfg.SubmitRate, SubmitBurst: cfg.SubmitBurst})
	a := api.New(svc, api.Options{
		MaxBodyBytes:      cfg.MaxBodyBytes,
		MaxBatchBodyBytes: cfg.MaxBatchBodyBytes,
		Logger:            log,
		Totals:            st.Totals,
	})
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "epoch", st.Epoch())

	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	go func() {
		t := time.NewTicker(cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-sweepCtx.Done():
				return
			case <-t.C:
				svc.Sweep(sweepCtx)
			}
		}
	}()

	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout)
	a.SetDraining()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// servePprof serves the profiling endpoints on their own listener, so they are
// never reachable through the public address.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Warn("pprof server stopped", "err", err)
	}
}
