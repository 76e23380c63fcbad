package localdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Where a Database came from, as Database.Source says.
const (
	SourceURL     = "DATABASE_URL"
	SourceLocal   = "local server"
	SourceCluster = "private cluster"
)

// ErrNoPostgres is returned, wrapped in a message saying what to install,
// when there is no server to use and no binaries to start one.
var ErrNoPostgres = errors.New("no PostgreSQL found")

// Options configures Resolve.
type Options struct {
	// URL is what DATABASE_URL said; when set it is used as is, after a
	// connection check, and nothing else is tried.
	URL string
	// Name is the database to use on a local server or private cluster,
	// created if missing; default "notify".
	Name string
	// DataDir holds the private cluster; default DefaultDataDir().
	DataDir string
	// LocalAddr is where a local server is looked for; default
	// "127.0.0.1:5432".
	LocalAddr string
	// BinDirs lists the directories searched for initdb and postgres, in
	// order; default DefaultBinDirs.
	BinDirs func(context.Context) []string
	// Logger says which database was chosen and why; default discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	o.Name = cmp.Or(o.Name, "notify")
	o.LocalAddr = cmp.Or(o.LocalAddr, "127.0.0.1:5432")
	if o.BinDirs == nil {
		o.BinDirs = DefaultBinDirs
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

func (o Options) validate() error {
	// PostgreSQL truncates longer names, and then the URL would not match.
	if len(o.Name) > 63 || strings.ContainsRune(o.Name, 0) {
		return fmt.Errorf("Name %q is not a valid database name (at most 63 bytes, no NUL)", o.Name)
	}
	return nil
}

// Database is the database Resolve chose.
type Database struct {
	// URL is the connection string for the database.
	URL string
	// Source is SourceURL, SourceLocal or SourceCluster.
	Source string

	close func(context.Context) error
}

// Close releases the database: for a private cluster it stops the server
// unless another process still uses it; otherwise it does nothing. `notifyd
// serve` calls it at exit. Give it a live context: when ctx ends before the
// fast shutdown does, the server is killed instead (and recovers at its next
// start).
func (d Database) Close(ctx context.Context) error {
	if d.close == nil {
		return nil
	}
	return d.close(ctx)
}

// Resolve finds or makes the database notifyd uses: opts.URL if given, else
// database opts.Name on the server at opts.LocalAddr (as postgres, then as
// the current OS user), else the same database in a private cluster started
// from the PostgreSQL binaries on this machine, else an error wrapping
// ErrNoPostgres that says what to install.
func Resolve(ctx context.Context, opts Options) (Database, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return Database{}, fmt.Errorf("resolve database: %w", err)
	}
	log := opts.Logger
	if opts.URL != "" {
		if err := checkConnect(ctx, opts.URL); err != nil {
			return Database{}, redact(fmt.Errorf("connect to DATABASE_URL %s: %w", redactURL(opts.URL), err), opts.URL)
		}
		log.InfoContext(ctx, "using database", "source", SourceURL, "url", redactURL(opts.URL))
		return Database{URL: opts.URL, Source: SourceURL}, nil
	}
	url, localErr := useLocalServer(ctx, opts.LocalAddr, opts.Name)
	if localErr == nil {
		log.InfoContext(ctx, "using database", "source", SourceLocal, "url", url)
		return Database{URL: url, Source: SourceLocal}, nil
	}
	log.InfoContext(ctx, "no usable local PostgreSQL server", "addr", opts.LocalAddr, "error", localErr)
	dirs := opts.BinDirs(ctx)
	binDir, ok := findBinDir(dirs)
	if !ok {
		return Database{}, notFoundError(opts.LocalAddr, localErr, dirs)
	}
	dataDir := opts.DataDir
	if dataDir == "" {
		var err error
		if dataDir, err = DefaultDataDir(); err != nil {
			return Database{}, fmt.Errorf("start private cluster: %w", err)
		}
	}
	shared, err := openShared(ctx, ClusterOptions{DataDir: dataDir, BinDir: binDir, Logger: log})
	if err != nil {
		return Database{}, fmt.Errorf("start private cluster: %w", err)
	}
	if err := ensureDatabase(ctx, shared.url("postgres"), opts.Name); err != nil {
		return Database{}, errors.Join(fmt.Errorf("private cluster: %w", err), shared.close(ctx))
	}
	url = shared.url(opts.Name)
	log.InfoContext(ctx, "using database", "source", SourceCluster, "url", url, "data_dir", dataDir)
	return Database{URL: url, Source: SourceCluster, close: shared.close}, nil
}

// notFoundError says what was tried and what to install.
func notFoundError(addr string, localErr error, dirs []string) error {
	var b strings.Builder
	if addr != "" {
		reason := "no answer"
		if localErr != nil {
			reason = strings.ReplaceAll(localErr.Error(), "\n", "; ")
		}
		fmt.Fprintf(&b, "no usable server at %s (%s); ", addr, reason)
	}
	searched := "no directories searched"
	if len(dirs) > 0 {
		searched = "searched " + strings.Join(dirs, ", ")
	}
	fmt.Fprintf(&b, "no initdb and postgres binaries to start a private cluster (%s). ", searched)
	b.WriteString("Install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; macOS: brew install postgresql) or set DATABASE_URL to a server you can reach")
	return fmt.Errorf("%w: %s", ErrNoPostgres, b.String())
}
