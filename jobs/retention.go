package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rewind/rewind/db"
)

// Retention follows the platform docs' schedules (DESIGN.md, "Plans"):
//
//	basic:    2 daily
//	advanced: 6 daily, 3 weekly, 12 monthly                      (21)
//	premium:  3 in the last 24 hours (6-hourly), 30 daily, 11 monthly (44)
//
// The rules cascade from fine to coarse: each rule keeps the newest backup of each of its N most recent periods,
// among the backups that no finer rule kept. With one automated backup per slot, exactly 2 / 21 / 44 automated
// backups exist at steady state. Periods (days, ISO weeks starting on Monday, months) are counted in the
// project's timezone. Manual backups are kept up to the quota (2, or 4 on advanced and premium; 2 for
// non-production environments), pre-restore backups for 7 days, outside the quotas.

// Rule keeps the newest backup of each of its Count most recent periods.
type Rule struct {
	Name  string // "6-hourly", "daily", "weekly", "monthly"
	Count int
}

// Policy is what a schedule keeps.
type Policy struct {
	Schedule string
	Rules    []Rule // fine to coarse
}

// PolicyFor returns the retention policy of a schedule (basic for an unknown one).
func PolicyFor(schedule string) Policy {
	switch schedule {
	case db.ScheduleAdvanced:
		return Policy{Schedule: schedule, Rules: []Rule{{"daily", 6}, {"weekly", 3}, {"monthly", 12}}}
	case db.SchedulePremium:
		return Policy{Schedule: schedule, Rules: []Rule{{"6-hourly", 3}, {"daily", 30}, {"monthly", 11}}}
	}
	return Policy{Schedule: db.ScheduleBasic, Rules: []Rule{{"daily", 2}}}
}

// Total is the number of automated backups kept at steady state.
func (p Policy) Total() int {
	n := 0
	for _, r := range p.Rules {
		n += r.Count
	}
	return n
}

// Words describes the automated backups kept, as the platform docs do: "6 daily, 3 weekly and 12 monthly".
func (p Policy) Words() string {
	parts := make([]string, 0, len(p.Rules))
	for _, r := range p.Rules {
		if r.Name == "6-hourly" {
			parts = append(parts, fmt.Sprintf("%d in the last 24 hours (every 6 hours)", r.Count))
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s", r.Count, r.Name))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// ManualQuota is how many manual backups an environment keeps: 2 on the basic schedule and for non-production
// environments, 4 otherwise.
func ManualQuota(schedule, envType string) int {
	if envType != db.EnvProduction || schedule == db.ScheduleBasic || db.ScheduleRank(schedule) < 0 {
		return 2
	}
	return 4
}

// PreRestoreKeep is how long a pre-restore backup (the undo of a restore) is kept.
const PreRestoreKeep = preRestoreKeepFor

// Verdict is what retention decides for one backup.
type Verdict struct {
	Keep bool
	// Reason says why, in words: "daily, 21 November", "monthly, November", "manual, 2 of 4",
	// "beyond the basic schedule's 2 daily".
	Reason string
	// Expires is when a backup kept for a fixed time stops being kept (pre-restore backups); zero otherwise.
	Expires time.Time
}

// Retain decides, for the backups of one environment, which complete backups are kept and which expire under
// schedule at now; loc is the project's timezone. Backups that are not complete are not in the result: retention
// never touches a backup in progress or a failed one.
func Retain(backups []*db.Backup, schedule, envType string, loc *time.Location, now time.Time) map[string]Verdict {
	out := map[string]Verdict{}
	var automated, manual []*db.Backup
	for _, b := range backups {
		if b.Status != db.BackupComplete {
			continue
		}
		switch b.Kind {
		case db.BackupAutomated:
			automated = append(automated, b)
		case db.BackupManual:
			manual = append(manual, b)
		case db.BackupPreRestore:
			until := b.CreatedAt.Add(PreRestoreKeep)
			if now.Before(until) {
				out[b.ID] = Verdict{Keep: true, Reason: "pre-restore (undo of a restore), kept 7 days", Expires: until}
			} else {
				out[b.ID] = Verdict{Reason: "pre-restore backups are kept 7 days"}
			}
		default:
			out[b.ID] = Verdict{Keep: true, Reason: b.Kind}
		}
	}
	p := PolicyFor(schedule)
	for id, v := range cascade(automated, p, loc, now) {
		out[id] = v
	}
	newestFirst(manual)
	quota := ManualQuota(schedule, envType)
	for i, b := range manual {
		if i < quota {
			out[b.ID] = Verdict{Keep: true, Reason: fmt.Sprintf("manual, %d of %d", i+1, quota)}
		} else {
			out[b.ID] = Verdict{Reason: fmt.Sprintf("beyond the quota of %d manual backups", quota)}
		}
	}
	return out
}

// cascade applies p's rules, fine to coarse, to automated backups.
func cascade(automated []*db.Backup, p Policy, loc *time.Location, now time.Time) map[string]Verdict {
	out := make(map[string]Verdict, len(automated))
	sorted := append([]*db.Backup(nil), automated...)
	newestFirst(sorted)
	local := make([]time.Time, len(sorted))
	for i, b := range sorted {
		local[i] = b.CreatedAt.In(loc)
	}
	beyond := fmt.Sprintf("beyond the %s schedule's %s", p.Schedule, p.Words())
	for i, ri := range keptBy(periodKeys(local, p.Rules), p.Rules, nil) {
		if ri < 0 {
			out[sorted[i].ID] = Verdict{Reason: beyond}
			continue
		}
		r := p.Rules[ri]
		_, label := period(r.Name, local[i], now.In(loc))
		if r.Name != "6-hourly" {
			label = r.Name + ", " + label
		}
		out[sorted[i].ID] = Verdict{Keep: true, Reason: label}
	}
	return out
}

// keys are a backup's period numbers under each rule of a policy (at most 3 rules).
type keys [3]int64

func periodKeys(local []time.Time, rules []Rule) []keys {
	out := make([]keys, len(local))
	for i, t := range local {
		out[i] = keysOf(t, rules)
	}
	return out
}

func keysOf(t time.Time, rules []Rule) keys {
	var k keys
	for ri, r := range rules {
		k[ri] = periodKey(r.Name, t)
	}
	return k
}

// keptBy is the cascade itself, over backups sorted newest first (their period keys): for each, the index of the
// rule that keeps it, or -1 when none does. by is reused when it is large enough.
func keptBy(local []keys, rules []Rule, by []int) []int {
	if cap(by) < len(local) {
		by = make([]int, len(local))
	}
	by = by[:len(local)]
	for i := range by {
		by[i] = -1
	}
	seen := make([]int64, 0, 32)
	for ri, r := range rules {
		seen = seen[:0]
	next:
		for i, t := range local {
			if len(seen) == r.Count {
				break
			}
			if by[i] >= 0 {
				continue
			}
			k := t[ri]
			for _, s := range seen {
				if s == k {
					continue next
				}
			}
			seen = append(seen, k)
			by[i] = ri
		}
	}
	return by
}

// periodKey numbers t's period under rule (t in the project's timezone).
func periodKey(rule string, t time.Time) int64 {
	day := func(t time.Time) int64 {
		y, m, d := t.Date()
		return int64(y)*10000 + int64(m)*100 + int64(d)
	}
	switch rule {
	case "6-hourly":
		return day(t)*10 + int64(t.Hour()/6)
	case "weekly":
		return day(t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)))
	case "monthly":
		y, m, _ := t.Date()
		return int64(y)*100 + int64(m)
	}
	return day(t)
}

// period returns the key of t's period under rule and its label in words.
func period(rule string, t, now time.Time) (key, label string) {
	year := func(s string, y int) string {
		if y != now.Year() {
			return fmt.Sprintf("%s %d", s, y)
		}
		return s
	}
	switch rule {
	case "6-hourly":
		return fmt.Sprintf("%s/%d", t.Format("2006-01-02"), t.Hour()/6),
			"last 24 hours, " + year(t.Format("2 January"), t.Year()) + t.Format(" 15:04")
	case "weekly":
		monday := t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7))
		return monday.Format("2006-01-02"), year("week of "+monday.Format("2 January"), monday.Year())
	case "monthly":
		return t.Format("2006-01"), year(t.Format("January"), t.Year())
	}
	return t.Format("2006-01-02"), year(t.Format("2 January"), t.Year())
}

func newestFirst(bs []*db.Backup) {
	sort.SliceStable(bs, func(i, j int) bool {
		if !bs[i].CreatedAt.Equal(bs[j].CreatedAt) {
			return bs[i].CreatedAt.After(bs[j].CreatedAt)
		}
		return bs[i].ID > bs[j].ID
	})
}

// checkManualQuota refuses a manual backup of env beyond its quota unless replacing the oldest is confirmed;
// retention then expires the oldest once the new backup completes. It returns the id of the backup a confirmed
// backup replaces ("" when env is below its quota).
func (o *Operations) checkManualQuota(ctx context.Context, env *db.Environment, replace bool) (string, error) {
	plan, err := o.Catalog.FindPlan(ctx)
	if err != nil {
		return "", err
	}
	quota := ManualQuota(plan.Schedule, env.Type)
	manual, name := db.BackupManual, env.Name
	backups, _, err := o.Catalog.FindBackups(ctx, db.BackupFilter{Environment: &name, Kind: &manual, Limit: 1000})
	if err != nil {
		return "", err
	}
	var oldest *db.Backup
	n := 0
	for _, b := range backups { // newest first
		switch b.Status {
		case db.BackupPending, db.BackupRunning:
			n++
		case db.BackupComplete:
			n++
			oldest = b
		}
	}
	if n < quota || oldest == nil {
		return "", nil
	}
	if replace {
		return oldest.ID, nil
	}
	return "", &QuotaError{Quota: quota, Replace: oldest}
}
