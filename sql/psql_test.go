package sqlfiles_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// output is what one psql run printed, split the way an admin reads it:
// result rows, and the command tags psql prints between them.
type output struct {
	rows   [][]string
	tags   []string // BEGIN, NOTIFY, COMMIT, UPDATE 2, ...
	stderr string
	// before and after bracket the run: the server's now() lies between.
	before, after time.Time
}

// commandTag matches the status lines psql prints for statements (it does
// so even with -t); the admin files return rows of several columns, so no
// row looks like one.
var commandTag = regexp.MustCompile(`^(BEGIN|COMMIT|ROLLBACK|NOTIFY|DO|SET|(SELECT|UPDATE|DELETE) \d+|INSERT \d+ \d+)$`)

var (
	psqlOnce sync.Once
	psqlPath string
)

// psqlBinary finds psql on PATH, else beside a Debian-style server install.
func psqlBinary(t *testing.T) string {
	t.Helper()
	psqlOnce.Do(func() {
		if p, err := exec.LookPath("psql"); err == nil {
			psqlPath = p
			return
		}
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
		if len(matches) > 0 {
			psqlPath = matches[len(matches)-1]
		}
	})
	if psqlPath == "" {
		t.Fatal("psql not found: the admin queries are psql files (install postgresql-client)")
	}
	return psqlPath
}

// runPsql runs file the way the files' headers tell admins to, in
// unaligned tuples-only mode so the answer can be parsed, with vars as
// "name=value" psql variables. Timestamps print in UTC.
func runPsql(t *testing.T, url, file string, env []string, vars ...string) (output, error) {
	t.Helper()
	args := []string{url, "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-F", "|"}
	for _, v := range vars {
		args = append(args, "-v", v)
	}
	args = append(args, "-f", file)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, psqlBinary(t), args...)
	cmd.Env = append(os.Environ(), "PGTZ=UTC", "PGDATESTYLE=ISO", "PGCLIENTENCODING=UTF8")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	out := output{before: time.Now().Truncate(time.Microsecond)}
	err := cmd.Run()
	out.after = time.Now()
	out.stderr = stderr.String()
	for line := range strings.Lines(stdout.String()) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
		case commandTag.MatchString(line):
			out.tags = append(out.tags, line)
		default:
			out.rows = append(out.rows, strings.Split(line, "|"))
		}
	}
	return out, err
}

// run runs file and fails t unless psql succeeds without a word on stderr.
func run(t *testing.T, url, file string, vars ...string) output {
	t.Helper()
	out := runWarn(t, url, file, vars...)
	if out.stderr != "" {
		t.Fatalf("psql -f %s %v wrote to stderr:\n%s", file, vars, out.stderr)
	}
	return out
}

// runWarn runs file and fails t unless psql succeeds; stderr (warnings) is
// the caller's to check.
func runWarn(t *testing.T, url, file string, vars ...string) output {
	t.Helper()
	out, err := runPsql(t, url, file, nil, vars...)
	if err != nil {
		t.Fatalf("psql -f %s %v: %v\n%s", file, vars, err, out.stderr)
	}
	return out
}

// runRefused runs file expecting psql to stop on an error (exit status 3,
// ON_ERROR_STOP) and returns what it wrote to stderr.
func runRefused(t *testing.T, url, file string, vars ...string) output {
	t.Helper()
	out, err := runPsql(t, url, file, nil, vars...)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("psql -f %s %v: want exit status 3 (stopped on error), got %v\nstdout rows %q\nstderr %s", file, vars, err, out.rows, out.stderr)
	}
	if len(out.rows) != 0 {
		t.Errorf("psql -f %s %v printed rows before refusing: %q", file, vars, out.rows)
	}
	return out
}
