package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// exitConfig is the exit status for bad configuration or usage.
const exitConfig = 2

type command struct {
	summary string
	config  func() validator // a fresh config struct to fill from the environment
	run     func(ctx context.Context, cfg validator, log *slog.Logger) error
}

type validator interface{ validate() error }

var commands = map[string]command{
	"api": {"the HTTP API: accepts jobs and answers polls",
		func() validator { return &apiConfig{} },
		func(ctx context.Context, c validator, log *slog.Logger) error {
			return runAPI(ctx, *c.(*apiConfig), log)
		}},
	"worker": {"one worker; start as many as you like, on any hosts",
		func() validator { return &workerConfig{} },
		func(ctx context.Context, c validator, log *slog.Logger) error {
			return runWorker(ctx, *c.(*workerConfig), log)
		}},
	"dev": {"API + worker in one process, with an embedded Redis and a simulated Gemini unless REDIS_URL and GEMINI_API_KEY are set",
		func() validator { return &devConfig{} },
		func(ctx context.Context, c validator, log *slog.Logger) error {
			return runDev(ctx, *c.(*devConfig), log)
		}},
}

// run is keyq's whole life: parse the command, load and check the
// environment, run until ctx ends. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	name := args[0]
	if name == "submit" { // a client: configured by flags, not the environment
		return runSubmit(ctx, args[1:], stdout, stderr)
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "keyq: unknown command %q\n\n", name)
		usage(stderr)
		return exitConfig
	}
	cfg := cmd.config()
	for _, a := range args[1:] {
		if a == "-h" || a == "--help" || a == "help" {
			fmt.Fprintf(stdout, "keyq %s: %s\n\nEnvironment:\n", name, cmd.summary)
			printEnv(stdout, cfg)
			return 0
		}
		fmt.Fprintf(stderr, "keyq %s: unexpected argument %q; keyq is configured by environment variables (keyq %s --help)\n", name, a, name)
		return exitConfig
	}
	if err := envconfig.Process("", cfg); err != nil {
		fmt.Fprintf(stderr, "keyq %s: %s\n", name, envError(err))
		return exitConfig
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "keyq %s: bad configuration:\n  %s\n", name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitConfig
	}
	log := newLogger(stderr, logSettings(cfg))
	if err := cmd.run(ctx, cfg, log); err != nil {
		var ce configError
		if errors.As(err, &ce) {
			log.Error("bad configuration", "err", err)
			return exitConfig
		}
		log.Error(name+" stopped", "err", err)
		return 1
	}
	return 0
}

// configError marks a configuration problem found only when running.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// envError names the variable without echoing its value, which may be a
// secret.
func envError(err error) string {
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: cannot read the value as %s", pe.KeyName, pe.TypeName)
	}
	return err.Error()
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "keyq runs Gemini jobs through a Redis queue over a pool of API keys.\n\nUsage: keyq <command>\n\nCommands:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, name := range []string{"dev", "api", "worker"} {
		fmt.Fprintf(tw, "  %s\t%s\n", name, commands[name].summary)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "submit", "post a job to a keyq API and follow it; --count N makes a small load run (keyq submit --help)")
	tw.Flush()
	fmt.Fprintln(w, "\nkeyq <command> --help lists the environment variables of a command.")
}

func printEnv(w io.Writer, cfg any) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	_ = envconfig.Usagef("", cfg, tw, `{{range .}}  {{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`)
	tw.Flush()
}

func logSettings(cfg validator) LogEnv {
	switch c := cfg.(type) {
	case *apiConfig:
		return c.LogEnv
	case *workerConfig:
		return c.LogEnv
	case *devConfig:
		return c.LogEnv
	}
	return LogEnv{Level: "info", Format: "text"}
}

func newLogger(w io.Writer, l LogEnv) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level)) // validated
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
