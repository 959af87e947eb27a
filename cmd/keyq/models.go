package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/metrics"
	keyusage "github.com/keyq/keyq/usage"
)

// modelEnv is what the API reads of the models, prices and caps.
type modelEnv struct {
	GeminiEnv
	PerKeyMetrics bool
	FlexTimeout   time.Duration
	Prices        string
	Caps          string
}

func (m modelEnv) validate() error {
	var errs []error
	if _, _, err := m.models(); err != nil {
		errs = append(errs, err)
	}
	if _, err := keyusage.ParsePrices(m.Prices); err != nil {
		errs = append(errs, fmt.Errorf("GEMINI_PRICES %w", err))
	}
	if _, err := api.ParseCaps(m.Caps); err != nil {
		errs = append(errs, fmt.Errorf("API_TOKEN_CAPS %w", err))
	}
	if err := api.CheckJobTimeout(m.FlexTimeout); err != nil {
		errs = append(errs, fmt.Errorf("JOB_TIMEOUT_FLEX: %w", err))
	}
	return errors.Join(errs...)
}

// modelAdmin is one model's key admin; metrics label its keys with the model.
type modelAdmin struct {
	*keyring.Admin
	model string
}

func (a modelAdmin) Model() string { return a.model }

// apply opens a key admin per model and fills the API's model, usage,
// price and cap options.
func (m modelEnv) apply(rdb redis.UniversalClient, opts *api.Options) error {
	if err := m.validate(); err != nil {
		return err
	}
	_, all, _ := m.models()
	for i, name := range all {
		admin := modelAdmin{Admin: keyring.NewAdmin(rdb, keyringOptions(m.GeminiEnv, name)), model: name}
		opts.Models = append(opts.Models, api.ModelKeys{Name: name, Keys: admin})
		if i == 0 {
			opts.Keys, opts.Pool = admin, name // the key actions and /keys: the first model
			continue
		}
		opts.Collectors = append(opts.Collectors, metrics.NewPoolCollector(admin, name, 3*time.Second))
		if m.PerKeyMetrics {
			opts.Collectors = append(opts.Collectors, prometheus.Collector(metrics.NewKeyCollector(admin, 3*time.Second)))
		}
	}
	opts.PerKeyMetrics = m.PerKeyMetrics
	opts.AllowedModels, opts.JobTimeoutFlex = all, m.FlexTimeout
	opts.Usage = keyusage.NewStore(rdb, "")
	opts.Prices, _ = keyusage.ParsePrices(m.Prices)
	opts.Caps, _ = api.ParseCaps(m.Caps)
	return nil
}
