package segsnap

import (
	"context"
	"errors"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lbhq/leaderboard/internal/redistest"
)

func TestPutGetOnlyForward(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: redistest.Addr(t)})
	defer c.Close()
	ctx := context.Background()
	prefix := redistest.Prefix(t, "lbsegsnap")
	s := New(c, prefix)
	defer c.Del(ctx, s.key("b"))
	if _, _, err := s.Get(ctx, "b", "t:10"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	body := []byte(`,"version":7,"entries":[{"x":"a\nb"}]}`)
	if err := s.Put(ctx, "b", "t:10", 7, body); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "b", "t:10", 5, []byte("older")); err != nil {
		t.Fatal(err)
	}
	v, got, err := s.Get(ctx, "b", "t:10")
	if err != nil || v != 7 || string(got) != string(body) {
		t.Fatalf("got v%d %q, %v", v, got, err)
	}
	if err := s.Put(ctx, "b", "t:10", 9, []byte("newer")); err != nil {
		t.Fatal(err)
	}
	if v, got, _ := s.Get(ctx, "b", "t:10"); v != 9 || string(got) != "newer" {
		t.Fatalf("after a newer put: v%d %q", v, got)
	}
	if err := s.Delete(ctx, "b", "t:10"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "b", "t:10"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}
