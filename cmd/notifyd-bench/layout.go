package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/fleet"
)

// layout is where a phase's streams are: stream k belongs to user
// k mod users, starts on node k mod nodes and is held by client process
// k mod processes, so each user's streams are spread over the nodes and
// each process holds a share of every node's.
type layout struct {
	ids   []notify.Identity // by stream key
	plans []fleet.Plan
}

// newLayout signs a token per user and makes the client processes' plans.
// start is every stream's first Last-Event-ID (negative: none).
func (nr *nodeRun) newLayout(e *nodeEnv, pop cluster.Population, streams int, start int64) (*layout, error) {
	procs := max(1, (streams+nr.cfg.ClientStreams-1)/nr.cfg.ClientStreams)
	l := &layout{ids: make([]notify.Identity, streams), plans: make([]fleet.Plan, procs)}
	urls := make([]string, len(e.nodes))
	for i, n := range e.nodes {
		urls[i] = n.URL()
	}
	for p := range l.plans {
		l.plans[p] = fleet.Plan{ID: p, SourceIP: fmt.Sprintf("127.0.1.%d", 1+p%250), Nodes: urls,
			Tokens: map[string]string{}, OpenParallel: 32}
	}
	tokens := map[string]string{}
	for k := range streams {
		id := pop.Users[k%len(pop.Users)]
		l.ids[k] = id
		tok, ok := tokens[id.UserID]
		if !ok {
			var err error
			if tok, err = nr.token(id.UserID, id.Roles); err != nil {
				return nil, err
			}
			tokens[id.UserID] = tok
		}
		p := &l.plans[k%procs]
		p.Tokens[id.UserID] = tok
		p.Streams = append(p.Streams, fleet.Stream{Key: k, User: id.UserID, Node: k % len(e.nodes), Start: start})
	}
	return l, nil
}

// moveStreams puts stream k on node nodeOf(k) instead of k mod nodes.
func (l *layout) moveStreams(nodeOf func(k int) int) {
	for p := range l.plans {
		for i := range l.plans[p].Streams {
			s := &l.plans[p].Streams[i]
			s.Node = nodeOf(s.Key)
		}
	}
}

// browser makes every stream reconnect as notifyd's browser client does
// (fleet.Browser) instead of at once.
func (l *layout) browser(m fleet.Browser) {
	for p := range l.plans {
		l.plans[p].Browser = &m
	}
}

// open starts the client processes and waits until their streams are
// open, printing progress.
func (l *layout) open(ctx context.Context, prog *progress, phase string, stderr io.Writer) (*fleet.Fleet, int, float64, error) {
	cs, err := fleet.Start(l.plans, stderr)
	if err != nil {
		return nil, 0, 0, err
	}
	stop := prog.Every(2*time.Second, func() string {
		s := cs.Stats()
		return fmt.Sprintf("%s: %d of %d streams open, %d connect errors, client RSS %.0f MiB", phase, s.Open, len(l.ids), s.ConnectErrors, mib(s.RSS))
	})
	opened, failed, secs, err := cs.WaitOpened(ctx, 10*time.Minute)
	stop()
	if err == nil && failed > 0 {
		err = fmt.Errorf("%s: %d of %d streams did not open within a minute", phase, failed, len(l.ids))
	}
	if err != nil {
		cs.Close()
		return nil, 0, 0, err
	}
	prog.Printf("%s: %d streams open in %.1f s (%d client processes)", phase, opened, secs, len(l.plans))
	return cs, opened, secs, nil
}
