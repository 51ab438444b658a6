package jobs

import (
	"fmt"
	"time"

	"github.com/rewind/rewind/db"
)

// Explanation is what an environment's Backups tab shows about the plan: the next automated backup, the policy
// in words, and for each backup why it is kept or when it will expire.
type Explanation struct {
	// Next is the next automated backup; zero when the environment gets none (NextNote says why).
	Next     time.Time
	NextNote string
	// Policy is the schedule's policy in words, for this environment.
	Policy  string
	Backups map[string]BackupRetention // by backup id
}

// BackupRetention is one backup's line: why it is kept, and when it expires if that is known.
type BackupRetention struct {
	Kept    bool
	Reason  string    // "daily, 21 November", "manual, 1 of 4", "expired: beyond ..."
	Expires time.Time // when retention will expire it, if no other backup is taken by hand; zero: not scheduled
	Note    string    // one line for the tab, e.g. "Kept: daily, 21 November · expires 27 November 04:00"
}

// Explain explains plan's retention for env's backups (any order) at now. It is pure: pass the catalog's plan
// and the environment's backups.
func Explain(plan db.Plan, env *db.Environment, backups []*db.Backup, now time.Time) Explanation {
	loc := plan.Location()
	p := PolicyFor(plan.Schedule)
	quota := ManualQuota(plan.Schedule, env.Type)
	ex := Explanation{Backups: map[string]BackupRetention{}}
	times := "daily at 04:00"
	if plan.Schedule == db.SchedulePremium {
		times = "every 6 hours from 04:00"
	}
	if Scheduled(env) {
		ex.Next = NextRun(plan.Schedule, loc, now)
		ex.Policy = fmt.Sprintf("%s schedule: automated live backups %s (%s), keeping %s; up to %d manual backups; "+
			"pre-restore backups for 7 days.", title(plan.Schedule), times, plan.Timezone, p.Words(), quota)
	} else {
		ex.NextNote = "Automated backups run for active production environments only."
		if env.Type == db.EnvProduction && env.Status != db.StatusActive {
			ex.NextNote = "No automated backups while the environment is inactive."
		} else if env.Type == db.EnvProduction {
			ex.NextNote = "No automated backups until the environment has services."
		}
		ex.Policy = fmt.Sprintf("%s schedule: up to %d manual backups; pre-restore backups for 7 days.",
			title(plan.Schedule), quota)
	}
	verdicts := Retain(backups, plan.Schedule, env.Type, loc, now)
	var projected map[string]time.Time
	if Scheduled(env) {
		projected = projectExpiry(backups, verdicts, plan.Schedule, loc, now)
	}
	oldestManual := ""
	manualKept := 0
	for _, b := range backups {
		if v, ok := verdicts[b.ID]; ok && v.Keep && b.Kind == db.BackupManual {
			manualKept++
			if oldestManual == "" || b.CreatedAt.Before(backupByID(backups, oldestManual).CreatedAt) {
				oldestManual = b.ID
			}
		}
	}
	for _, b := range backups {
		v, ok := verdicts[b.ID]
		var r BackupRetention
		switch {
		case b.Status == db.BackupExpired:
			r = BackupRetention{Reason: "expired by retention", Note: "Expired by retention"}
		case !ok:
			r = BackupRetention{Kept: true, Reason: b.Status, Note: ""}
		case !v.Keep:
			r = BackupRetention{Reason: v.Reason, Expires: now, Note: "Expires at the next retention run: " + v.Reason}
		default:
			r = BackupRetention{Kept: true, Reason: v.Reason, Expires: v.Expires, Note: "Kept: " + v.Reason}
			if t, ok := projected[b.ID]; ok {
				r.Expires = t
			}
			if !r.Expires.IsZero() {
				r.Note += " · expires " + fmtWhen(r.Expires.In(loc), now.In(loc))
			} else if b.Kind == db.BackupManual && b.ID == oldestManual && manualKept >= quota {
				r.Note += " · the next manual backup replaces it"
			} else if b.Kind == db.BackupAutomated {
				r.Note += " · kept while no newer automated backups are taken"
			}
		}
		ex.Backups[b.ID] = r
	}
	return ex
}

// projectExpiry simulates the schedule's future slots and returns, for each automated backup kept now, the slot
// whose backup makes retention expire it.
func projectExpiry(backups []*db.Backup, verdicts map[string]Verdict, schedule string, loc *time.Location, now time.Time) map[string]time.Time {
	var kept []*db.Backup
	for _, b := range backups {
		if v, ok := verdicts[b.ID]; ok && v.Keep && b.Kind == db.BackupAutomated {
			kept = append(kept, b)
		}
	}
	newestFirst(kept)
	// Newest first: local times, and the real backup's id ("" for a simulated one).
	rules := PolicyFor(schedule).Rules
	local, ids := make([]keys, len(kept)), make([]string, len(kept))
	for i, b := range kept {
		local[i], ids[i] = keysOf(b.CreatedAt.In(loc), rules), b.ID
	}
	out := map[string]time.Time{}
	t := now
	// Thirteen months of slots is enough for every rule (12 monthly + 3 weekly at most).
	var by []int
	for i := 0; i < 4*400 && len(out) < len(kept); i++ {
		t = NextRun(schedule, loc, t)
		// The new slot's backup is the newest: shift the others down (no allocation once the slices are grown).
		local, ids = append(local, keys{}), append(ids, "")
		copy(local[1:], local)
		copy(ids[1:], ids)
		local[0], ids[0] = keysOf(t.In(loc), rules), ""
		by = keptBy(local, rules, by)
		n := 0
		for j := range local {
			if by[j] >= 0 {
				local[n], ids[n] = local[j], ids[j]
				n++
			} else if ids[j] != "" {
				out[ids[j]] = t
			}
		}
		local, ids = local[:n], ids[:n]
	}
	return out
}

func backupByID(bs []*db.Backup, id string) *db.Backup {
	for _, b := range bs {
		if b.ID == id {
			return b
		}
	}
	return nil
}

func fmtWhen(t, now time.Time) string {
	if t.Year() != now.Year() {
		return t.Format("2 January 2006 15:04")
	}
	return t.Format("2 January 15:04")
}

func title(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
