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

// version is keyq's version, set at build time with
// -ldflags "-X main.version=v1.2.3".
var version = "devel"

// command is a server command's configuration, filled from the
// environment, that knows how to check and run itself.
type command interface {
	validate() error
	logSettings() LogEnv
	run(ctx context.Context, log *slog.Logger) error
}

// commandSpec is one entry of keyq's command table.
type commandSpec struct {
	name, summary string
	// config returns a fresh configuration holding the defaults.
	config func() command
}

var commands = []commandSpec{
	{"dev", "API + worker in one process, with an embedded Redis and a simulated Gemini unless REDIS_URL and GEMINI_API_KEY are set", newDevConfig},
	{"api", "the HTTP API: accepts jobs and answers polls", newAPIConfig},
	{"worker", "one worker; start as many as you like, on any hosts", newWorkerConfig},
	{"fake", "a fake Gemini (no key needed) for a demo fleet: point workers' GEMINI_BASE_URL at it", newFakeConfig},
}

func lookup(name string) (commandSpec, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return commandSpec{}, false
}

// run is keyq's whole life: parse the command, load and check the
// environment, run until ctx ends. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "keyq", version)
		return 0
	case "submit": // a client: configured by flags, not the environment
		return runSubmit(ctx, args[1:], stdout, stderr)
	}
	spec, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "keyq: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitConfig
	}
	cfg := spec.config()
	if code, done := helpOrArgs(spec, cfg, args[1:], stdout, stderr); done {
		return code
	}
	if err := envconfig.Process("", cfg); err != nil {
		fmt.Fprintf(stderr, "keyq %s: %s\n", spec.name, envError(err))
		return exitConfig
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "keyq %s: bad configuration:\n  %s\n", spec.name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitConfig
	}
	log := newLogger(stderr, cfg.logSettings())
	if err := cfg.run(ctx, log); err != nil {
		var ce configError
		if errors.As(err, &ce) {
			log.Error("bad configuration", "err", err)
			return exitConfig
		}
		log.Error(spec.name+" stopped", "err", err)
		return 1
	}
	return 0
}

// helpOrArgs answers --help, and refuses arguments: servers are configured
// by the environment alone.
func helpOrArgs(spec commandSpec, cfg command, args []string, stdout, stderr io.Writer) (code int, done bool) {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "help" {
			fmt.Fprintf(stdout, "keyq %s: %s\n\nEnvironment:\n", spec.name, spec.summary)
			printEnv(stdout, cfg)
			return 0, true
		}
		fmt.Fprintf(stderr, "keyq %s: unexpected argument %q; keyq is configured by environment variables (keyq %s --help)\n", spec.name, a, spec.name)
		return exitConfig, true
	}
	return 0, false
}

// configError marks a configuration problem found only when running.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// envError names the variable without echoing its value, which may be a
// secret, and shows what a valid value looks like.
func envError(err error) string {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	switch pe.TypeName {
	case "time.Duration":
		return fmt.Sprintf("%s: cannot read the value as a duration; write it like 60s, 1m30s or 500ms", pe.KeyName)
	case "int":
		return fmt.Sprintf("%s: cannot read the value as a whole number, like 5", pe.KeyName)
	case "bool":
		return fmt.Sprintf("%s: cannot read the value as true or false", pe.KeyName)
	case "float64":
		return fmt.Sprintf("%s: cannot read the value as a number, like 0.2", pe.KeyName)
	}
	return fmt.Sprintf("%s: cannot read the value as %s", pe.KeyName, pe.TypeName)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "keyq runs Gemini jobs through a Redis queue over a pool of API keys.\n\nUsage: keyq <command>\n\nCommands:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "submit", "post a job to a keyq API and follow it; --count N makes a small load run (keyq submit --help)")
	fmt.Fprintf(tw, "  %s\t%s\n", "version", "print keyq's version")
	tw.Flush()
	fmt.Fprintln(w, "\nkeyq <command> --help lists the environment variables of a command.")
}

// printEnv lists the variables of cfg with their defaults: the values cfg
// holds before the environment is read.
func printEnv(w io.Writer, cfg any) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	_ = envconfig.Usagef("", cfg, tw, `{{range .}}  {{usage_key .}}	{{.Field}}	{{usage_description .}}
{{end}}`)
	tw.Flush()
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
