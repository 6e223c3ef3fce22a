// Package demo fills a sample tournament and keeps it moving, so that the
// live page has something to show on first start (`leaderboard serve --demo`).
//
// Start creates the tournament (update policy "best", higher scores first),
// gives every participant a first score, and starts bots that submit scores at
// a steady rate. A few hot contenders, kept close together by a catch-up rule
// (the further behind the leader, the bigger the gains), keep overtaking one
// another in and around the top 10; the rest of the field climbs slowly, the
// stronger players more often, so that the whole top 100 moves.
//
// The bots call the board service in-process (board.Service.SubmitBatch, one
// batch per tick), not the HTTP API: the same validation, rules and
// per-participant rate limit as HTTP submissions, without loopback traffic or
// HTTP metrics of their own. They respect the rate limit by never submitting
// for one participant more often than 90% of SubmitRate.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store"
)

// Defaults of Options.
const (
	DefaultBoard        = "demo-cup"
	DefaultParticipants = 3000
	DefaultHot          = 12
	DefaultRate         = 50
)

// Options configure the demo.
type Options struct {
	// Board is the tournament's id (default "demo-cup"); Name its name
	// (default "Demo Cup").
	Board, Name string
	// Participants is the size of the field (default 3000), hot contenders
	// included.
	Participants int
	// Hot is the number of hot contenders fighting over the top 10 (default
	// 12; at most Participants).
	Hot int
	// Rate is the bots' submissions per second in total (default 50; below
	// zero: none, the board is only seeded).
	Rate float64
	// SubmitRate is the service's per-participant limit (submissions per
	// second, 0 = none); the bots stay under it.
	SubmitRate float64
	// Tick is how often the bots submit a batch (default 50 ms).
	Tick time.Duration
	// Seed makes a run repeatable; 0 picks one at random.
	Seed uint64
	// Logger receives what the bots do; nil discards it.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Board == "" {
		o.Board = DefaultBoard
	}
	if o.Name == "" {
		o.Name = "Demo Cup"
	}
	if o.Participants <= 0 {
		o.Participants = DefaultParticipants
	}
	if o.Hot <= 0 {
		o.Hot = DefaultHot
	}
	o.Hot = min(o.Hot, o.Participants)
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Tick <= 0 {
		o.Tick = 50 * time.Millisecond
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Bots are the running demo. Stop ends them.
type Bots struct {
	cancel context.CancelFunc
	done   chan struct{}
	b      *bots
}

// Stats returns the submissions the bots sent since Start (seeding not
// counted), and how many of them the service rejected (rate limited, or the
// leaderboard not active).
func (b *Bots) Stats() (sent, rejected int64) {
	return b.b.sent.Load(), b.b.rejected.Load()
}

// Stop stops the bots and waits for them to return. It may be called more
// than once.
func (b *Bots) Stop() {
	b.cancel()
	<-b.done
}

// player is one participant as the bots see it.
type player struct {
	id    string
	score uint64
	last  time.Time // last submission
}

type bots struct {
	svc     *board.Service
	opts    Options
	rng     *rand.Rand
	players []player // hot contenders first, then the field, strongest first
	gap     time.Duration
	// problem is the last board-level error logged, to log each kind once.
	problem        string
	sent, rejected atomic.Int64
}

// Start creates the tournament (an existing leaderboard of that id is
// reused), seeds every participant's first score, and starts the bots, which
// run until Stop or until ctx ends.
func Start(ctx context.Context, svc *board.Service, opts Options) (*Bots, error) {
	opts.defaults()
	b := &bots{svc: svc, opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
	if opts.SubmitRate > 0 {
		b.gap = time.Duration(float64(time.Second) / (0.9 * opts.SubmitRate))
		if most := 0.9 * opts.SubmitRate * float64(opts.Participants); opts.Rate > most {
			opts.Logger.Warn("demo: the rate is above what the per-participant limit allows this many participants; the bots will submit less",
				"demo_rate", opts.Rate, "participants", opts.Participants, "submit_rate", opts.SubmitRate, "at_most", most)
		}
	}
	_, err := svc.Create(ctx, board.CreateRequest{
		ID: opts.Board, Name: opts.Name, Type: "tournament",
		Order: store.Descending, Policy: store.PolicyBest,
		Config: []byte(`{"demo":true}`),
	})
	var be *board.Error
	if err != nil && !(errors.As(err, &be) && be.Code == board.CodeAlreadyExists) {
		return nil, fmt.Errorf("demo: create %s: %w", opts.Board, err)
	}
	if err := b.seed(ctx); err != nil {
		return nil, err
	}
	opts.Logger.Info("demo tournament ready", "board", opts.Board, "participants", opts.Participants,
		"hot", opts.Hot, "rate", opts.Rate)
	rctx, cancel := context.WithCancel(ctx)
	bb := &Bots{cancel: cancel, done: make(chan struct{}), b: b}
	go func() {
		defer close(bb.done)
		if opts.Rate > 0 {
			b.run(rctx)
		}
	}()
	return bb, nil
}

var (
	hotNames = []string{"nova", "viper", "kestrel", "blaze", "onyx", "zephyr", "raven", "titan", "lyra", "jinx", "orion", "sable"}
	adjs     = []string{"swift", "quiet", "bold", "lucky", "brave", "clever", "fuzzy", "mighty", "sly", "sunny", "wild", "calm", "eager", "jolly", "keen", "noble"}
	animals  = []string{"otter", "falcon", "badger", "lynx", "heron", "panda", "fox", "wolf", "gecko", "moose", "owl", "yak", "koala", "bison", "crane", "shark"}
)

// Participant returns the id of the demo's i-th participant: hot contenders
// first (nova, viper, ...), then the field (swift-otter-12, ...).
func Participant(i, hot int) string {
	if i < hot {
		if i < len(hotNames) {
			return hotNames[i]
		}
		return fmt.Sprintf("%s-%d", hotNames[i%len(hotNames)], i/len(hotNames)+1)
	}
	return fmt.Sprintf("%s-%s-%d", adjs[i%len(adjs)], animals[(i/len(adjs))%len(animals)], i)
}

// seed gives everyone a first score: the hot contenders a tight band above
// the field; the field spread out, the strongest first.
func (b *bots) seed(ctx context.Context) error {
	n, hot := b.opts.Participants, b.opts.Hot
	b.players = make([]player, n)
	field := max(n-hot, 1)
	for i := range b.players {
		p := &b.players[i]
		p.id = Participant(i, hot)
		if i < hot {
			p.score = 30000 + uint64(b.rng.IntN(2500))
		} else {
			// Strength falls off with the index: a long tail of weaker players.
			f := 1 - float64(i-hot)/float64(field)
			p.score = 500 + uint64(24000*f*f*f) + uint64(b.rng.IntN(400))
		}
	}
	now := time.Now()
	for start := 0; start < n; start += board.MaxBatch {
		end := min(start+board.MaxBatch, n)
		ins := make([]board.ScoreInput, 0, end-start)
		for i := start; i < end; i++ {
			ins = append(ins, board.ScoreInput{ParticipantID: b.players[i].id, Score: b.players[i].score})
			b.players[i].last = now
		}
		if _, _, err := b.svc.SubmitBatch(ctx, b.opts.Board, ins, nil); err != nil {
			return fmt.Errorf("demo: seed %s: %w", b.opts.Board, err)
		}
	}
	return nil
}

func (b *bots) run(ctx context.Context) {
	t := time.NewTicker(b.opts.Tick)
	defer t.Stop()
	last := time.Now()
	tokens := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			tokens += b.opts.Rate * now.Sub(last).Seconds()
			last = now
			n := int(tokens)
			tokens -= float64(n)
			if tokens > b.opts.Rate { // behind (a pause, a slow tick): do not catch up in a burst
				tokens = 0
			}
			for n > 0 && ctx.Err() == nil {
				k := min(n, board.MaxBatch)
				b.submit(ctx, now, k)
				n -= k
			}
		}
	}
}

// submit sends one batch of up to k submissions.
func (b *bots) submit(ctx context.Context, now time.Time, k int) {
	ins := make([]board.ScoreInput, 0, k)
	idx := make([]int, 0, k)
	picked := map[int]bool{}
	for range k {
		i, ok := b.pick(now, picked)
		if !ok {
			continue
		}
		picked[i] = true
		ins = append(ins, board.ScoreInput{ParticipantID: b.players[i].id, Score: b.players[i].score + b.gain(i)})
		idx = append(idx, i)
	}
	if len(ins) == 0 {
		return
	}
	res, errs, err := b.svc.SubmitBatch(ctx, b.opts.Board, ins, nil)
	if err != nil {
		if ctx.Err() == nil {
			b.sent.Add(int64(len(ins)))
			b.rejected.Add(int64(len(ins)))
			b.report(err)
		}
		return
	}
	b.sent.Add(int64(len(ins)))
	b.report(nil)
	for j, i := range idx {
		b.players[i].last = now
		if j < len(errs) && errs[j] != nil {
			b.rejected.Add(1)
			continue
		}
		if j < len(res) {
			b.players[i].score = res[j].Score
		}
	}
}

// report logs a board-level problem (paused, completed, ...) once, and its
// end.
func (b *bots) report(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == b.problem {
		return
	}
	if err != nil {
		b.opts.Logger.Info("demo: the bots cannot submit now", "board", b.opts.Board, "err", err)
	} else {
		b.opts.Logger.Info("demo: the bots submit again", "board", b.opts.Board)
	}
	b.problem = msg
}

// pick chooses who submits next: a hot contender about a third of the time,
// else someone from the field, the stronger more often. A participant who
// submitted within the rate-limit gap, or is already in this batch, is not
// picked; after a few tries nobody is.
func (b *bots) pick(now time.Time, picked map[int]bool) (int, bool) {
	hot, n := b.opts.Hot, len(b.players)
	for range 4 {
		var i int
		if hot > 0 && (n == hot || b.rng.Float64() < 0.35) {
			i = b.rng.IntN(hot)
		} else {
			u := b.rng.Float64()
			i = hot + int(u*u*float64(n-hot))
		}
		if picked[i] || (b.gap > 0 && now.Sub(b.players[i].last) < b.gap) {
			continue
		}
		return i, true
	}
	return 0, false
}

// gain is how much participant i improves by. Hot contenders gain more the
// further they trail the best of them, which keeps them in a tight pack that
// keeps reshuffling; now and then one makes a big play.
func (b *bots) gain(i int) uint64 {
	if i < b.opts.Hot {
		var lead uint64
		for j := range b.opts.Hot {
			lead = max(lead, b.players[j].score)
		}
		g := 20 + uint64(b.rng.IntN(250))
		g += uint64(float64(lead-b.players[i].score) * 0.35 * b.rng.Float64())
		if b.rng.IntN(15) == 0 {
			g += 400 + uint64(b.rng.IntN(900))
		}
		return g
	}
	return 10 + uint64(b.rng.IntN(350))
}
