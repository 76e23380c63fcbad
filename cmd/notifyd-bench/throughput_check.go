package main

import "time"

// verifyThroughput checks what the stream delivered against what was
// inserted: every inserted notification exactly once, nothing else, in
// strictly increasing seq order (across reconnects too, since a resumed
// stream must continue where the last one stopped). The end of the run is
// the receipt of the last notification that completed the set.
func verifyThroughput(cfg config, ids [][]string, ds []delivery, start, insertEnd time.Time) *ThroughputResult {
	res := &ThroughputResult{Statements: len(ids), Received: len(ds), TargetRate: 20_000}
	expected := make(map[string]bool, cfg.Total) // id -> seen
	for _, batch := range ids {
		for _, id := range batch {
			expected[id] = false
		}
	}
	res.Notifications = len(expected)
	var end time.Time
	prev := int64(0)
	seen := 0
	for _, d := range ds {
		if d.Seq <= prev {
			res.OutOfOrder++
		}
		prev = max(prev, d.Seq)
		was, ok := expected[d.ID]
		switch {
		case !ok:
			res.Unexpected++
		case was:
			res.Duplicates++
		default:
			expected[d.ID] = true
			seen++
			end = d.At
		}
	}
	res.Missing = len(expected) - seen
	res.InsertSeconds = insertEnd.Sub(start).Seconds()
	if res.InsertSeconds > 0 {
		res.InsertRate = float64(res.Notifications) / res.InsertSeconds
	}
	if !end.IsZero() {
		res.EndToEndSecs = end.Sub(start).Seconds()
		res.Rate = float64(seen) / res.EndToEndSecs
	}
	res.Verified = res.Notifications == cfg.Total && res.Missing == 0 && res.Duplicates == 0 &&
		res.Unexpected == 0 && res.OutOfOrder == 0
	res.TargetMet = res.Verified && res.Rate >= res.TargetRate
	return res
}
