// Package server assembles the service (store, board service, HTTP API),
// listens, runs the lifecycle sweep, and shuts down gracefully.
package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/demo"
	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/gateway"
	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/store"
	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
	"github.com/lbhq/leaderboard/internal/web"
)

// sinks forwards the store's events to the history writer (when history is
// on) and to the fan-out hub once it exists.
type sinks struct {
	log *history.Writer
	hub *fanout.Hub
}

func (s *sinks) Publish(e store.Event) {
	if s.log != nil {
		s.log.Publish(e)
	}
	if s.hub != nil {
		s.hub.Publish(e)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

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

	FlushInterval    time.Duration
	FlushPhases      int
	Conflate         bool
	History          time.Duration
	PingInterval     time.Duration
	HeartbeatTimeout time.Duration
	MaxConnections   int
	MaxSubscriptions int
	WSMessageRate    float64
	WSMessageBurst   int
	SendQueue        int
	AllowedOrigins   string

	// The ranking store (see openRankingStore in stores.go).
	Roles            string
	KafkaBrokers     string
	KafkaTopicPrefix string
	KafkaPartitions  int

	WriteQueue int

	RedisURL     string
	RedisPrefix  string
	OutboxMaxLen int64
	AdvertiseURL string
	RegistryTTL  time.Duration

	// Durability (see openHistory in durable.go).
	DataDir              string
	PostgresURL          string
	HistoryFlushInterval time.Duration
	HistoryQueue         int
	SnapshotInterval     time.Duration
	HistoryRetention     time.Duration

	// --websocket and the demo (see pageAndLive and startDemo below).
	WebSocket        bool
	Demo             bool
	DemoRate         float64
	DemoParticipants int

	// Access and abuse (see access.go).
	Auth         string // "on" or "off"
	AuthSecret   string
	AuthReads    bool
	IPRate       float64
	IPBurst      int
	UpgradeRate  float64
	UpgradeBurst int
	MaxInflight  int
	CORSOrigins  string
	// TrustedProxies: see --trusted-proxies.
	TrustedProxies string
	TLSCert        string
	TLSKey         string

	// Console, when set, receives the few lines meant for a person at a
	// terminal (the first admin token and a curl line to try it); they are
	// logged too. Not a flag.
	Console io.Writer
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
	fs.DurationVar(&c.FlushInterval, "flush-interval", 100*time.Millisecond, "live updates: coalescing window; at most one update per subscription per window")
	fs.IntVar(&c.FlushPhases, "flush-phases", 4, "live updates: each window is flushed in this many ticks, a share of the subscribers at each (each still gets at most one update per window); spreads a busy node's writes over the window")
	fs.BoolVar(&c.Conflate, "conflate", true, "live updates: a WebSocket connection or SSE stream that fell behind gets its waiting updates of a subscription merged into one (false: every update is written)")
	fs.DurationVar(&c.History, "history", 60*time.Second, "live updates: how far back a resume with since_version is served by one catch-up update")
	fs.DurationVar(&c.PingInterval, "ping-interval", 25*time.Second, "live updates: how often the server pings each WebSocket (and comments each SSE stream)")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", 60*time.Second, "live updates: close a WebSocket from which nothing arrived for this long")
	fs.IntVar(&c.MaxConnections, "max-connections", 18000, "live updates: WebSocket connections, SSE streams and long polls open together; past it the upgrade, stream or poll gets 503 + Retry-After")
	fs.IntVar(&c.MaxSubscriptions, "max-subscriptions", 16, "live updates: subscriptions per WebSocket connection")
	fs.Float64Var(&c.WSMessageRate, "ws-message-rate", 10, "live updates: messages per second one WebSocket client may send (subscribe, unsubscribe, ping; 0 = unlimited); past it: error rate_limited, the message not acted on")
	fs.IntVar(&c.WSMessageBurst, "ws-message-burst", 32, "live updates: burst of client messages per WebSocket; this many refused in a row close the connection (1008)")
	fs.IntVar(&c.SendQueue, "send-queue", 256, "live updates: frames queued per connection before it is a slow reader (resync)")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "live updates: comma-separated origins allowed to open WebSockets (empty: any)")
	fs.StringVar(&c.Roles, "roles", "api,fanout,gateway,history", "with --kafka-brokers: the tiers this process runs (api: outbox relay; fanout; gateway; history: the audit log from the events topic)")
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "", "split the tiers over Kafka at these brokers (host:port,...); needs --redis-url")
	fs.StringVar(&c.KafkaTopicPrefix, "kafka-topic-prefix", "", "prefix of the topics leaderboard.events and leaderboard.frames")
	fs.IntVar(&c.KafkaPartitions, "kafka-partitions", 16, "partitions of each topic when this process creates them (must equal the existing topics' count)")
	fs.IntVar(&c.WriteQueue, "write-queue", 10000, "with --redis-url: submissions queued while Redis is unreachable (answered 202 and applied in order when it returns); past it 503")
	fs.StringVar(&c.RedisURL, "redis-url", "", "keep rankings in Redis (redis://host:6379/0; a cluster: redis+cluster://host:port?addr=host2:port2) instead of this process's memory")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "lb:", "prefix of every Redis key (several deployments can share one Redis)")
	fs.Int64Var(&c.OutboxMaxLen, "outbox-max-len", redisstore.DefaultOutboxMaxLen, "with --redis-url: changes each leaderboard's outbox keeps for the relay to Kafka (about); a Kafka outage longer than this many changes of one board loses the oldest (logged, leaderboard_relay_events_skipped_total)")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", "", "the base WebSocket URL other processes' router hands out for this server (default ws://<listen address>)")
	fs.DurationVar(&c.RegistryTTL, "registry-ttl", 30*time.Second, "with --redis-url: a gateway's registry entry expires this long after its last heartbeat (heartbeats every third of it)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory of the server's files: the embedded database (leaderboards, audit log, snapshots, final rankings, profiles) and the auth secret; empty runs without persistence")
	fs.StringVar(&c.PostgresURL, "postgres-url", "", "history: keep it in PostgreSQL at this URL (postgres://...) instead of the embedded database")
	fs.DurationVar(&c.HistoryFlushInterval, "history-flush-interval", 200*time.Millisecond, "history: group commit; the audit log is written this long after a change while the database keeps up (a crash loses what is not written yet: about this much then, up to --history-queue changes while it is behind)")
	fs.IntVar(&c.HistoryQueue, "history-queue", 200000, "history: changes waiting for the group commit; past it submissions get 503 + Retry-After")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", 30*time.Second, "history: how often each changed live leaderboard is snapshotted (bounds the log replayed at start-up)")
	fs.DurationVar(&c.HistoryRetention, "history-retention", 0, "history on PostgreSQL: drop audit-log partitions older than this (0 keeps them forever)")
	fs.BoolVar(&c.WebSocket, "websocket", true, "live updates: accept WebSocket subscriptions; false answers them 503 unavailable, so that clients fall back to SSE")
	fs.BoolVar(&c.Demo, "demo", false, "create the sample tournament "+demo.DefaultBoard+" with bots submitting scores, and open the page on it")
	fs.Float64Var(&c.DemoRate, "demo-rate", demo.DefaultRate, "demo: bot submissions per second in total (0: seed the tournament, no bots)")
	fs.IntVar(&c.DemoParticipants, "demo-participants", demo.DefaultParticipants, "demo: participants in the sample tournament")
	c.accessFlags(fs)
}

// DefaultConfig returns the configuration with every flag at its default.
func DefaultConfig() Config {
	var c Config
	c.Flags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}

// minFlushTick is the shortest flush tick (--flush-interval / --flush-phases).
const minFlushTick = time.Millisecond

// minRegistryTTL keeps the registry's heartbeat (a third of it) and its
// expiry in whole milliseconds above zero.
const minRegistryTTL = 3 * time.Millisecond

// Validate reports the first flag value the server cannot run with, naming
// the flag. Values that would only crash a background loop later (a ticker of
// zero) are refused here, at start-up.
func (c Config) Validate() error {
	if c.SweepInterval <= 0 {
		return fmt.Errorf("--sweep-interval must be > 0, not %v", c.SweepInterval)
	}
	if c.FlushInterval <= 0 {
		return fmt.Errorf("--flush-interval must be > 0, not %v", c.FlushInterval)
	}
	if c.FlushPhases < 1 {
		return fmt.Errorf("--flush-phases must be >= 1, not %d", c.FlushPhases)
	}
	if c.FlushInterval/time.Duration(c.FlushPhases) < minFlushTick {
		return fmt.Errorf("--flush-interval %v in --flush-phases %d ticks: each tick must be at least %v (fewer phases or a longer interval)", c.FlushInterval, c.FlushPhases, minFlushTick)
	}
	if c.RegistryTTL < minRegistryTTL {
		return fmt.Errorf("--registry-ttl must be at least %v, not %v", minRegistryTTL, c.RegistryTTL)
	}
	// The parts these configure take zero as "my default", which is not what
	// a 0 on the command line says (--max-connections 0 would be a cap of
	// 10,000, not "no cap", while --max-inflight 0 is no cap): refused, so
	// that no value means something other than it reads.
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--ping-interval", c.PingInterval}, {"--heartbeat-timeout", c.HeartbeatTimeout}, {"--history", c.History},
		{"--history-flush-interval", c.HistoryFlushInterval}, {"--snapshot-interval", c.SnapshotInterval},
		// net/http reads a zero timeout as "none" (or, for the header and
		// idle timeouts, as --read-timeout's), and a zero drain cuts every
		// request off at once: none of them what a 0 reads as.
		{"--read-header-timeout", c.ReadHeaderTimeout}, {"--read-timeout", c.ReadTimeout},
		{"--write-timeout", c.WriteTimeout}, {"--idle-timeout", c.IdleTimeout}, {"--shutdown-timeout", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s must be > 0, not %v", d.flag, d.v)
		}
	}
	for _, n := range []struct {
		flag string
		v    int64
	}{
		{"--max-connections", int64(c.MaxConnections)}, {"--max-subscriptions", int64(c.MaxSubscriptions)},
		{"--send-queue", int64(c.SendQueue)}, {"--history-queue", int64(c.HistoryQueue)},
		{"--kafka-partitions", int64(c.KafkaPartitions)}, {"--outbox-max-len", c.OutboxMaxLen},
		// Taken as their defaults (body limits, --ws-message-burst,
		// --demo-participants) or as 1 (the other bursts) at 0.
		{"--max-body-bytes", c.MaxBodyBytes}, {"--max-batch-body-bytes", c.MaxBatchBodyBytes},
		{"--submit-burst", int64(c.SubmitBurst)}, {"--ip-burst", int64(c.IPBurst)}, {"--upgrade-burst", int64(c.UpgradeBurst)},
		{"--ws-message-burst", int64(c.WSMessageBurst)}, {"--demo-participants", int64(c.DemoParticipants)},
	} {
		if n.v < 1 {
			return fmt.Errorf("%s must be at least 1, not %d", n.flag, n.v)
		}
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{
		{"--submit-rate", c.SubmitRate}, {"--ip-rate", c.IPRate}, {"--upgrade-rate", c.UpgradeRate},
		{"--ws-message-rate", c.WSMessageRate}, {"--demo-rate", c.DemoRate},
		{"--write-queue", float64(c.WriteQueue)}, {"--max-inflight", float64(c.MaxInflight)},
	} {
		if r.v < 0 || math.IsNaN(r.v) {
			return fmt.Errorf("%s must be >= 0 (0: off), not %v", r.flag, r.v)
		}
	}
	// The access, TLS and tier flags that need no file, database or network
	// to check: checked here too, so that none of them opens the data
	// directory first and fails after (setupAccess, openCluster).
	switch strings.ToLower(c.Auth) {
	case "on", "true", "1", "":
		if c.AuthSecret != "" && len(c.AuthSecret) < auth.MinSecretBytes {
			return fmt.Errorf("--auth-secret must be at least %d bytes, not %d", auth.MinSecretBytes, len(c.AuthSecret))
		}
	case "off", "false", "0":
	default:
		return fmt.Errorf("--auth must be on or off, not %q", c.Auth)
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		return err
	}
	if err := checkCORSOrigins(splitList(c.CORSOrigins)); err != nil {
		return err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both, or neither")
	}
	if c.KafkaBrokers != "" {
		if _, err := parseRoles(c.Roles); err != nil {
			return err
		}
		if c.RedisURL == "" {
			return errors.New("--kafka-brokers needs --redis-url: the tiers share the rankings in Redis")
		}
	}
	if c.HistoryRetention < 0 {
		return fmt.Errorf("--history-retention must be >= 0 (0: keep forever), not %v", c.HistoryRetention)
	}
	if c.HistoryRetention > 0 && c.HistoryRetention < 2*c.SnapshotInterval {
		// Recovery replays the audit log from each leaderboard's last
		// snapshot: a retention this short could drop events no snapshot
		// holds yet.
		return fmt.Errorf("--history-retention %v must be 0 (forever) or at least twice --snapshot-interval (%v)", c.HistoryRetention, c.SnapshotInterval)
	}
	if c.HistoryRetention > 0 && c.PostgresURL == "" {
		// Only the PostgreSQL audit log is trimmed (its day partitions are
		// dropped); the SQLite one keeps every event. Taken and ignored, the
		// flag read as a bound on the database's growth that it did not set.
		return fmt.Errorf("--history-retention %v needs --postgres-url: only the PostgreSQL audit log is trimmed (the SQLite one under --data-dir keeps every event)", c.HistoryRetention)
	}
	return nil
}

// Run serves until ctx is cancelled, then drains: /readyz turns 503, the
// listener closes, and in-flight requests get up to ShutdownTimeout to finish.
// ready, when not nil, is called with the listening address once requests can
// be served.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func(addr string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	hist, err := openHistory(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer hist.close()
	// The store publishes every change to the history writer and to the
	// fan-out hub, which reads windows back through the board service: the
	// hub is created last and handed to the sink after.
	rdb, err := openRedis(ctx, cfg)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
	}
	cl, err := openCluster(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cl.close()
	// In one process the store's events feed the history writer directly;
	// split over Kafka, the history role reads them from the events topic.
	sink := &sinks{}
	localLog := hist.log
	if cl != nil {
		localLog = nil
	}
	sink.log = localLog
	st, redisSt, err := openRankingStore(ctx, cfg, rdb, hist.epoch, sink, log)
	if err != nil {
		return err
	}
	var hub *fanout.Hub
	svc := board.New(st, board.Options{
		SubmitRate: cfg.SubmitRate, SubmitBurst: cfg.SubmitBurst,
		OnStatus: func(id string, status board.Status, version uint64) {
			hub.Status(id, string(status), version)
			if cl != nil {
				cl.status(id, string(status), version)
			}
		},
		History: hist.store, Log: localLog, Shared: cfg.RedisURL != "", // processes over one Redis share their boards
		WriteQueue: writeQueue(cfg), Logger: log,
	})
	if err := hist.restore(ctx, svc); err != nil {
		return err
	}
	if cfg.RedisURL != "" && cfg.PostgresURL == "" && (cl == nil || cl.roles.api) {
		// Board metadata travels between API processes through the history
		// store only (docs/SCALING.md).
		log.Warn("leaderboards are shared with other API processes over this Redis only through a shared history store: --postgres-url, or one --data-dir on a shared directory; with --data-dir \"\" or a directory per process, each process knows only the leaderboards created through it", "data_dir", cfg.DataDir)
	}
	announced := func(board string) string { return string(svc.AnnouncedStatus(board)) }
	hub = fanout.New(svc.Reader(), fanout.Options{Epoch: st.Epoch(), FlushInterval: cfg.FlushInterval, Phases: cfg.FlushPhases, History: cfg.History,
		Status: announced, Logger: log})
	sink.hub = hub
	acc, err := setupAccess(cfg)
	if err != nil {
		return err
	}
	// Listen before the gateway exists: its registry entry advertises the
	// address (port 0 picks one).
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close() // after Serve it is closed already; this covers the returns before
	scheme := "http"
	if acc.tls != nil {
		scheme = "https"
	}
	advertise := cfg.AdvertiseURL
	if advertise == "" {
		advertise = map[string]string{"http": "ws", "https": "wss"}[scheme] + "://" + ln.Addr().String()
	}
	rt := newRouter(rdb, cfg, log)
	member, err := rt.join(advertise, cfg.MaxConnections)
	if err != nil {
		return err
	}
	// The live routes: the in-process hub, or, split over Kafka with the
	// gateway role, frames from the fan-out nodes.
	var liveHub gateway.Hub = hub
	if cl != nil && cl.roles.gateway {
		remote, closeFrames, err := cl.remote(ctx, rdb, cfg, st.Epoch(), member, func(ctx context.Context, board string) error {
			_, err := svc.Reader().Stats(ctx, board)
			return err
		}, announced)
		if err != nil {
			return err
		}
		defer closeFrames()
		liveHub = remote
	} else {
		rt.segments = hub.Segments // the hub's segments go to the registry
	}
	gw := gateway.New(liveHub, gateway.Options{
		PingInterval: cfg.PingInterval, HeartbeatTimeout: cfg.HeartbeatTimeout,
		MaxConnections: cfg.MaxConnections, MaxSubscriptions: cfg.MaxSubscriptions, SendQueue: cfg.SendQueue,
		MessageRate: wsMessageRate(cfg.WSMessageRate), MessageBurst: cfg.WSMessageBurst,
		AllowedOrigins: splitList(cfg.AllowedOrigins), NoConflate: !cfg.Conflate, Logger: log,
	})
	rt.gw = gw
	live, page := pageAndLive(cfg, gw)
	a := api.New(svc, api.Options{
		MaxBodyBytes:      cfg.MaxBodyBytes,
		MaxBatchBodyBytes: cfg.MaxBatchBodyBytes,
		Logger:            log,
		Totals:            totals(st),
		Live:              live,
		Collectors: append(append(append(liveCollectors(hub, gw), historyCollectors(hist)...), cl.collectors()...),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "leaderboard_write_queue", Help: "Submissions waiting for an unreachable ranking store (--write-queue)."},
				func() float64 { return float64(svc.QueuedWrites()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "leaderboard_write_queue_dropped_total", Help: "Queued submissions (answered 202) the ranking store refused when applied: the leaderboard completed, was removed or is damaged meanwhile."},
				func() float64 { return float64(svc.DroppedWrites()) })),
		Page:       page,
		Ready:      readiness(hist, rdb),
		Access:     acc.options,
		Connect:    rt.Connect,
		StaleReads: cfg.RedisURL != "",
	})
	bots, err := startDemo(cfg, svc, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer bots.Stop()
	if cfg.Demo {
		log.Info("demo running: open the page", "url", scheme+"://"+ln.Addr().String()+"/")
	}
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         acc.tls,
	}
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "epoch", st.Epoch())
	acc.announce(cfg, log, scheme+"://"+ln.Addr().String())

	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	go hub.Run(sweepCtx)
	if follower, ok := st.(interface {
		CatchUp(context.Context, string) error
	}); ok && redisSt != nil && liveHub == gateway.Hub(hub) {
		go followOtherProcesses(sweepCtx, follower, hub, cfg.FlushInterval, log)
	}
	go svc.RunWriteQueue(sweepCtx, 100*time.Millisecond)
	lost := make(chan error, 1)
	if redisSt != nil {
		go watchRedisData(sweepCtx, redisSt, cfg.SweepInterval, lost)
	}
	rt.start(sweepCtx)
	hist.run(sweepCtx, snapshotSource(st))
	if cl != nil {
		var w *history.Writer
		if cl.roles.history {
			w = hist.log
		}
		if err := cl.run(sweepCtx, cfg, redisSt, st, svc.Reader(), w); err != nil {
			return err
		}
	}
	go gw.Run(sweepCtx)
	go func() {
		t := time.NewTicker(cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-sweepCtx.Done():
				return
			case now := <-t.C:
				svc.Sweep(sweepCtx)
				a.Sweep(now)
			}
		}
	}()

	if cfg.PprofAddr != "" {
		go servePprof(sweepCtx, cfg.PprofAddr, log)
	}

	errc := make(chan error, 1)
	go func() {
		if acc.tls != nil {
			errc <- srv.ServeTLS(ln, "", "") // certificates are in srv.TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	if ready != nil {
		ready(ln.Addr().String())
	}
	var lostErr error
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case lostErr = <-lost:
		log.Error("stopping: Redis lost the leaderboards' data under this server; its versions and epoch no longer hold. Start it again: the start rebuilds the leaderboards from the history store's audit log in a new epoch", "err", lostErr)
	}
	log.Info("shutting down: draining in-flight requests", "timeout", cfg.ShutdownTimeout)
	bots.Stop()
	a.SetDraining()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// The registry's draining mark is taken out of the drain's time, and at
	// most readyTimeout of it: a Redis that does not answer must not hold
	// the listener open and the live connections without their 1001.
	drainCtx, cancelDrain := context.WithTimeout(shutdownCtx, readyTimeout)
	rt.drain(drainCtx)
	cancelDrain()
	gw.Shutdown() // live connections are hijacked: http.Server.Shutdown does not see them
	var drainErr error
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Requests still running: cut them off, but still write what was
		// acknowledged so far, and do not call the stop clean (a request cut
		// off may yet change a board after the last commit).
		drainErr = fmt.Errorf("shutdown: %w", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && drainErr == nil {
		drainErr = err
	}
	stopSweep()
	// A drain that ran out of time still gets its own time to leave the
	// registry and to write what was acknowledged.
	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelStop()
	if lost := svc.FlushWriteQueue(stopCtx, 100*time.Millisecond); lost > 0 {
		log.Error("stopping with submissions still queued for the unreachable ranking store: they were answered 202 and are lost", "submissions", lost)
	}
	rt.leave(stopCtx)
	if err := hist.stop(stopCtx, snapshotSource(st), drainErr == nil && lostErr == nil); err != nil {
		return errors.Join(lostErr, drainErr, err)
	}
	if drainErr != nil || lostErr != nil {
		return errors.Join(lostErr, drainErr)
	}
	log.Info("stopped")
	return nil
}

// ---- the web page, --websocket and --demo ----

// pageAndLive returns the live routes' handler (the gateway, or with
// --websocket=false a wrapper that refuses WebSocket) and the web page, which
// opens the demo tournament by default with --demo.
func pageAndLive(cfg Config, gw *gateway.Gateway) (api.Live, http.Handler) {
	var live api.Live = gw
	if !cfg.WebSocket {
		live = noWebSocket{gw}
	}
	var opts web.Options
	if cfg.Demo {
		opts.DefaultBoard = demo.DefaultBoard
	}
	return live, web.Handler(opts)
}

// noWebSocket serves SSE and long polls through the gateway but answers
// WebSocket upgrades 503 unavailable (--websocket=false), so that clients
// fall back to SSE.
type noWebSocket struct{ api.Live }

func (noWebSocket) ServeWebSocket(http.ResponseWriter, *http.Request, string) error {
	return &board.Error{
		Code:       board.CodeUnavailable,
		Message:    "WebSocket is disabled on this server (--websocket=false); use GET .../stream (SSE) or GET .../updates (long poll)",
		RetryAfter: time.Minute,
	}
}

// demoBots are the running demo, or nothing.
type demoBots struct{ b *demo.Bots }

func (d demoBots) Stop() {
	if d.b != nil {
		d.b.Stop()
	}
}

// startDemo creates and seeds the demo tournament and starts its bots when
// --demo is set; they call the board service in-process and are stopped when
// the server shuts down.
func startDemo(cfg Config, svc *board.Service, log *slog.Logger) (demoBots, error) {
	if !cfg.Demo {
		return demoBots{}, nil
	}
	rate := cfg.DemoRate
	if rate <= 0 {
		rate = -1 // seed only
	}
	b, err := demo.Start(context.Background(), svc, demo.Options{
		Participants: cfg.DemoParticipants, Rate: rate, SubmitRate: cfg.SubmitRate, Logger: log,
	})
	if err != nil {
		return demoBots{}, err
	}
	return demoBots{b}, nil
}

// servePprof serves the profiling endpoints on their own listener, so they are
// never reachable through the public address, until ctx ends: the listener
// (and its goroutine) outlived Run, and a next Run in the same process could
// not take the address again.
func servePprof(ctx context.Context, addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("pprof server stopped", "err", err)
	}
}

// wsMessageRate maps the flag's 0 (unlimited, as for the other rate flags)
// to the gateway's negative rate; the gateway's 0 is its default.
func wsMessageRate(flag float64) float64 {
	if flag == 0 {
		return -1
	}
	return flag
}
