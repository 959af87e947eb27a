package usage

// Every Redis key of the package: one hash per Pacific day,
// "keyq:usage:2026-11-28", expiring Retention after it was last written.
// Its fields are "<dimension>|<value>|<model>|<tier>|<kind>", with
// dimension m (model; value = model), p (project), k (key fingerprint),
// t (API token id, "-" for the open API); kind one of Kinds.

func dayKey(prefix, day string) string { return prefix + ":usage:" + day }

func field(dim, value, model, tier, kind string) string {
	return dim + "|" + value + "|" + model + "|" + tier + "|" + kind
}
