package keyring

// All Redis keys of a pool are built here, under one prefix. The pool name
// sits in a hash tag, so every key one script touches shares a Redis Cluster
// slot. Nothing here, or in any value, holds an API key: keys are named by
// fingerprint.
//
// The pool's shape, so that a pick costs O(log n) whatever n is:
//
//	rr        counter of picks; each pick's number is its key's new score in ring
//	ring      zset fingerprint -> number of its last pick: the usable keys, least
//	          recently picked first (the rotation)
//	wait      zset fingerprint -> ms when it may be usable again (key or project
//	          cooling, project over budget)
//	why       hash fingerprint -> why it waits: key, project, rpm, rpd
//	parked    hash fingerprint -> its ring score while it is out of the ring
//	disabled  zset fingerprint -> ms it was disabled
//	probe     zset fingerprint -> ms its next probe is due
//	proben    hash fingerprint -> probes so far since it was disabled
//	picks     hash fingerprint -> picks
//	members   hash fingerprint -> "index|project" (the fleet's pool)
//	order     zset fingerprint -> index (for paged reads in list order)
//	projkeys  hash project -> "fp fp ..." (the project's keys in the pool)
//	projuntil hash project -> ms its cooldown ends
//	keyuntil  hash fingerprint -> ms its own cooldown ends
//	rpmlog    zset of "project|ms|n", all scores 0: per-project sliding
//	          minute logs in one key, read by lexical range
//	rpd:<day> hash project -> calls that Pacific day
//	callsmin  hash "<minute>|<project>" -> calls reported in that minute
//	          (unix ms / 60000); each project keeps its last 61 minutes
//	set:<digest>  set of the fingerprints one replica holds (by digest)
//	replicas  hash replica id -> digest of its set
//	seen      zset replica id -> ms it last announced or picked

type names struct{ base string } // "keyq:{pool}:"

func newNames(prefix, pool string) names { return names{base: prefix + ":{" + pool + "}:"} }

func (n names) rotation() string              { return n.base + "rr" }
func (n names) pause() string                 { return n.base + "pause" }
func (n names) storm() string                 { return n.base + "storm" }
func (n names) members() string               { return n.base + "members" }
func (n names) key(fingerprint string) string { return n.base + "key:" + fingerprint }
func (n names) project(p string) string       { return n.base + "proj:" + p }
func (n names) ring() string                  { return n.base + "ring" }
func (n names) wait() string                  { return n.base + "wait" }
func (n names) why() string                   { return n.base + "why" }
func (n names) parked() string                { return n.base + "parked" }
func (n names) disabled() string              { return n.base + "disabled" }
func (n names) probe() string                 { return n.base + "probe" }
func (n names) probeN() string                { return n.base + "proben" }
func (n names) picks() string                 { return n.base + "picks" }
func (n names) order() string                 { return n.base + "order" }
func (n names) projKeys() string              { return n.base + "projkeys" }
func (n names) keyUntil() string              { return n.base + "keyuntil" }
func (n names) projUntil() string             { return n.base + "projuntil" }
func (n names) rpmLog() string                { return n.base + "rpmlog" }
func (n names) rpd(day string) string         { return n.base + "rpd:" + day }
func (n names) callsMin() string              { return n.base + "callsmin" }

// legacyRPD is where the keyring before issue 11 counted a project's calls
// of the day; Announce carries the count over once.
func (n names) legacyRPD(p, day string) string { return n.base + "proj:" + p + ":rpd:" + day }
func (n names) set(digest string) string       { return n.base + "set:" + digest }
func (n names) replicas() string               { return n.base + "replicas" }
func (n names) seen() string                   { return n.base + "seen" }
