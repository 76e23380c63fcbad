package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/notify"
	"github.com/notifyd/notifyd/internal/testkit/cluster"
	"github.com/notifyd/notifyd/internal/testkit/stats"
)

// runResumePhase: a stream is cfg.ResumeBehind notifications behind (with
// cfg.ResumeNoise notifications to other users interleaved per one of its
// own, so the replay reads past others' rows as it would in a shared
// table); it reconnects with Last-Event-ID and the phase measures from the
// request to the last replayed notification. Repeated cfg.ResumeRounds
// times; the median is the figure.
func runResumePhase(ctx context.Context, cfg config, nr *nodeRun, prog *progress, rep *Report) (*ResumeResult, error) {
	prog.Printf("resume: a stream %d notifications behind (noise %.1f), %d rounds", cfg.ResumeBehind, cfg.ResumeNoise, cfg.ResumeRounds)
	e, err := nr.startNodes(ctx, 1, nil)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	id := notify.Identity{UserID: "resumer", Roles: []string{"R1"}}
	tok, err := nr.token(id.UserID, id.Roles)
	if err != nil {
		return nil, err
	}
	targets := resumeTargets(id.UserID, cfg.ResumeBehind, cfg.ResumeNoise)
	res := &ResumeResult{Behind: cfg.ResumeBehind, Noise: cfg.ResumeNoise, TargetMs: targetResumeMs, OK: true}
	samp := startSampler(ctx, e.admin, 50*time.Millisecond)
	defer func() { rep.Profiles = append(rep.Profiles, samp.Stop(phaseResume)) }()
	var totals []float64
	for round := range cfg.ResumeRounds {
		from, err := cluster.Head(ctx, e.admin)
		if err != nil {
			return nil, err
		}
		for i := 0; i < len(targets); i += 1000 {
			if _, err := cluster.Insert(ctx, e.admin, targets[i:min(i+1000, len(targets))], "resume", ""); err != nil {
				return nil, err
			}
		}
		if err := cluster.WaitDrained(ctx, e.admin, cfg.Timeout); err != nil {
			return nil, err
		}
		r, err := resumeOnce(ctx, e, tok, from, cfg.ResumeBehind)
		if err != nil {
			return nil, fmt.Errorf("resume round %d: %w", round+1, err)
		}
		feed, err := cluster.LoadFeed(ctx, e.admin, from)
		if err != nil {
			return nil, err
		}
		r.Check = feed.Check(fmt.Sprintf("round %d", round+1), id, from, r.seqs)
		res.OK = res.OK && r.Check.OK() && r.Received == cfg.ResumeBehind
		res.Rounds = append(res.Rounds, r.ResumeRound)
		totals = append(totals, r.TotalMs)
		prog.Printf("resume round %d: %d notifications replayed in %.0f ms (first after %.0f ms); %s",
			round+1, r.Received, r.TotalMs, r.FirstMs, r.Check)
	}
	_ = e.admin.QueryRow(ctx, `SELECT count(*) FROM notify.notifications`).Scan(&res.TableRows)
	res.MedianMs = stats.Median(totals)
	for _, t := range totals {
		res.MaxMs = max(res.MaxMs, t)
	}
	res.RatePerS = float64(cfg.ResumeBehind) / (res.MedianMs / 1000)
	res.TargetMet = res.OK && res.MedianMs <= targetResumeMs
	if !res.OK {
		return res, fmt.Errorf("resume: a replay was not exactly once")
	}
	return res, nil
}

// resumeTargets is behind notifications for user with noise others'
// interleaved per one of its own.
func resumeTargets(user string, behind int, noise float64) []notify.Target {
	out := make([]notify.Target, 0, int(float64(behind)*(1+noise))+1)
	acc := 0.0
	for i := range behind {
		out = append(out, notify.Target{UserID: user})
		for acc += noise; acc >= 1; acc-- {
			out = append(out, notify.Target{UserID: "other" + strconv.Itoa(i%500)})
		}
	}
	return out
}

type resumeRun struct {
	ResumeRound
	seqs []int64
}

// resumeOnce opens a stream with Last-Event-ID from and reads until want
// notifications have arrived.
func resumeOnce(ctx context.Context, e *nodeEnv, tok string, from int64, want int) (resumeRun, error) {
	r := resumeRun{ResumeRound: ResumeRound{Behind: want}}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	start := time.Now()
	seqs, err := replay(ctx, e.http, e.nodes[0].URL(), http.Header{"Authorization": {"Bearer " + tok}}, from, want, func(count int) {
		if count == 1 {
			r.FirstMs = stats.Ms(time.Since(start))
		}
		r.TotalMs = stats.Ms(time.Since(start))
	})
	if err != nil {
		return r, err
	}
	r.seqs, r.Received = seqs, len(seqs)
	return r, nil
}
