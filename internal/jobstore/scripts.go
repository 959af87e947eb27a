package jobstore

import (
	_ "embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed publish.lua
	publishSource string
	publishScript = redis.NewScript(publishSource)

	//go:embed finish.lua
	finishSource string
	finishScript = redis.NewScript(finishSource + publishSource)

	//go:embed start.lua
	startSource string
	startScript = redis.NewScript(startSource + publishSource)

	//go:embed cancel.lua
	cancelSource string
	cancelScript = redis.NewScript(cancelSource)
)

// pair reads a script's {a, b} reply, checking its shape.
func pair(res any) (any, int64, error) {
	arr, ok := res.([]any)
	if !ok || len(arr) != 2 {
		return nil, 0, fmt.Errorf("jobstore: unexpected script reply %T", res)
	}
	n, ok := arr[1].(int64)
	if !ok {
		return nil, 0, fmt.Errorf("jobstore: unexpected script reply element %T", arr[1])
	}
	return arr[0], n, nil
}
