package jobstore

import "github.com/keyq/keyq/tasks"

// Every key lives under "keyq:{<queue>}:", the hash tag of asynq's own keys
// of the queue, so that a script may touch a job's asynq task hash and
// keyq's hash of the same job on Redis Cluster (one slot).
const prefix = "keyq:{" + tasks.Queue + "}:"

// EventsChannel is the one pub/sub channel on which job state changes are
// published: "<seq> <job id> <job JSON>".
const EventsChannel = prefix + "events"

// JobKey is keyq's hash of a job: seq (events published), final (the final
// status once known), cancelled_at / cancelled_while (the cancel marker and
// the asynq state the job was in), wh_* (its webhook's delivery).
func JobKey(id string) string { return prefix + "job:" + id }

// TaskKey is asynq v0.26's hash of a task of keyq's queue
// (internal/base.TaskKey), the one definition keyq uses (worker results,
// the API's orphan check); worker's TestARunFinishesWithAnEarlierRunsResult
// shows asynq reads what is written there.
func TaskKey(id string) string { return "asynq:{" + tasks.Queue + "}:t:" + id }

// OwnerKey is the sorted set of an owner's jobs (score: enqueue time in
// microseconds); "-" is the owner of jobs made while the API was open.
func OwnerKey(owner string) string {
	if owner == "" {
		owner = "-"
	}
	return prefix + "owner:" + owner + ":jobs"
}

// BatchKey is a batch's hash: owner, total, created, callback, wh_*.
func BatchKey(id string) string { return prefix + "batch:" + id }

// BatchItemsKey is the list of a batch's items in order: "<job id> <custom id>".
func BatchItemsKey(id string) string { return prefix + "batch:" + id + ":items" }

// BatchDoneKey is the set of a batch's job ids that reached a final status.
func BatchDoneKey(id string) string { return prefix + "batch:" + id + ":done" }
