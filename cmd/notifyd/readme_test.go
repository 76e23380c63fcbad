package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/app"
)

// TestReadmeDefaults holds the README's configuration table to the flags'
// defaults, so the one place a reader looks agrees with the one place the
// code writes each default (app.Config.WithDefaults and the components').
func TestReadmeDefaults(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	section = section[strings.Index(section, "\n## Configuration\n"):]
	section = section[:strings.Index(section[1:], "\n## ")+1]

	var c common
	var cfg app.Config
	s := newSettings("serve", func(string) string { return "" }, io.Discard)
	c.bind(s)
	c.bindDirect(s)
	bindServer(s, &cfg)
	bindReplica(s, &cfg)
	s.Bool(&cfg.NoMigrate, "no-migrate", "", false, "")

	row := regexp.MustCompile("(?m)^\\| (?:`([A-Z_]+)`|—) \\| `--([a-z-]+)` \\| ([^|]+) \\|")
	unset := regexp.MustCompile("^(none|off|empty|local default|the database's)")
	literal := regexp.MustCompile("^`([^`]*)`")
	rows := row.FindAllStringSubmatch(section, -1)
	if len(rows) < 40 {
		t.Fatalf("found %d rows in the README's configuration table", len(rows))
	}
	for _, r := range rows {
		env, name, cell := r[1], r[2], strings.TrimSpace(r[3])
		f := s.fs.Lookup(name)
		if f == nil {
			t.Errorf("README lists --%s, which serve does not have", name)
			continue
		}
		if !strings.Contains(f.Usage, "(env "+env+")") && env != "" {
			t.Errorf("--%s: README says env %s, the flag says %q", name, env, f.Usage)
		}
		switch m := literal.FindStringSubmatch(cell); {
		case env == "DATABASE_DIRECT_URL": // defaults to another setting, not a value
		case unset.MatchString(cell):
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				t.Errorf("--%s: README says %q, the flag's default is %q", name, cell, f.DefValue)
			}
		case m != nil:
			if !sameValue(m[1], f.DefValue) {
				t.Errorf("--%s: README says %q, the flag's default is %q", name, m[1], f.DefValue)
			}
		default:
			t.Errorf("--%s: README's default %q is neither a `value` nor none/off/empty", name, cell)
		}
	}
}

// sameValue compares a README default with a flag's, durations by value
// (720h is 720h0m0s) and lists without their separators.
func sameValue(readme, flag string) bool {
	if a, err := time.ParseDuration(readme); err == nil {
		b, err := time.ParseDuration(flag)
		return err == nil && a == b
	}
	norm := strings.NewReplacer(",", " ").Replace
	return strings.Join(strings.Fields(norm(readme)), " ") == strings.Join(strings.Fields(norm(flag)), " ")
}
