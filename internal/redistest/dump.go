package redistest

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Keys lists every key under prefix on c.
func Keys(t testing.TB, c redis.Cmdable, prefix string) []string {
	t.Helper()
	var out []string
	iter := c.Scan(context.Background(), 0, prefix+":*", 1000).Iterator()
	for iter.Next(context.Background()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Dump is every key under prefix with its value, as a copy of the data
// would show it: read by type (GET, HGETALL, LRANGE, SMEMBERS, ZRANGE) and
// as DUMP serialises it. Tests grep it for what must never be stored in
// clear.
func Dump(t testing.TB, c redis.Cmdable, prefix string) []byte {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, k := range Keys(t, c, prefix) {
		b.WriteString(k + "\n")
		switch c.Type(ctx, k).Val() {
		case "string":
			b.WriteString(c.Get(ctx, k).Val())
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				b.WriteString(f + "=" + v + "\n")
			}
		case "list":
			b.WriteString(strings.Join(c.LRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			b.WriteString(strings.Join(c.SMembers(ctx, k).Val(), "\n"))
		case "zset":
			b.WriteString(strings.Join(c.ZRange(ctx, k, 0, -1).Val(), "\n"))
		}
		b.WriteString("\n" + c.Dump(ctx, k).Val() + "\n")
	}
	return []byte(b.String())
}
