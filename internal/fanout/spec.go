package fanout

import (
	"fmt"
	"strconv"
)

// Kind is what a subscription watches.
type Kind uint8

const (
	Top         Kind = iota // the first Limit ranks
	Participant             // one participant
	Around                  // Radius ranks on each side of one participant
)

func (k Kind) String() string {
	switch k {
	case Top:
		return "top"
	case Participant:
		return "participant"
	}
	return "around"
}

// ParseKind maps the protocol's kind names.
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "top":
		return Top, true
	case "participant":
		return Participant, true
	case "around":
		return Around, true
	}
	return 0, false
}

// Limits of a Spec.
const (
	MaxTopLimit     = 1000
	DefaultTopLimit = 100
	MaxRadius       = 50
	DefaultRadius   = 5
)

// Spec names a window. Two subscriptions with equal specs share a segment.
type Spec struct {
	Kind          Kind
	Limit         int    // Top
	ParticipantID string // Participant, Around
	Radius        int    // Around
}

func (s Spec) key() string {
	switch s.Kind {
	case Top:
		return "t:" + strconv.Itoa(s.Limit)
	case Participant:
		return "p:" + s.ParticipantID
	}
	return "a:" + strconv.Itoa(s.Radius) + ":" + s.ParticipantID
}

// Validate checks the parameters of a spec (ids are validated by the caller).
func (s Spec) Validate() error {
	switch s.Kind {
	case Top:
		if s.Limit < 1 || s.Limit > MaxTopLimit {
			return fmt.Errorf("limit must be 1 to %d", MaxTopLimit)
		}
	case Participant, Around:
		if s.ParticipantID == "" {
			return fmt.Errorf("participant_id is required for kind %s", s.Kind)
		}
		if s.Kind == Around && (s.Radius < 0 || s.Radius > MaxRadius) {
			return fmt.Errorf("radius must be 0 to %d", MaxRadius)
		}
	default:
		return fmt.Errorf("unknown kind")
	}
	return nil
}
