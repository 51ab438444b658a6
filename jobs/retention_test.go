package jobs_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rewind/rewind/db"
	"github.com/rewind/rewind/jobs"
)

// sim is a project simulated slot by slot with the scheduler's rules: wake at each next slot, run the latest due
// slot once if it has not run, then apply retention. Nothing runs while the server is down; at restart the missed
// slot runs once.
type sim struct {
	schedule string
	loc      *time.Location
	backups  []*db.Backup // kept
	created  []time.Time  // every automated backup ever taken
	n        int
}

func (s *sim) take(now time.Time) {
	s.n++
	s.backups = append(s.backups, &db.Backup{ID: fmt.Sprintf("%020x", s.n), Environment: "main",
		Kind: db.BackupAutomated, Status: db.BackupComplete, Live: true, CreatedAt: now})
	s.created = append(s.created, now)
	s.retain(now)
}

func (s *sim) retain(now time.Time) {
	v := jobs.Retain(s.backups, s.schedule, db.EnvProduction, s.loc, now)
	kept := s.backups[:0]
	for _, b := range s.backups {
		if v[b.ID].Keep {
			kept = append(kept, b)
		}
	}
	s.backups = kept
}

// run simulates from start (the first start: it records the slot and takes nothing) to end, with the server down
// in [downFrom, downTo). check is called after every wake.
func (s *sim) run(start, end, downFrom, downTo time.Time, check func(now time.Time)) {
	last := jobs.LastSlot(s.schedule, s.loc, start)
	now := start
	for {
		now = jobs.NextRun(s.schedule, s.loc, now)
		if !downFrom.IsZero() && !now.Before(downFrom) && now.Before(downTo) {
			now = downTo // restart
		}
		if now.After(end) {
			return
		}
		if due := jobs.LastSlot(s.schedule, s.loc, now); due.After(last) {
			last = due
			s.take(now)
		}
		if check != nil {
			check(now)
		}
	}
}

func (s *sim) kept() []string {
	out := make([]string, 0, len(s.backups))
	for _, b := range s.backups {
		out = append(out, b.CreatedAt.In(s.loc).Format("2006-01-02 15:04"))
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// TestRetentionSimulatedYear runs each schedule over fifteen months (October 2027 to the end of 2028: DST changes
// in both directions, the leap day 2028-02-29, the server down for three days over Christmas) in Europe/Berlin
// and America/New_York, and checks the exact set kept at the end, the steady-state counts 2 / 21 / 44 every day
// of the last two months, and that every local day got exactly one backup per slot.
func TestRetentionSimulatedYear(t *testing.T) {
	daily := func(days ...string) []string {
		out := []string{}
		for _, d := range days {
			out = append(out, d+" 04:00")
		}
		return out
	}
	// Premium keeps the 22:00 backup of each earlier day.
	lastOfDay := func(from, to string) []string { // from > to, inclusive
		var out []string
		f, _ := time.Parse("2006-01-02", from)
		tt, _ := time.Parse("2006-01-02", to)
		for d := f; !d.Before(tt); d = d.AddDate(0, 0, -1) {
			out = append(out, d.Format("2006-01-02")+" 22:00")
		}
		return out
	}
	join := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		schedule string
		steady   int
		perDay   int
		want     []string
	}{
		{db.ScheduleBasic, 2, 1, daily("2028-12-31", "2028-12-30")},
		{db.ScheduleAdvanced, 21, 1, join(
			// 6 daily: the restart after the outage took 26 December's backup at 11:00.
			daily("2028-12-31", "2028-12-30", "2028-12-29", "2028-12-28", "2028-12-27"), []string{"2028-12-26 11:00"},
			// 3 weekly, newest of each ISO week among the rest: the week of 25 December has nothing left.
			daily("2028-12-22"),
			// 12 monthly, newest of each month among the rest: December's is the 21st, which earlier runs kept
			// while the 9th had already gone; the leap day is February's.
			daily("2028-12-21"),
			daily("2028-12-17", "2028-12-10"), // weekly
			daily("2028-11-30", "2028-10-31", "2028-09-30", "2028-08-31", "2028-07-31", "2028-06-30",
				"2028-05-31", "2028-04-30", "2028-03-31", "2028-02-29", "2028-01-31"),
		)},
		{db.SchedulePremium, 44, 4, join(
			// 3 in the last 24 hours.
			[]string{"2028-12-31 22:00", "2028-12-31 16:00", "2028-12-31 10:00"},
			// 30 daily: the rest of today, then the newest of each earlier day that has backups (none 23–25
			// December); 16:00 on the 30th is December's monthly.
			[]string{"2028-12-31 04:00", "2028-12-30 22:00", "2028-12-30 16:00"}, lastOfDay("2028-12-29", "2028-12-26"),
			lastOfDay("2028-12-22", "2028-11-30"),
			// 11 monthly among the rest: December (above), November, then October back to the leap day.
			[]string{"2028-11-30 16:00", "2028-11-29 22:00", "2028-10-31 22:00", "2028-09-30 22:00", "2028-08-31 22:00",
				"2028-07-31 22:00", "2028-06-30 22:00", "2028-05-31 22:00", "2028-04-30 22:00", "2028-03-31 22:00",
				"2028-02-29 22:00"},
		)},
	}
	for _, tz := range []string{"Europe/Berlin", "America/New_York"} {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(tz+"/"+tt.schedule, func(t *testing.T) {
				s := &sim{schedule: tt.schedule, loc: loc}
				start := time.Date(2027, 10, 1, 12, 0, 0, 0, loc)
				end := time.Date(2028, 12, 31, 23, 0, 0, 0, loc)
				downFrom := time.Date(2028, 12, 23, 2, 0, 0, 0, loc)
				downTo := time.Date(2028, 12, 26, 11, 0, 0, 0, loc)
				s.run(start, end, downFrom, downTo, func(now time.Time) {
					if now.After(time.Date(2028, 11, 1, 0, 0, 0, 0, loc)) {
						if got := len(s.backups); got != tt.steady {
							t.Fatalf("%s: %d automated backups kept, want %d:\n%s", now, got, tt.steady, strings.Join(s.kept(), "\n"))
						}
					}
				})
				if got, want := strings.Join(s.kept(), "\n"), strings.Join(tt.want, "\n"); got != want {
					t.Fatalf("kept at the end:\n%s\nwant:\n%s", got, want)
				}
				// Every local day got exactly perDay backups, except the outage: none on 23–25 December and one
				// at the restart on the 26th (then the slots after it).
				perDay := map[string]int{}
				for _, c := range s.created {
					perDay[c.In(loc).Format("2006-01-02")]++
				}
				for d := time.Date(2027, 10, 2, 0, 0, 0, 0, loc); d.Before(end); d = d.AddDate(0, 0, 1) {
					day := d.Format("2006-01-02")
					want := tt.perDay
					switch {
					case day >= "2028-12-23" && day <= "2028-12-25":
						want = 0
					case day == "2028-12-26":
						want = 1 + tt.perDay - 2 // restart at 11:00, then 16:00 and 22:00 on premium
						if tt.perDay == 1 {
							want = 1
						}
					}
					if got := perDay[day]; got != want {
						t.Errorf("%s: %d backups taken, want %d", day, got, want)
					}
				}
				for _, c := range s.created {
					if l := c.In(loc); l.Minute() != 0 || (l.Hour()-4)%6 != 0 && !l.Equal(downTo) {
						t.Errorf("backup at %s, not on a slot", l)
					}
				}
			})
		}
	}
}

func TestSlotsAcrossDST(t *testing.T) {
	tests := []struct {
		tz, schedule, after, want string
	}{
		// Berlin springs forward on 26 March 2028 (02:00 → 03:00) and falls back on 29 October 2028.
		{"Europe/Berlin", db.ScheduleBasic, "2028-03-25 04:00", "2028-03-26 04:00 +0200"},
		{"Europe/Berlin", db.ScheduleBasic, "2028-03-26 04:00", "2028-03-27 04:00 +0200"},
		{"Europe/Berlin", db.ScheduleBasic, "2028-10-28 04:00", "2028-10-29 04:00 +0100"},
		{"Europe/Berlin", db.SchedulePremium, "2028-10-28 22:00", "2028-10-29 04:00 +0100"},
		{"Europe/Berlin", db.SchedulePremium, "2028-10-29 04:00", "2028-10-29 10:00 +0100"},
		// New York: 12 March and 5 November 2028.
		{"America/New_York", db.ScheduleAdvanced, "2028-03-11 04:00", "2028-03-12 04:00 -0400"},
		{"America/New_York", db.ScheduleAdvanced, "2028-11-04 04:00", "2028-11-05 04:00 -0500"},
		{"America/New_York", db.SchedulePremium, "2028-11-04 22:00", "2028-11-05 04:00 -0500"},
		// Leap day.
		{"UTC", db.ScheduleBasic, "2028-02-28 04:00", "2028-02-29 04:00 +0000"},
		{"UTC", db.ScheduleBasic, "2028-02-29 03:59", "2028-02-29 04:00 +0000"},
	}
	for _, tt := range tests {
		loc, _ := time.LoadLocation(tt.tz)
		after, _ := time.ParseInLocation("2006-01-02 15:04", tt.after, loc)
		if got := jobs.NextRun(tt.schedule, loc, after).Format("2006-01-02 15:04 -0700"); got != tt.want {
			t.Errorf("NextRun(%s, %s, %s) = %s, want %s", tt.schedule, tt.tz, tt.after, got, tt.want)
		}
		if got := jobs.LastSlot(tt.schedule, loc, after).Format("2006-01-02 15:04"); !strings.HasPrefix(tt.after, got[:10]) && tt.after[11:] >= "04:00" {
			t.Errorf("LastSlot(%s) = %s", tt.after, got)
		}
	}
}

func TestRetainKinds(t *testing.T) {
	now := time.Date(2028, 11, 21, 12, 0, 0, 0, time.UTC)
	b := func(id, kind, status string, age time.Duration) *db.Backup {
		return &db.Backup{ID: id, Kind: kind, Status: status, CreatedAt: now.Add(-age)}
	}
	backups := []*db.Backup{
		b("m1", db.BackupManual, db.BackupComplete, 1*time.Hour),
		b("m2", db.BackupManual, db.BackupComplete, 2*time.Hour),
		b("m3", db.BackupManual, db.BackupComplete, 3*time.Hour),
		b("m4", db.BackupManual, db.BackupFailed, 4*time.Hour),
		b("m5", db.BackupManual, db.BackupPending, 0),
		b("p1", db.BackupPreRestore, db.BackupComplete, 6*24*time.Hour),
		b("p2", db.BackupPreRestore, db.BackupComplete, 8*24*time.Hour),
		b("a1", db.BackupAutomated, db.BackupComplete, 8*time.Hour),
		b("a2", db.BackupAutomated, db.BackupComplete, 32*time.Hour),
		b("a3", db.BackupAutomated, db.BackupComplete, 56*time.Hour),
	}
	tests := []struct {
		schedule, envType string
		want              map[string]string // id → "keep: reason" / "expire: reason"
	}{
		{db.ScheduleBasic, db.EnvProduction, map[string]string{
			"m1": "keep: manual, 1 of 2", "m2": "keep: manual, 2 of 2", "m3": "expire: beyond the quota of 2 manual backups",
			"p1": "keep: pre-restore (undo of a restore), kept 7 days", "p2": "expire: pre-restore backups are kept 7 days",
			"a1": "keep: daily, 21 November", "a2": "keep: daily, 20 November",
			"a3": "expire: beyond the basic schedule's 2 daily",
		}},
		{db.ScheduleAdvanced, db.EnvProduction, map[string]string{
			"m1": "keep: manual, 1 of 4", "m2": "keep: manual, 2 of 4", "m3": "keep: manual, 3 of 4",
			"p1": "keep: pre-restore (undo of a restore), kept 7 days", "p2": "expire: pre-restore backups are kept 7 days",
			"a1": "keep: daily, 21 November", "a2": "keep: daily, 20 November", "a3": "keep: daily, 19 November",
		}},
		{db.SchedulePremium, db.EnvStaging, map[string]string{
			"m1": "keep: manual, 1 of 2", "m2": "keep: manual, 2 of 2", "m3": "expire: beyond the quota of 2 manual backups",
			"p1": "keep: pre-restore (undo of a restore), kept 7 days", "p2": "expire: pre-restore backups are kept 7 days",
			"a1": "keep: last 24 hours, 21 November 04:00", "a2": "keep: last 24 hours, 20 November 04:00",
			"a3": "keep: last 24 hours, 19 November 04:00",
		}},
	}
	for _, tt := range tests {
		got := map[string]string{}
		for id, v := range jobs.Retain(backups, tt.schedule, tt.envType, time.UTC, now) {
			word := "expire"
			if v.Keep {
				word = "keep"
			}
			got[id] = word + ": " + v.Reason
		}
		for id, want := range tt.want {
			if got[id] != want {
				t.Errorf("%s/%s: %s = %q, want %q", tt.schedule, tt.envType, id, got[id], want)
			}
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: verdicts for %d backups, want %d (only complete ones): %v", tt.schedule, len(got), len(tt.want), got)
		}
	}
}

func TestPolicyWords(t *testing.T) {
	for _, tt := range []struct {
		schedule, words string
		total, manual   int
	}{
		{db.ScheduleBasic, "2 daily", 2, 2},
		{db.ScheduleAdvanced, "6 daily, 3 weekly and 12 monthly", 21, 4},
		{db.SchedulePremium, "3 in the last 24 hours (every 6 hours), 30 daily and 11 monthly", 44, 4},
	} {
		p := jobs.PolicyFor(tt.schedule)
		if p.Words() != tt.words || p.Total() != tt.total || jobs.ManualQuota(tt.schedule, db.EnvProduction) != tt.manual {
			t.Errorf("%s: %q %d %d", tt.schedule, p.Words(), p.Total(), jobs.ManualQuota(tt.schedule, db.EnvProduction))
		}
		if jobs.ManualQuota(tt.schedule, db.EnvDevelopment) != 2 {
			t.Errorf("%s: non-production quota is not 2", tt.schedule)
		}
	}
}
