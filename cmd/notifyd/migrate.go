package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/notifyd/notifyd/internal/postgres"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c common
	var maxAttempts int
	s := newSettings("migrate", getenv, stderr)
	c.bind(s)
	c.bindDirect(s)
	bindMaxAttempts(s, &maxAttempts, "with up, make it the limit new queue items get on every node; unset: leave the database's")
	s.fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: notifyd migrate up|down|status [flags]\n\n  up      apply every pending migration (and --max-attempts, when given)\n  down    roll back the most recent migration\n  status  list migrations and whether each is applied\n\nflags:")
		s.fs.PrintDefaults()
	}
	if err := s.parse(args); err != nil {
		return helpOK(err)
	}
	if len(s.args) != 1 {
		s.fs.Usage()
		return usageError{"migrate needs exactly one of up, down, status"}
	}
	// goose holds a session advisory lock while it migrates, which a
	// transaction pooler would lose between statements.
	_, url, release, err := c.direct(ctx, stderr)
	if err != nil {
		return err
	}
	defer release()
	pool, err := postgres.OpenPool(ctx, url, postgres.PoolConfig{MaxConns: 2, ApplicationName: "notifyd-migrate"})
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := postgres.NewMigrator(pool, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	switch verb := s.args[0]; verb {
	case "up":
		applied, err := m.Up(ctx)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "schema is current; nothing to apply")
		}
		for _, v := range applied {
			fmt.Fprintf(stdout, "applied %05d\n", v)
		}
		if maxAttempts != 0 {
			if err := postgres.NewQueue(pool).SetMaxAttempts(ctx, maxAttempts); err != nil {
				return fmt.Errorf("NOTIFY_MAX_ATTEMPTS: %w", err)
			}
			fmt.Fprintf(stdout, "max attempts of new queue items: %d\n", maxAttempts)
		}
	case "down":
		v, err := m.Down(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rolled back %05d\n", v)
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tFILE")
		for _, m := range st {
			state := "pending"
			if m.Applied {
				state = "applied"
			}
			fmt.Fprintf(tw, "%05d\t%s\t%s\n", m.Version, state, m.Name)
		}
		return tw.Flush()
	default:
		s.fs.Usage()
		return usageError{fmt.Sprintf("unknown migrate command %q: want up, down or status", verb)}
	}
	return nil
}
