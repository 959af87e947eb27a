package keyring

// All Redis keys of a pool are built here, under one prefix. The pool name
// sits in a hash tag, so every key one script touches shares a Redis Cluster
// slot. Nothing here, or in any value, holds an API key: keys are named by
// fingerprint.

type names struct{ base string } // "keyq:{pool}:"

func newNames(prefix, pool string) names { return names{base: prefix + ":{" + pool + "}:"} }

func (n names) rotation() string              { return n.base + "rr" }
func (n names) pause() string                 { return n.base + "pause" }
func (n names) storm() string                 { return n.base + "storm" }
func (n names) members() string               { return n.base + "members" }
func (n names) key(fingerprint string) string { return n.base + "key:" + fingerprint }
func (n names) project(p string) string       { return n.base + "proj:" + p }
func (n names) rpm(p string) string           { return n.base + "proj:" + p + ":rpm" }
func (n names) rpd(p, day string) string      { return n.base + "proj:" + p + ":rpd:" + day }
