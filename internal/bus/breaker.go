package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"
)

// ErrBreakerOpen is returned by Breaker.Do without calling the backend while
// the breaker is open (or half-open with its probes in flight).
var ErrBreakerOpen = errors.New("circuit breaker open")

// BreakerOptions configure a Breaker.
type BreakerOptions struct {
	Name string
	// Failures in a row that open the breaker (default 5).
	Failures uint32
	// OpenFor is how long it stays open before letting probes through
	// (default 5 s).
	OpenFor time.Duration
	// Probes is how many calls a half-open breaker lets through; that many
	// successes close it, one failure opens it again (default 1).
	Probes uint32
	// OnStateChange is told every transition ("closed", "open", "half-open").
	OnStateChange func(name, from, to string)
	// Healthy, when set, says which errors are the backend answering
	// normally (not found, already exists, ...): they count as successes.
	Healthy func(error) bool
}

// Breaker is a circuit breaker around calls to one backend (Kafka, Redis,
// PostgreSQL): a thin layer over sony/gobreaker that takes contexts. While
// open, calls fail at once with ErrBreakerOpen instead of each waiting for its
// own timeout; after OpenFor, probes go through, and success closes it. A
// call that ends because its caller's context was canceled counts neither
// way (the caller went away; the backend did nothing wrong), but a deadline
// that expired counts as a failure (the backend was too slow).
type Breaker struct {
	cb *gobreaker.CircuitBreaker[struct{}]
}

// NewBreaker returns a closed breaker.
func NewBreaker(o BreakerOptions) *Breaker {
	if o.Failures == 0 {
		o.Failures = 5
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 5 * time.Second
	}
	if o.Probes == 0 {
		o.Probes = 1
	}
	st := gobreaker.Settings{
		Name:        o.Name,
		MaxRequests: o.Probes,
		Timeout:     o.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= o.Failures },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) },
	}
	if o.Healthy != nil {
		st.IsSuccessful = func(err error) bool { return err == nil || o.Healthy(err) }
	}
	if o.OnStateChange != nil {
		st.OnStateChange = func(name string, from, to gobreaker.State) { o.OnStateChange(name, from.String(), to.String()) }
	}
	return &Breaker{cb: gobreaker.NewCircuitBreaker[struct{}](st)}
}

// Do calls fn unless the breaker is open, and counts its result.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	_, err := b.cb.Execute(func() (struct{}, error) { return struct{}{}, fn(ctx) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Errorf("%s: %w", b.cb.Name(), ErrBreakerOpen)
	}
	return err
}

// State is "closed", "open" or "half-open".
func (b *Breaker) State() string { return b.cb.State().String() }
