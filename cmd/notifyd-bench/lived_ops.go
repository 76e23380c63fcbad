package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/wire"
)

// livedOp is one operation the lived phase times: real HTTP against the
// node, checked against what the plan says the user has, so a fast wrong
// answer cannot pass for a fast one.
type livedOp struct {
	Key, Label string
	run        func(ctx context.Context) error
}

// livedClient is one user's side of the operations.
type livedClient struct {
	http  *http.Client
	base  string
	token string
}

func (c livedClient) header() http.Header { return http.Header{"Authorization": {"Bearer " + c.token}} }

// open opens a new stream (no resume) and reads until the connected
// message, which carries the unread count: want it, or want more than
// UnreadCap when wantMore.
func (c livedClient) open(ctx context.Context, want int, wantMore bool) error {
	s, err := wire.Open(ctx, c.http, c.base+cluster.StreamPath, c.header())
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			return fmt.Errorf("before connected: %w", err)
		}
		m, err := wire.Decode(ev)
		if err != nil {
			return err
		}
		if m.Type != wire.TypeConnected {
			continue
		}
		d, err := m.Connected()
		if err != nil {
			return err
		}
		count, more := d.UnreadCount, d.HasMore != nil && *d.HasMore
		if count == nil || !count.Known || (!wantMore && count.N != want) || more != wantMore {
			return fmt.Errorf("connected with unread count %s", ev.Data)
		}
		return nil
	}
}

// resume opens a stream with Last-Event-ID from and reads until it has
// the notifications in want, which must be exactly the ones that come.
func (c livedClient) resume(ctx context.Context, from int64, want []int64) error {
	got, err := replay(ctx, c.http, c.base, c.header(), from, len(want), nil)
	if err == nil && !slices.Equal(got, want) {
		err = fmt.Errorf("replayed %v, want %v", got, want)
	}
	return err
}

// replay opens a stream on the node at base with Last-Event-ID from and
// returns the seqs of its first n notifications; read, when not nil, is
// told each one's count as it arrives (so a caller can time the first and
// the last before the stream closes).
func replay(ctx context.Context, client *http.Client, base string, h http.Header, from int64, n int, read func(count int)) ([]int64, error) {
	h.Set("Last-Event-ID", strconv.FormatInt(from, 10))
	s, err := wire.Open(ctx, client, base+cluster.StreamPath, h)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	got := make([]int64, 0, n)
	for len(got) < n {
		ev, err := s.Next()
		if err != nil {
			return got, fmt.Errorf("after %d of %d notifications: %w", len(got), n, err)
		}
		if ev.ID == "" {
			continue
		}
		seq, err := strconv.ParseInt(ev.ID, 10, 64)
		if err != nil {
			return got, fmt.Errorf("event id %q", ev.ID)
		}
		got = append(got, seq)
		if read != nil {
			read(len(got))
		}
	}
	return got, nil
}

// get requests path and decodes the JSON answer into v.
func (c livedClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header = c.header()
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// unread checks the unread count: want, or more than UnreadCap when wantMore.
func (c livedClient) unread(ctx context.Context, want int, wantMore bool) error {
	var u struct {
		Count   int  `json:"count"`
		HasMore bool `json:"hasMore"`
	}
	if err := c.get(ctx, "/api/notifications/unread-count", &u); err != nil {
		return err
	}
	if u.HasMore != wantMore || (!wantMore && u.Count != want) {
		return fmt.Errorf("unread count %d (more: %v), want %d (more: %v)", u.Count, u.HasMore, want, wantMore)
	}
	return nil
}

// history checks the first history page: the newest 20, newest first.
func (c livedClient) history(ctx context.Context, want []int64) error {
	var page struct {
		Notifications []struct {
			Seq int64 `json:"seq"`
		} `json:"notifications"`
	}
	if err := c.get(ctx, "/api/notifications?limit=20", &page); err != nil {
		return err
	}
	got := make([]int64, len(page.Notifications))
	for i, n := range page.Notifications {
		got[i] = n.Seq
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("history page %v, want %v", got, want)
	}
	return nil
}

// timeOps runs warmup untimed rounds, then reps timed ones, of every op;
// each round starts one op further along, so no op always follows the
// same other one. Any failed check ends the run.
func timeOps(ctx context.Context, ops []livedOp, warmup, reps int) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	for rep := -warmup; rep < reps; rep++ {
		for j := range ops {
			op := ops[(rep+warmup+j)%len(ops)]
			octx, cancel := context.WithTimeout(ctx, 30*time.Second)
			start := time.Now()
			err := op.run(octx)
			took := time.Since(start)
			cancel()
			if err != nil {
				return out, fmt.Errorf("%s: %w", op.Label, err)
			}
			if rep >= 0 {
				out[op.Key] = append(out[op.Key], took)
			}
		}
	}
	return out, nil
}
