package keyring

// All Redis keys of a pool are built here. The pool name sits in a hash tag
// so that every key one script touches shares a Redis Cluster slot.

func rotationKey(prefix, pool string) string { return prefix + ":{" + pool + "}:rr" }
