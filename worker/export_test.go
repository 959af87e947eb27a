package worker

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// StoreForTest exposes the result's write to the external tests.
func StoreForTest(rdb redis.UniversalClient) func(context.Context, string, []byte) error {
	h := &Handler{results: results{rdb: rdb}}
	return func(ctx context.Context, id string, b []byte) error {
		return h.writeResult(ctx, slog.New(slog.DiscardHandler), id, nil, b, nil, nil)
	}
}
