package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/notifyd/notifyd/internal/notify"
)

// The lived phase's table is background traffic, derived from a hash of
// each seq (lived_seed.go), plus the notifications of the users it
// measures, placed at seqs chosen here. Every size has its own sparse and
// dense user, so that at every size the user measured has the same number
// of notifications spread over the whole table as it is then: between
// sizes, only the table differs.
const (
	livedUsers = 100_000 // background users u0 … u99999 (70% of rows name one)
	livedRoles = 200     // background roles r0 … r199 (30% of rows name one or two)
	// livedSparseTotal is what each sparse user receives, the broadcasts
	// included: broadcasts reach everyone, so there are very few.
	livedSparseTotal       = 20
	livedBroadcastsPerSize = 2 // placed among each size's new rows
	// livedMaxSizes leaves every sparse user one notification of its own.
	livedMaxSizes     = (livedSparseTotal - 1) / livedBroadcastsPerSize
	livedResumeBehind = 500 // the dense user's resume: this many notifications behind
)

// livedTarget is a planned notification's target: Roles comma-separated;
// both empty is a broadcast.
type livedTarget struct{ User, Roles string }

func (t livedTarget) target() notify.Target {
	nt := notify.Target{UserID: t.User}
	if t.Roles != "" {
		nt.Roles = strings.Split(t.Roles, ",")
	}
	return nt
}

// livedSparseUser receives livedSparseTotal notifications at size n: half
// naming it, half naming a role only it holds, and the broadcasts.
func livedSparseUser(n int64) notify.Identity {
	s := strconv.FormatInt(n, 10)
	return notify.Identity{UserID: "sparse-" + s, Roles: []string{"solo-" + s}}
}

// livedDenseUser receives -lived-dense notifications at size n: a third
// naming it, the rest naming one or both of its two roles, and the broadcasts.
func livedDenseUser(n int64) notify.Identity {
	s := strconv.FormatInt(n, 10)
	return notify.Identity{UserID: "dense-" + s, Roles: []string{"team-" + s + "-a", "team-" + s + "-b"}}
}

// livedPlan is where the special notifications of every size go.
type livedPlan struct {
	at map[int64]livedTarget
}

func newLivedPlan(sizes []int64, dense int) *livedPlan {
	p := &livedPlan{at: map[int64]livedTarget{}}
	prev := int64(0)
	for k, n := range sizes {
		p.spread(prev+1, n, livedBroadcastsPerSize, func(int) livedTarget { return livedTarget{} })
		sp := livedSparseUser(n)
		p.spread(1, n, livedSparseTotal-livedBroadcastsPerSize*(k+1), func(i int) livedTarget {
			if i%2 == 0 {
				return livedTarget{User: sp.UserID}
			}
			return livedTarget{Roles: sp.Roles[0]}
		})
		d := livedDenseUser(n)
		p.spread(1, n, dense, func(i int) livedTarget {
			switch i % 6 {
			case 0, 3:
				return livedTarget{User: d.UserID}
			case 1, 4:
				return livedTarget{Roles: d.Roles[0]}
			case 2:
				return livedTarget{Roles: d.Roles[1]}
			default:
				return livedTarget{Roles: d.Roles[0] + "," + d.Roles[1]}
			}
		})
		prev = n
	}
	return p
}

// livedSpecialRows is how many rows the plan reserves, at most, below any
// size: validate wants the first size to leave room for background rows.
func livedSpecialRows(sizes []int64, dense int) int64 {
	return int64(len(sizes)) * int64(livedBroadcastsPerSize+livedSparseTotal+dense)
}

// spread places m notifications evenly over [lo, hi], each in the middle
// of its share, moving up past seqs another user took (validate leaves room).
func (p *livedPlan) spread(lo, hi int64, m int, target func(i int) livedTarget) {
	width := hi - lo + 1
	for i := range m {
		s := lo + (2*int64(i)+1)*width/(2*int64(m))
		for _, taken := p.at[s]; taken; _, taken = p.at[s] {
			if s++; s > hi {
				s = lo
			}
		}
		p.at[s] = target(i)
	}
}

// in returns the planned seqs in [lo, hi] and their targets, as the seed
// statement's arrays.
func (p *livedPlan) in(lo, hi int64) (seqs []int64, users, roles []string) {
	for _, s := range slices.Sorted(maps.Keys(p.at)) {
		if s >= lo && s <= hi {
			seqs, users, roles = append(seqs, s), append(users, p.at[s].User), append(roles, p.at[s].Roles)
		}
	}
	return seqs, users, roles
}

// audience is what id may see among the first upTo seqs, in seq order.
// Background rows never name a special user or role.
func (p *livedPlan) audience(id notify.Identity, upTo int64) []int64 {
	var out []int64
	for _, s := range slices.Sorted(maps.Keys(p.at)) {
		if s <= upTo && p.at[s].target().Matches(id) {
			out = append(out, s)
		}
	}
	return out
}

// livedReadState is the dense user's read state: everything up to the
// middle of its notifications read (the watermark), every 20th above it
// marked read and every 20th at or below it marked unread.
func livedReadState(aud []int64) (upTo int64, read, unread []int64) {
	mid := len(aud) / 2
	upTo = aud[mid]
	for i, s := range aud {
		switch {
		case i%20 == 10 && i > mid:
			read = append(read, s)
		case i%20 == 5 && i <= mid:
			unread = append(unread, s)
		}
	}
	return upTo, read, unread
}

const (
	livedChunk     = 100_000 // rows one seed transaction writes
	livedMarkEvery = 50      // one in this many seqs, if a background user's, is marked read
)

// livedSeedStatement writes seqs $1..$2 as the worker would have left them:
// each notification published (seq, published_at), its queue item sent,
// its roles in notify.notification_roles. It runs with triggers off
// (session_replication_role = replica): the enqueue trigger would queue the
// rows again and the wake-up would NOTIFY, and foreign keys need no check
// for rows written together. Background targets come from a hash of the
// seq: 70% one of livedUsers users, 30% one or two of livedRoles roles,
// never a broadcast; the plan's seqs ($3, with $4 user and $5 roles, ""
// for none) take the special users' targets. created_at runs from $6 in
// steps of $7 seconds; ids are time-ordered (UUIDv7 layout), so the two
// unique indexes on them grow at their right edge and the seed stays fast
// at 10 million rows, where random ids would make every insert touch a
// random page of two large indexes. No measured read uses the id.
// Background users have read one in $10 of their own notifications
// (notify.read_marks): a real inbox's marks table is large, and the
// planner should see one.
const livedSeedStatement = `WITH spec AS (
		SELECT * FROM unnest($3::bigint[], $4::text[], $5::text[]) AS s(seq, user_id, roles)
	), src AS (
		SELECT g AS seq, $6::timestamptz + (g - 1) * ($7::float8 * interval '1 second') AS created_at,
			hashint8extended(g, 1) & 9223372036854775807 AS h
		FROM generate_series($1::bigint, $2::bigint) g
	), tgt AS (
		SELECT src.seq, src.created_at, src.h,
			CASE WHEN spec.seq IS NOT NULL THEN NULLIF(spec.user_id, '')
			     WHEN src.h % 100 < 70 THEN 'u' || (src.h / 100) % $8 END AS target_user_id,
			CASE WHEN spec.seq IS NOT NULL THEN string_to_array(NULLIF(spec.roles, ''), ',')
			     WHEN src.h % 100 < 70 THEN NULL
			     WHEN (src.h / 10000000) % 2 = 0 THEN ARRAY['r' || (src.h / 100000000) % $9]
			     ELSE ARRAY['r' || (src.h / 100000000) % $9,
			                'r' || ((src.h / 100000000) % $9 + 1 + (src.h / 100000000000) % ($9 - 1)) % $9] END AS target_roles
		FROM src LEFT JOIN spec ON spec.seq = src.seq
	), n AS (
		INSERT INTO notify.notifications (id, seq, target_user_id, target_roles, module, action_type, message, severity,
			created_at, published_at)
		SELECT (lpad(to_hex((extract(epoch FROM created_at) * 1000)::bigint), 12, '0') || '70008000' || lpad(to_hex(seq), 12, '0'))::uuid,
			seq, target_user_id, target_roles,
			(ARRAY['orders', 'billing', 'shipping', 'support', 'security'])[1 + (h / 100000000000000) % 5], 'event',
			'lived notification ' || seq, 'medium', created_at, created_at + interval '20 milliseconds'
		FROM tgt
		RETURNING id, seq, target_user_id, target_roles, created_at, published_at
	), q AS (
		INSERT INTO notify.queue_items (notification_id, status, attempts, next_attempt_at, created_at, updated_at, sent_at)
		SELECT id, 'sent', 1, created_at, created_at, published_at, published_at FROM n
	), r AS (
		INSERT INTO notify.notification_roles (role, seq)
		SELECT x.role, n.seq FROM n CROSS JOIN LATERAL unnest(n.target_roles) AS x(role) WHERE n.target_roles IS NOT NULL
	), m AS (
		INSERT INTO notify.read_marks (user_id, seq, is_read, marked_at)
		SELECT n.target_user_id, n.seq, true, n.published_at + interval '1 hour' FROM n
		WHERE n.target_user_id LIKE 'u%' AND n.seq % $10 = 0
	)
	SELECT count(*) FROM n`

// livedSeeder grows the phase's table, one size after another.
type livedSeeder struct {
	pool  *pgxpool.Pool
	plan  *livedPlan
	first time.Time // created_at of seq 1
	step  float64   // seconds between two seqs' created_at: the largest size spans 30 days
	prog  *progress
}

func newLivedSeeder(pool *pgxpool.Pool, plan *livedPlan, largest int64, prog *progress) *livedSeeder {
	span := 30 * 24 * time.Hour
	return &livedSeeder{pool: pool, plan: plan, first: time.Now().Add(-span), step: span.Seconds() / float64(largest), prog: prog}
}

// grow writes seqs from+1..to in chunks, moves the stream head to `to`,
// gives the dense user of size `to` its read state, and vacuums and
// analyzes the tables, so the node plans on fresh statistics and can use
// index-only scans.
func (s *livedSeeder) grow(ctx context.Context, from, to int64) (LivedSeed, error) {
	res := LivedSeed{Rows: to, Added: to - from}
	var done atomic.Int64
	start := time.Now()
	stop := s.prog.Every(10*time.Second, func() string {
		n := done.Load()
		return fmt.Sprintf("lived: seeding %s → %s rows: %s written, %s rows/s", num(float64(from)), num(float64(to)),
			num(float64(n)), num(float64(n)/time.Since(start).Seconds()))
	})
	defer stop()
	for lo := from + 1; lo <= to; lo += livedChunk {
		hi := min(lo+livedChunk-1, to)
		if err := s.chunk(ctx, lo, hi); err != nil {
			return res, err
		}
		done.Add(hi - lo + 1)
	}
	stop()
	res.InsertSeconds = time.Since(start).Seconds()
	res.RowsPerSecond = float64(res.Added) / res.InsertSeconds
	if _, err := s.pool.Exec(ctx, `UPDATE notify.stream_head SET last_seq = $1,
		published_at = (SELECT published_at FROM notify.notifications WHERE seq = $1)`, to); err != nil {
		return res, fmt.Errorf("move stream head to %d: %w", to, err)
	}
	// The head is read from the table, so the update above changes
	// nothing and its trigger leaves the sequence where it was: move it
	// past the seeded seqs here, or the next publish reuses seq 1.
	if _, err := s.pool.Exec(ctx, `SELECT setval('notify.notification_seq', GREATEST($1::bigint,
		(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM notify.notification_seq), 1))`, to); err != nil {
		return res, fmt.Errorf("move the seq sequence past %d: %w", to, err)
	}
	if err := s.readState(ctx, to); err != nil {
		return res, err
	}
	start = time.Now()
	if _, err := s.pool.Exec(ctx, `VACUUM (ANALYZE) notify.notifications, notify.queue_items, notify.notification_roles,
		notify.read_cursors, notify.read_marks`); err != nil {
		return res, fmt.Errorf("vacuum after seeding %d rows: %w", to, err)
	}
	res.VacuumSeconds = time.Since(start).Seconds()
	err := s.pool.QueryRow(ctx, `SELECT pg_total_relation_size('notify.notifications'), pg_total_relation_size('notify.queue_items'),
		pg_total_relation_size('notify.notification_roles')`).Scan(&res.NotificationsBytes, &res.QueueItemsBytes, &res.RolesBytes)
	if err != nil {
		return res, fmt.Errorf("table sizes: %w", err)
	}
	return res, nil
}

// seed grows the table from seq from to seq to with e's nodes stopped: a
// running node's feed would read every seeded row to fan it out; started
// again, each begins at the new head, as after a deployment.
func (e *nodeEnv) seed(ctx context.Context, s *livedSeeder, from, to int64) (LivedSeed, error) {
	if err := e.eachNode(func(i int) error { return e.nodes[i].Stop(15 * time.Second) }); err != nil {
		return LivedSeed{}, err
	}
	seed, err := s.grow(ctx, from, to)
	if err != nil {
		return seed, err
	}
	e.run.prog.Printf("seeded %s published notifications: %s added in %.1f s (%s rows/s), vacuum and analyze %.1f s; notifications %.0f MiB with indexes",
		num(float64(to)), num(float64(seed.Added)), seed.InsertSeconds, num(seed.RowsPerSecond), seed.VacuumSeconds, mib(seed.NotificationsBytes))
	return seed, e.eachNode(func(i int) error { return e.restartNode(ctx, i) })
}

func (s *livedSeeder) chunk(ctx context.Context, lo, hi int64) error {
	seqs, users, roles := s.plan.in(lo, hi)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return fmt.Errorf("seed: triggers off: %w", err)
		}
		var n int64
		err := tx.QueryRow(ctx, livedSeedStatement, lo, hi, seqs, users, roles, s.first, s.step, livedUsers, livedRoles,
			livedMarkEvery).Scan(&n)
		if err != nil {
			return fmt.Errorf("seed seqs %d-%d: %w", lo, hi, err)
		}
		if n != hi-lo+1 {
			return fmt.Errorf("seed seqs %d-%d: wrote %d rows", lo, hi, n)
		}
		return nil
	})
}

// readState writes the read state of size n's dense user (livedReadState).
func (s *livedSeeder) readState(ctx context.Context, n int64) error {
	d := livedDenseUser(n)
	upTo, read, unread := livedReadState(s.plan.audience(d, n))
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO notify.read_cursors (user_id, read_up_to) VALUES ($1, $2)`, d.UserID, upTo); err != nil {
			return fmt.Errorf("read cursor of %s: %w", d.UserID, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO notify.read_marks (user_id, seq, is_read)
			SELECT $1, s, true FROM unnest($2::bigint[]) s UNION ALL SELECT $1, s, false FROM unnest($3::bigint[]) s`,
			d.UserID, read, unread)
		if err != nil {
			return fmt.Errorf("read marks of %s: %w", d.UserID, err)
		}
		return nil
	})
}
