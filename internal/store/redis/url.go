package redis

import (
	"fmt"
	"net/url"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// NewClient returns a Redis client for the value of --redis-url:
//
//   - redis://[user[:password]@]host[:port][/db][?option=value...], or
//     rediss:// for TLS: one Redis server (or a proxy in front of several).
//     Options are go-redis's URL options (dial_timeout, pool_size, ...).
//   - unix:///path/to/redis.sock[?db=N]: one server on a Unix socket.
//   - redis+cluster://host:port[?addr=host2:port2&addr=host3:port3...], or
//     rediss+cluster:// for TLS: a Redis Cluster; the nodes named are seeds,
//     one is enough, the others are found with CLUSTER SLOTS.
//   - redis://host1:port1?addr=host2:port2[&addr=...]: a Redis Cluster too,
//     whenever an addr option names more nodes.
//
// The port defaults to 6379. The client is the caller's to Close.
func NewClient(rawURL string) (goredis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	switch u.Scheme {
	case "redis+cluster", "rediss+cluster":
		return newCluster(strings.TrimSuffix(u.Scheme, "+cluster") + rawURL[len(u.Scheme):])
	case "redis", "rediss":
		if u.Query().Has("addr") {
			return newCluster(rawURL)
		}
	}
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	return goredis.NewClient(opts), nil
}

func newCluster(rawURL string) (goredis.UniversalClient, error) {
	opts, err := goredis.ParseClusterURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis cluster url: %w", err)
	}
	return goredis.NewClusterClient(opts), nil
}
