package localdb

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/notifyd/notifyd/internal/testkit"
)

func TestResolveUsesURLAsGiven(t *testing.T) {
	t.Parallel()
	needLocalServer(t)
	url := serverURL("postgres", localServer, "postgres") + "&application_name=localdb_test"
	db, err := Resolve(t.Context(), Options{URL: url, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(t.Context())
	if db.URL != url || db.Source != SourceURL {
		t.Errorf("got %q from %q, want %q from %q", db.URL, db.Source, url, SourceURL)
	}
}

func TestResolveCreatesDatabaseOnLocalServer(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	needLocalServer(t)
	// Upper case and a hyphen: the name must be quoted, not folded.
	name := uniqueName(t, "LocalDB-Test-")
	t.Cleanup(func() {
		mustExec(t, serverURL("postgres", localServer, "postgres"),
			`DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
	})
	// Several at once, as test binaries start: losing the race to create is fine.
	var wg sync.WaitGroup
	dbs := make([]Database, 4)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Go(func() {
			dbs[i], errs[i] = Resolve(t.Context(), Options{Name: name, DataDir: "/nonexistent", Logger: testLogger(t)})
		})
	}
	wg.Wait()
	for i, db := range dbs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if db.Source != SourceLocal {
			t.Errorf("Source = %q, want %q", db.Source, SourceLocal)
		}
		if err := db.Close(t.Context()); err != nil {
			t.Errorf("Close of a local server database: %v", err)
		}
	}
	conn := dbs[0].URL
	if n := mustQueryInt(t, conn, "SELECT count(*) FROM pg_database WHERE datname = current_database() AND datname = '"+name+"'"); n != 1 {
		t.Errorf("%s is not connected to database %s", conn, name)
	}
}

func TestResolveBadURLHidesPassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-pw"
	closed := closedAddr(t)
	tests := map[string]string{
		"closed port":       "postgres://app:" + secret + "@" + closed + "/notify?sslmode=disable",
		"unknown database":  "postgres://postgres:" + secret + "@" + localServer + "/no_such_db_localdb?sslmode=disable",
		"password in query": "postgres://app@" + closed + "/notify?sslmode=disable&password=" + secret,
		"key value":         "host=127.0.0.1 port=" + strings.Split(closed, ":")[1] + " user=app password=" + secret,
		"malformed":         "postgres://app:" + secret + "@" + closed + ":notaport/notify",
	}
	for name, url := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Resolve(t.Context(), Options{URL: url})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, secret) {
				t.Errorf("error leaks the password: %s", msg)
			}
			if !strings.Contains(msg, "DATABASE_URL") || !strings.Contains(msg, mask) {
				t.Errorf("error does not name the redacted URL: %s", msg)
			}
		})
	}
}

func TestResolveFallsBackToPrivateCluster(t *testing.T) {
	testkit.Slow(t)
	t.Parallel()
	opts := Options{LocalAddr: closedAddr(t), DataDir: dataDir(t), Logger: testLogger(t)}
	first, err := Resolve(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.Source != SourceCluster {
		t.Fatalf("Source = %q, want %q", first.Source, SourceCluster)
	}
	if n := mustQueryInt(t, first.URL, "SELECT count(*) FROM pg_database WHERE datname = current_database() AND datname = 'notify'"); n != 1 {
		t.Errorf("%s is not database notify", first.URL)
	}
	pid, _, running := runningServer(opts.DataDir)
	if !running {
		t.Fatal("no postmaster.pid for the private cluster")
	}

	// A second user, as another test binary would be, joins the same server
	// and keeps it alive after the first one leaves.
	second, err := Resolve(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if second.URL != first.URL {
		t.Errorf("second URL = %q, want the first's %q", second.URL, first.URL)
	}
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustQueryInt(t, second.URL, "SELECT 1")
	if err := second.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Errorf("postmaster %d still running after its last user closed", pid)
	}
}

func TestResolveNothingFound(t *testing.T) {
	t.Parallel()
	_, err := Resolve(t.Context(), Options{
		LocalAddr: closedAddr(t),
		BinDirs:   func(context.Context) []string { return nil },
	})
	if !errors.Is(err, ErrNoPostgres) {
		t.Fatalf("error = %v, want ErrNoPostgres", err)
	}
	t.Log(err)
	for _, want := range []string{"apt-get install postgresql", "DATABASE_URL", "no directories searched"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
