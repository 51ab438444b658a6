package jobs

import (
	"context"

	"github.com/rewind/rewind/db"
)

// PlanPreview is what changing the plan from From to To does, for the "Edit plan" summary and the API: how many
// backups are kept, the storage that costs, and exactly which existing backups the new retention expires.
type PlanPreview struct {
	From, To db.Plan
	// Problem says why To is not allowed (a schedule beyond the tier); "" when it is.
	Problem string
	// Automated backups kept per production environment at steady state, and manual backups per production
	// environment, before and after.
	AutomatedFrom, AutomatedTo int
	ManualFrom, ManualTo       int
	// Environments is the number of environments that get automated backups.
	Environments int
	// ExtraBackups is the change in automated backups kept over all of them (negative for a downgrade).
	ExtraBackups int
	// BytesPerBackup is what one more backup adds to the repository: the average of what the catalog's complete
	// backups added (new bytes, as the engine measured them), leaving out each environment's first backup
	// (which stores everything; later ones add what changed) unless no other recorded it; or, when none
	// recorded it, their average size (an upper bound: dedup stores less). FromSizes says which.
	BytesPerBackup int64
	FromSizes      bool
	ExtraBytes     int64 // ExtraBackups × BytesPerBackup
	// Expiring are the existing backups the new retention expires at once.
	Expiring []Expiring
}

// Upgrade reports whether more automated backups are kept after the change.
func (p *PlanPreview) Upgrade() bool { return p.AutomatedTo > p.AutomatedFrom }

// PreviewPlan computes the change from the current plan to next for the environments envs, with the storage
// estimate and the backups that would expire from the catalog.
func (o *Operations) PreviewPlan(ctx context.Context, current, next db.Plan, envs []*db.Environment) (*PlanPreview, error) {
	p := NewPlanPreview(current, next, envs)
	backups, err := o.allBackups(ctx, nil)
	if err != nil {
		return nil, err
	}
	p.estimate(backups)
	if p.Problem == "" && next.Validate() == nil {
		if p.Expiring, err = o.PreviewRetention(ctx, next); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// NewPlanPreview is the part of a plan change that does not depend on existing backups: counts and the tier
// check.
func NewPlanPreview(current, next db.Plan, envs []*db.Environment) *PlanPreview {
	p := &PlanPreview{From: current, To: next,
		AutomatedFrom: PolicyFor(current.Schedule).Total(), AutomatedTo: PolicyFor(next.Schedule).Total(),
		ManualFrom: ManualQuota(current.Schedule, db.EnvProduction), ManualTo: ManualQuota(next.Schedule, db.EnvProduction),
	}
	if db.ScheduleRank(next.Schedule) >= 0 {
		p.Problem = db.ScheduleProblem(next.Tier, next.Schedule)
	}
	for _, e := range envs {
		if Scheduled(e) {
			p.Environments++
		}
	}
	p.ExtraBackups = (p.AutomatedTo - p.AutomatedFrom) * p.Environments
	return p
}

func (p *PlanPreview) estimate(backups []*db.Backup) {
	// The first backup of each environment that recorded new bytes (complete or since expired).
	first := map[string]*db.Backup{}
	for _, b := range backups {
		if f := first[b.Environment]; b.NewBytes > 0 && (f == nil || b.CreatedAt.Before(f.CreatedAt)) {
			first[b.Environment] = b
		}
	}
	var newSum, firstSum, sizeSum, newN, firstN, sizeN int64
	for _, b := range backups {
		if b.Status != db.BackupComplete {
			continue
		}
		switch {
		case b.NewBytes > 0 && first[b.Environment] == b:
			firstSum, firstN = firstSum+b.NewBytes, firstN+1
		case b.NewBytes > 0:
			newSum, newN = newSum+b.NewBytes, newN+1
		}
		sizeSum, sizeN = sizeSum+b.SizeBytes, sizeN+1
	}
	switch {
	case newN > 0:
		p.BytesPerBackup = newSum / newN
	case firstN > 0:
		p.BytesPerBackup = firstSum / firstN
	case sizeN > 0:
		p.BytesPerBackup, p.FromSizes = sizeSum/sizeN, true
	}
	p.ExtraBytes = int64(p.ExtraBackups) * p.BytesPerBackup
}
