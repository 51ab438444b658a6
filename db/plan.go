package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // IANA timezones even on a machine without zoneinfo (a scratch container)
)

// Tiers and backup schedules of the project's plan (DESIGN.md, "Plans").
const (
	TierProfessional = "professional"
	TierEnterprise   = "enterprise"
	TierElite        = "elite"

	ScheduleBasic    = "basic"
	ScheduleAdvanced = "advanced"
	SchedulePremium  = "premium"
)

// Tiers lists the tiers, smallest first.
func Tiers() []string { return []string{TierProfessional, TierEnterprise, TierElite} }

// Schedules lists the backup schedules, smallest first.
func Schedules() []string { return []string{ScheduleBasic, ScheduleAdvanced, SchedulePremium} }

// ScheduleRank orders schedules: basic 0, advanced 1, premium 2, unknown -1.
func ScheduleRank(s string) int {
	for i, v := range Schedules() {
		if v == s {
			return i
		}
	}
	return -1
}

// DefaultSchedule is the schedule a tier comes with.
func DefaultSchedule(tier string) string {
	if tier == TierProfessional {
		return ScheduleBasic
	}
	return ScheduleAdvanced
}

// MaxSchedule is the highest schedule a tier may upgrade to.
func MaxSchedule(tier string) string {
	if tier == TierProfessional {
		return ScheduleAdvanced
	}
	return SchedulePremium
}

// Plan is the project's name, timezone and plan (tier + backup schedule). Automated backups run at 04:00 in
// Timezone, and retention counts days, weeks and months there.
type Plan struct {
	Name     string `json:"name"`
	Timezone string `json:"timezone"` // IANA name, e.g. "Europe/Berlin"
	Tier     string `json:"tier"`
	Schedule string `json:"schedule"`
}

// DefaultPlan is the plan of a new project: professional tier, basic schedule, UTC.
func DefaultPlan() Plan {
	return Plan{Name: "Rewind", Timezone: "UTC", Tier: TierProfessional, Schedule: ScheduleBasic}
}

// Location is the plan's timezone (UTC when it does not load).
func (p Plan) Location() *time.Location {
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil || p.Timezone == "" {
		return time.UTC
	}
	return loc
}

// ScheduleProblem says why tier cannot have schedule, or "" when it can. The message names the tier that allows
// it.
func ScheduleProblem(tier, schedule string) string {
	if ScheduleRank(schedule) <= ScheduleRank(MaxSchedule(tier)) {
		return ""
	}
	return fmt.Sprintf("the %s schedule needs the enterprise or elite tier; the %s tier allows up to %s: "+
		"change the tier first", schedule, tier, MaxSchedule(tier))
}

// Validate checks every field and returns a *ValidationError naming each bad one.
func (p Plan) Validate() error {
	ve := &ValidationError{}
	switch name := strings.TrimSpace(p.Name); {
	case name == "":
		ve.add("name", "project name is required")
	case len(name) > 100 || hasControl(name):
		ve.add("name", "project name must be at most 100 characters, without control characters")
	}
	if _, err := time.LoadLocation(p.Timezone); err != nil || p.Timezone == "" || strings.EqualFold(p.Timezone, "local") {
		ve.add("timezone", fmt.Sprintf("unknown timezone %q: use an IANA name such as Europe/Berlin or UTC", p.Timezone))
	}
	tierOK := contains(Tiers(), p.Tier)
	if !tierOK {
		ve.add("tier", fmt.Sprintf("unknown tier %q: pick professional, enterprise or elite", p.Tier))
	}
	switch {
	case ScheduleRank(p.Schedule) < 0:
		ve.add("schedule", fmt.Sprintf("unknown schedule %q: pick basic, advanced or premium", p.Schedule))
	case tierOK:
		if msg := ScheduleProblem(p.Tier, p.Schedule); msg != "" {
			ve.add("schedule", msg)
		}
	}
	return ve.err()
}

const planKey = "project.plan"

// FindPlan returns the project's plan, DefaultPlan when none was saved.
func (db *DB) FindPlan(ctx context.Context) (*Plan, error) {
	p := DefaultPlan()
	v, err := db.Setting(ctx, planKey)
	if errors.Is(err, ErrNotFound) {
		return &p, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return &p, nil
}

// UpdatePlan validates and saves the plan.
func (db *DB) UpdatePlan(ctx context.Context, p Plan) error {
	p.Name = strings.TrimSpace(p.Name)
	if err := p.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return db.SetSetting(ctx, planKey, string(b))
}
