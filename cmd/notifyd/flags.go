package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/httpapi"
)

// settings binds flags to environment variables: a flag's default is its
// variable's value, so the command line wins over the environment, which
// wins over the built-in default. Bad environment values are reported with
// the variable's name.
type settings struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
	after  []func()
	args   []string // positional arguments, wherever they stood among the flags
}

func newSettings(name string, getenv func(string) string, stderr io.Writer) *settings {
	fs := flag.NewFlagSet("notifyd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &settings{fs: fs, getenv: getenv}
}

func (s *settings) describe(env, usage string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

func (s *settings) String(p *string, name, env, def, usage string) {
	if v := s.env(env); v != "" {
		def = v
	}
	s.fs.StringVar(p, name, def, s.describe(env, usage))
}

func (s *settings) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v := s.env(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: want a positive Go duration such as 15s or 500ms", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, s.describe(env, usage))
}

// DurationOrOff is Duration for a setting that 0 turns off: 0 is
// accepted, and stored as -1, what the app's configs take for off (their
// zero means the default).
func (s *settings) DurationOrOff(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v := s.env(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: want a Go duration such as 15m, or 0 for off", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, s.describe(env, usage+"; 0: off"))
	s.after = append(s.after, func() {
		if *p == 0 {
			*p = -1
		}
	})
}

func (s *settings) Int(p *int, name, env string, def int, usage string) {
	if v := s.env(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: want an integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, s.describe(env, usage))
}

func (s *settings) Float(p *float64, name, env string, def float64, usage string) {
	if v := s.env(env); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: want a number", env, v))
		} else {
			def = f
		}
	}
	s.fs.Float64Var(p, name, def, s.describe(env, usage))
}

func (s *settings) Int64(p *int64, name, env string, def int64, usage string) {
	if v := s.env(env); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: want a positive integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.Int64Var(p, name, def, s.describe(env, usage))
}

func (s *settings) Bool(p *bool, name, env string, def bool, usage string) {
	if v := s.env(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: want true or false (1 or 0)", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, s.describe(env, usage))
}

// List is a comma-separated list; empty items are dropped.
func (s *settings) List(p *[]string, name, env, def, usage string) {
	var raw string
	s.String(&raw, name, env, def, usage+", comma separated")
	s.after = append(s.after, func() { *p = splitList(raw) })
}

// Fields is a space-separated list (OIDC_SCOPES).
func (s *settings) Fields(p *[]string, name, env, def, usage string) {
	var raw string
	s.String(&raw, name, env, def, usage)
	s.after = append(s.after, func() { *p = strings.Fields(raw) })
}

// Prefixes is a list of CIDRs or addresses (NOTIFY_TRUSTED_PROXIES).
func (s *settings) Prefixes(p *[]netip.Prefix, name, env, def, usage string) {
	var raw string
	s.String(&raw, name, env, def, usage)
	s.after = append(s.after, func() {
		prefixes, err := httpapi.ParseTrustedProxies(raw)
		if err != nil {
			s.errs = append(s.errs, err)
		}
		*p = prefixes
	})
}

func (s *settings) env(name string) string {
	if name == "" {
		return ""
	}
	return strings.TrimSpace(s.getenv(name))
}

// parse parses args and reports environment and flag errors together.
func (s *settings) parse(args []string) error {
	for {
		if err := s.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return errHelp
			}
			return usageError{err.Error()}
		}
		rest := s.fs.Args()
		if len(rest) == 0 {
			break
		}
		s.args = append(s.args, rest[0])
		args = rest[1:]
	}
	for _, fn := range s.after {
		fn()
	}
	if len(s.errs) > 0 {
		return usageError{errors.Join(s.errs...).Error()}
	}
	return nil
}

// parseNoArgs is parse for commands that take no positional arguments.
func (s *settings) parseNoArgs(args []string) error {
	if err := s.parse(args); err != nil {
		return err
	}
	if len(s.args) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (see %s -h)", s.args[0], s.fs.Name())}
	}
	return nil
}

// errHelp: -h was asked for and printed; not a failure.
var errHelp = errors.New("help shown")

func splitList(raw string) []string {
	var out []string
	for _, item := range strings.Split(raw, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
