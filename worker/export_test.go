package worker

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/tasks"
)

// StoreForTest exposes results.store to the external tests.
func StoreForTest(rdb redis.UniversalClient) func(context.Context, string, []byte) error {
	return results{rdb: rdb, queue: tasks.Queue}.store
}
