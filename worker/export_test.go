package worker

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// StoreForTest exposes results.store to the external tests.
func StoreForTest(rdb redis.UniversalClient) func(context.Context, string, []byte) error {
	return results{rdb: rdb}.store
}
