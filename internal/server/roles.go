package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/bus"
	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/fanoutnode"
	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/registry"
	"github.com/lbhq/leaderboard/internal/relay"
	"github.com/lbhq/leaderboard/internal/segsnap"
	"github.com/lbhq/leaderboard/internal/store"
	redisstore "github.com/lbhq/leaderboard/internal/store/redis"
)

// roles are the tiers one process runs (--roles). Every process serves the
// whole HTTP API; the roles decide what runs behind it once the tiers are
// split over Kafka (--kafka-brokers):
//   - api: the outbox relay (Redis outboxes into the events topic) and
//     status changes into the frames topic;
//   - fanout: owns leaderboards through the events consumer group and
//     produces their frames;
//   - gateway: serves live viewers from the frames topic;
//   - history: writes the audit log from the events topic.
//
// Without --kafka-brokers one process runs everything in-process, whatever
// --roles says.
type roles struct{ api, fanout, gateway, history bool }

func parseRoles(s string) (roles, error) {
	var r roles
	for _, p := range strings.Split(s, ",") {
		switch strings.TrimSpace(p) {
		case "api":
			r.api = true
		case "fanout":
			r.fanout = true
		case "gateway":
			r.gateway = true
		case "history":
			r.history = true
		case "":
		default:
			return r, fmt.Errorf("--roles: unknown role %q (api, fanout, gateway, history)", p)
		}
	}
	if r == (roles{}) {
		return r, errors.New("--roles: at least one of api, fanout, gateway, history")
	}
	return r, nil
}

// cluster is this process's part of the split deployment.
type cluster struct {
	roles  roles
	kcfg   bus.KafkaConfig
	log    *slog.Logger
	events *bus.KafkaProducer
	frames *bus.KafkaFrameProducer
	relay  *relay.Relay
}

// openCluster connects to Kafka when --kafka-brokers is set (nil otherwise),
// creating the topics if they do not exist.
func openCluster(ctx context.Context, cfg Config, log *slog.Logger) (*cluster, error) {
	if cfg.KafkaBrokers == "" {
		return nil, nil
	}
	r, err := parseRoles(cfg.Roles)
	if err != nil {
		return nil, err
	}
	if cfg.RedisURL == "" {
		return nil, errors.New("--kafka-brokers needs --redis-url: the tiers share the rankings in Redis")
	}
	c := &cluster{roles: r, log: log, kcfg: bus.KafkaConfig{Brokers: splitList(cfg.KafkaBrokers), TopicPrefix: cfg.KafkaTopicPrefix, Logger: log}}
	if err := bus.EnsureTopics(ctx, c.kcfg, int32(cfg.KafkaPartitions), 1); err != nil {
		return nil, fmt.Errorf("--kafka-brokers: %w", err)
	}
	if r.api {
		if c.events, err = bus.NewKafkaProducer(c.kcfg, bus.ProducerOptions{Breaker: newBreaker("kafka", nil, log)}); err != nil {
			return nil, fmt.Errorf("--kafka-brokers: %w", err)
		}
		if c.frames, err = bus.NewKafkaFrameProducer(c.kcfg, bus.FrameProducerOptions{}); err != nil {
			c.close()
			return nil, fmt.Errorf("--kafka-brokers: %w", err)
		}
	}
	log.Info("split deployment", "roles", cfg.Roles, "kafka", c.kcfg.Brokers, "topic_prefix", cfg.KafkaTopicPrefix)
	return c, nil
}

// status sends a leaderboard's status change to every gateway.
func (c *cluster) status(board, status string, version uint64) {
	if c.frames == nil {
		return
	}
	f := fanout.StatusFrame(status, version).Body
	c.frames.PublishFrame(bus.Frame{Board: board, Kind: bus.KindStatus, Version: version, Payload: f})
}

// run starts the roles' background work over the Redis store st (src is the
// same behind its circuit breaker; final reads the final rankings of a
// leaderboard that completed and left it); w is the local history writer (nil
// when this process keeps no history).
func (c *cluster) run(ctx context.Context, cfg Config, st *redisstore.Store, src store.Store, final fanout.Source, w *history.Writer) error {
	if c.roles.api {
		c.relay = relay.New(st, c.events, relay.Options{Client: st.Client(), CursorKey: cfg.RedisPrefix + "relay:cursors", Logger: c.log})
		go c.relay.Run(ctx)
	}
	if c.roles.fanout {
		frames := c.frames
		if frames == nil {
			var err error
			if c.frames, err = bus.NewKafkaFrameProducer(c.kcfg, bus.FrameProducerOptions{}); err != nil {
				return fmt.Errorf("--kafka-brokers: frames: %w", err)
			}
			frames = c.frames
		}
		node, err := fanoutnode.New(fanoutnode.Options{
			Source:     finalWindows{live: src, final: final},
			Events:     bus.NewKafkaConsumer(c.kcfg, bus.ConsumerOptions{Group: bus.FanoutGroup}),
			Frames:     frames,
			Registry:   registry.New(st.Client(), registry.Options{Prefix: cfg.RedisPrefix, TTL: cfg.RegistryTTL}),
			Snapshots:  segsnap.New(st.Client(), cfg.RedisPrefix),
			Partitions: cfg.KafkaPartitions,
			Epoch:      st.Epoch(), FlushInterval: cfg.FlushInterval, Phases: cfg.FlushPhases, History: cfg.History, Logger: c.log,
		})
		if err != nil {
			return err
		}
		go func() {
			if err := node.Run(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("fan-out node stopped", "err", err)
			}
		}()
	}
	if c.roles.history && w != nil {
		cons := bus.NewKafkaConsumer(c.kcfg, bus.ConsumerOptions{Group: "history", FromStart: true})
		go func() {
			if err := cons.Run(ctx, historyHandler(w)); err != nil && ctx.Err() == nil {
				c.log.Error("history consumer stopped", "err", err)
			}
		}()
	}
	return nil
}

// historyHandler writes the events topic into the audit log: each polled
// batch is committed to the history store before its offsets are, so a
// crash repeats events (dropped by version) rather than losing them.
func historyHandler(w *history.Writer) bus.EventHandler {
	dedup := bus.NewDedup()
	return bus.HandlerFuncs{OnEvents: func(ctx context.Context, _ int32, evs []bus.Event) error {
		for i := range evs {
			if dedup.Check(&evs[i]) == bus.Duplicate {
				continue
			}
			w.Publish(evs[i].Event)
		}
		return w.Flush(ctx)
	}}
}

func (c *cluster) close() {
	if c == nil {
		return
	}
	if c.events != nil {
		c.events.Close()
	}
	if c.frames != nil {
		c.frames.Close()
	}
}

// remote is the gateway role's hub: a fanout.Remote fed by the frames topic.
func (c *cluster) remote(ctx context.Context, rdb goredis.UniversalClient, cfg Config, epoch string, member *registry.Member,
	exists func(context.Context, string) error, status func(string) string) (*fanout.Remote, func(), error) {
	r := fanout.NewRemote(fanout.RemoteOptions{
		Exists: exists, Snapshots: segsnap.New(rdb, cfg.RedisPrefix), Member: member,
		Epoch: epoch, History: cfg.History, Status: status, Logger: c.log,
	})
	fc, err := bus.NewKafkaFrameConsumer(ctx, c.kcfg, r.HandleFrame, bus.FrameConsumerOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("--kafka-brokers: frames: %w", err)
	}
	r.SetFrames(fc)
	return r, fc.Close, nil
}

// finalWindows is what the fan-out reads windows from: the ranking store, and,
// for a leaderboard that completed and left it, its final rankings (the board
// service's reader), as a single process's hub does, so that a window of a
// completed leaderboard can still be watched.
type finalWindows struct {
	live  store.Store
	final fanout.Source
}

func (w finalWindows) Page(ctx context.Context, board string, offset, limit int) (store.Page, error) {
	return orFinal(func(src fanout.Source) (store.Page, error) { return src.Page(ctx, board, offset, limit) }, w)
}

func (w finalWindows) Around(ctx context.Context, board, participant string, limit int) (store.Page, error) {
	return orFinal(func(src fanout.Source) (store.Page, error) { return src.Around(ctx, board, participant, limit) }, w)
}

func (w finalWindows) Participant(ctx context.Context, board, participant string, neighbors int) (store.ParticipantView, error) {
	return orFinal(func(src fanout.Source) (store.ParticipantView, error) {
		return src.Participant(ctx, board, participant, neighbors)
	}, w)
}

func (w finalWindows) Stats(ctx context.Context, board string) (store.Stats, error) {
	return orFinal(func(src fanout.Source) (store.Stats, error) { return src.Stats(ctx, board) }, w)
}

// orFinal reads from the ranking store, and from the final rankings when the
// store no longer has the leaderboard.
func orFinal[T any](read func(fanout.Source) (T, error), w finalWindows) (T, error) {
	v, err := read(w.live)
	if errors.Is(err, store.ErrBoardNotFound) {
		return read(w.final)
	}
	return v, err
}
