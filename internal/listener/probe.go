package listener

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// probeSpec is a listener's own test channel and the token of the probe
// under way. The channel is unique to the listener, so no other node's
// probes reach it.
type probeSpec struct {
	channel string
}

func newProbe() probeSpec {
	return probeSpec{channel: "notifyd_probe_" + randomHex(8)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// probe sends a test notification to the probe channel from a connection
// of its own and waits up to ProbeTimeout for it on conn, dispatching any
// other notification that arrives meanwhile. It reports whether the test
// notification came back; an error means a connection failed.
//
// The sender must be another client connection: through a transaction-mode
// pooler, the listener's own NOTIFY would most likely run on the very server
// connection its LISTEN was left on and come back to it, proving nothing.
func (l *Listener) probe(ctx context.Context, conn *pgx.Conn, p probeSpec) (bool, error) {
	token := randomHex(8)
	waitCtx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
	defer cancel()
	// The sender's failure ends the wait at once; the sender has always
	// finished when probe returns.
	var sendErr error
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		if err := l.sendProbe(waitCtx, p.channel, token); err != nil {
			sendErr = err
			cancel()
		}
	}()
	defer func() { cancel(); <-sent }()
	for {
		n, err := conn.WaitForNotification(waitCtx)
		switch {
		case err == nil && n.Channel == p.channel:
			if n.Payload == token {
				return true, nil
			}
		case err == nil:
			l.dispatch(ctx, conn, n.Channel, n.Payload)
		case ctx.Err() == nil && waitCtx.Err() != nil:
			<-sent
			if sendErr != nil && !errors.Is(waitCtx.Err(), context.DeadlineExceeded) {
				return false, sendErr
			}
			return false, nil // sent, never heard in time: deaf
		default:
			return false, fmt.Errorf("wait for the test notification: %w", err)
		}
	}
}

// sendProbe connects to the listener's database as a separate client and
// sends the test notification. The statement goes by the simple protocol:
// through a transaction-mode pooler a named prepared statement would be
// left behind on a server connection that others use next.
func (l *Listener) sendProbe(ctx context.Context, channel, token string) error {
	cfg, err := pgx.ParseConfig(l.cfg.URL)
	if err != nil {
		return fmt.Errorf("send the test notification: parse url: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "notifyd-listener-probe"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("send the test notification: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "SELECT pg_notify($1, $2)", pgx.QueryExecModeSimpleProtocol, channel, token); err != nil {
		return fmt.Errorf("send the test notification: %w", err)
	}
	return nil
}

// behindPooler reports whether conn reaches its server process through a
// pooler or proxy: the process id the connection announced when it opened
// (its cancel key) is not the one that runs its statements. PgBouncer, for
// one, announces a made-up id of its own.
func behindPooler(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var pid int64
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()", pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
		return false, fmt.Errorf("read the server process id: %w", err)
	}
	return pid != int64(conn.PgConn().PID()), nil
}
