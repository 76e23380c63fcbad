// Command notifyd is the notification server and its operator's tool.
//
//   - serve (the default) runs HTTP, streams, the listener, the feed and the
//     queue worker in one process (package app);
//   - worker runs the queue worker alone;
//   - migrate manages the schema;
//   - send, status, retry and tail are the operator's one-shot commands:
//     publish a notification, read the queue's state, repair failed items,
//     follow the published stream (from the database or a server's stream);
//   - dev-token prints a token from the development issuer.
//
// Run is main without the process: it takes arguments, environment and
// output streams, so the tests call each command as a user would.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gin.SetMode(gin.ReleaseMode)
	if err := Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "notifyd:", err)
		os.Exit(exitCode(err))
	}
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return 2
	}
	return 1
}

const usage = `notifyd: real-time notifications stored in PostgreSQL, pushed over Server-Sent Events.

Usage:
  notifyd [serve] [flags]        run the server (HTTP, streams, listener, queue worker)
  notifyd worker [flags]         run queue workers only
  notifyd migrate up|down|status apply, roll back or list schema migrations
  notifyd dev-token --sub ID [--roles A,B] [--ttl 1h]
                                 print a bearer token from the development issuer
  notifyd send --message TEXT [--user ID] [--roles A,B] [--severity S] ...
                                 send a notification, born published (notify.send)
  notifyd status [--json]        queue counts, last published seq, top errors
  notifyd retry --id N | --error-like P | --since T | --all
                                 put failed queue items back to pending
  notifyd tail --db | --url URL --token T [--from SEQ] [--count N] [--json]
                                 print notifications as they are published
  notifyd help                   this text

Every flag has an environment variable (shown in each command's -h).
Without DATABASE_URL, notifyd uses PostgreSQL on 127.0.0.1:5432 (database
"notify", created if missing), or else starts a private cluster from the
PostgreSQL binaries installed on this machine.
`

// Run executes one notifyd command. getenv supplies the environment, so tests
// can run commands without touching the process's.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, getenv, stderr)
	case "worker":
		return runWorker(ctx, args, getenv, stderr)
	case "migrate":
		return runMigrate(ctx, args, getenv, stdout, stderr)
	case "dev-token":
		return runDevToken(ctx, args, getenv, stdout, stderr)
	case "send":
		return runSend(ctx, args, getenv, stdout, stderr)
	case "status":
		return runStatus(ctx, args, getenv, stdout, stderr)
	case "retry":
		return runRetry(ctx, args, getenv, stdout, stderr)
	case "tail":
		return runTail(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}
