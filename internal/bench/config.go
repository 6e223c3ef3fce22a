package bench

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"
)

// Modes that drive load. "floor-server", "ws-floor-server" and "viewers-child" are hidden helper
// modes, not load modes.
const (
	ModeSubmit  = "submit"
	ModeRead    = "read"
	ModeFloor   = "floor"
	ModeViewers = "viewers"
)

// maxRate is the highest --rate: the schedule has one slot per 1/rate, in whole nanoseconds.
const maxRate = 1e9

// maxBatch is the API's limit on items per scores:batch request.
const maxBatch = 1000

// Config describes one run. Start from DefaultConfig: zero values are meaningful
// (Rate 0 = closed loop, Warmup 0 = none, Batch 0 = single submissions, Create false).
type Config struct {
	Mode        string        // ModeSubmit, ModeRead, ModeFloor or ModeViewers
	URL         string        // base URL of the service (ignored by floor, which starts its own server)
	Rate        float64       // target requests/s in open loop; 0 = closed loop
	Duration    time.Duration // measured window
	Warmup      time.Duration // load before the window, not recorded
	Connections int           // keep-alive connections = worker goroutines
	Timeout     time.Duration // per-request timeout
	Token       string        // sent as "Authorization: Bearer <token>" when set
	Seed        uint64        // random seed; 0 picks one from the clock (reported, so a run can be replayed)

	// submit and read
	Leaderboards int    // number of leaderboards, ids "<Prefix>-<i>"
	Prefix       string // leaderboard id prefix
	Create       bool   // create the leaderboards first (409 already_exists is fine)

	// submit and viewers
	Participants int // participant ids "p%015d" drawn from [0, Participants)
	Batch        int // >0: POST scores:batch with that many items per request

	// read
	SeedParticipants int     // participants seeded per leaderboard before measuring
	TopRatio         float64 // share of top-100 reads; the rest are participant lookups

	// floor
	Method    string // GET or POST
	BodyBytes int    // floor: response body size (0: a 11-byte {"ok":true})

	// viewers (see viewers.go)
	Leaderboard string  // the one leaderboard watched and submitted to
	Viewers     int     // WebSocket connections, one subscription each
	Mix         string  // subscription kinds and weights: "top=8,participant=1,around=1"
	TopLimit    int     // limit of top subscriptions
	Radius      int     // radius of around subscriptions
	SeedBoard   bool    // seed p0..p<Participants-1> through scores:batch when the board has fewer participants
	TopRate     float64 // markers per second (part of Rate): submissions placed in the top N by MarkerRank
	MarkerRank  string  // where markers land in the top N: "top" (rank 1), "bottom" or "random" (see viewers_markers.go)
	Ramp        float64 // viewer connections opened per second, all processes together; 0 = as fast as possible
	SourceIPs   string  // local addresses viewer connections are spread over ("a..b" ranges, commas); "" = kernel's choice
	Procs       int     // processes holding the viewers; > 1 re-executes this program as "bench viewers-child"
	Idle        bool    // open and subscribe the viewers, submit nothing, measure the server's memory per connection
	Floor       bool    // run against a "bench ws-floor-server" child process instead of URL (see wsfloor.go)

	// Log receives progress lines (create, seeding, start); nil discards them.
	Log io.Writer
}

// DefaultConfig returns the defaults the command line uses for mode.
func DefaultConfig(mode string) Config {
	c := Config{
		Mode:             mode,
		URL:              "http://127.0.0.1:8080",
		Duration:         10 * time.Second,
		Warmup:           time.Second,
		Connections:      64,
		Timeout:          5 * time.Second,
		Leaderboards:     1,
		Prefix:           "bench",
		Create:           true,
		Participants:     1_000_000,
		SeedParticipants: 100_000,
		TopRatio:         1.0,
		Method:           "GET",
	}
	if mode == ModeViewers {
		c.Rate = 1000
		c.Duration = 30 * time.Second
		c.Warmup = 3 * time.Second
		c.Connections = 16
		c.Participants = 100_000
		c.Leaderboard = "bench-live"
		c.Viewers = 1000
		c.Mix = "top=1"
		c.TopLimit = 100
		c.Radius = 5
		c.SeedBoard = true
		c.TopRate = 100
		c.MarkerRank = placeBottom
		c.Ramp = 2000
		c.SourceIPs = "127.0.0.1..127.0.0.16"
		c.Procs = 1
	}
	return c
}

// Validate reports the first problem with cfg; Main turns it into exit code 2.
func (c Config) Validate() error {
	switch c.Mode {
	case ModeSubmit, ModeRead, ModeFloor, ModeViewers:
	default:
		return fmt.Errorf("unknown mode %q", c.Mode)
	}
	if c.Rate < 0 {
		return errors.New("--rate must be >= 0")
	}
	if c.Rate > maxRate {
		return fmt.Errorf("--rate must be at most %g (one request per nanosecond), not %g", float64(maxRate), c.Rate)
	}
	if c.Duration <= 0 {
		return errors.New("--duration must be > 0")
	}
	if c.Warmup < 0 {
		return errors.New("--warmup must be >= 0")
	}
	if c.Connections < 1 {
		return errors.New("--connections must be >= 1")
	}
	if c.Timeout <= 0 {
		return errors.New("--timeout must be > 0")
	}
	if c.Mode == ModeFloor {
		if c.Method != "GET" && c.Method != "POST" {
			return fmt.Errorf("--method must be GET or POST, not %q", c.Method)
		}
		return nil
	}

	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("--url: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url must look like http://host:port, not %q", c.URL)
	}
	if c.Mode == ModeViewers {
		return c.validateViewers()
	}
	if c.Leaderboards < 1 {
		return errors.New("--leaderboards must be >= 1")
	}
	// The longest id must still be a valid identifier (1..128 of A-Z a-z 0-9 _ . : -).
	if !validID(c.Prefix) || len(leaderboardID(c.Prefix, c.Leaderboards-1)) > 128 {
		return fmt.Errorf("--prefix %q does not make valid leaderboard ids (A-Z a-z 0-9 _ . : -, at most 128)", c.Prefix)
	}
	switch c.Mode {
	case ModeSubmit:
		if c.Participants < 1 {
			return errors.New("--participants must be >= 1")
		}
		if c.Batch < 0 || c.Batch > maxBatch {
			return fmt.Errorf("--batch must be between 0 and %d", maxBatch)
		}
	case ModeRead:
		if c.TopRatio < 0 || c.TopRatio > 1 {
			return errors.New("--top-ratio must be between 0 and 1")
		}
		if c.SeedParticipants < 0 {
			return errors.New("--seed-participants must be >= 0")
		}
		if c.SeedParticipants == 0 && c.TopRatio < 1 {
			return errors.New("participant lookups (--top-ratio < 1) need --seed-participants > 0")
		}
	}
	return nil
}

func leaderboardID(prefix string, i int) string { return prefix + "-" + strconv.Itoa(i) }

func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// appendPID appends participant id n as "p%015d" (16 characters) without fmt,
// because it runs once per request or per batch item.
func appendPID(dst []byte, n int) []byte {
	var digits [15]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + n%10)
		n /= 10
	}
	dst = append(dst, 'p')
	return append(dst, digits[:]...)
}
