package main

import (
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
