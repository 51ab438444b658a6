package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rewind/rewind/db"
)

func TestPlanDefaultsAndSave(t *testing.T) {
	ctx := context.Background()
	c := MustOpenDB(t)
	p, err := c.FindPlan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *p, db.DefaultPlan(); got != want {
		t.Fatalf("FindPlan() on a new catalog = %+v, want %+v", got, want)
	}
	if got, want := p.Tier+"/"+p.Schedule+"/"+p.Timezone, "professional/basic/UTC"; got != want {
		t.Fatalf("default plan = %s, want %s", got, want)
	}
	want := db.Plan{Name: "Shop", Timezone: "Europe/Berlin", Tier: db.TierEnterprise, Schedule: db.SchedulePremium}
	if err := c.UpdatePlan(ctx, want); err != nil {
		t.Fatal(err)
	}
	if p, _ = c.FindPlan(ctx); *p != want {
		t.Fatalf("FindPlan() = %+v, want %+v", *p, want)
	}
	if got := p.Location().String(); got != "Europe/Berlin" {
		t.Fatalf("Location() = %s", got)
	}
}

func TestPlanValidation(t *testing.T) {
	ok := db.Plan{Name: "Shop", Timezone: "UTC", Tier: db.TierProfessional, Schedule: db.ScheduleBasic}
	tests := []struct {
		name  string
		edit  func(p *db.Plan)
		field string
		msg   string // part of the message
	}{
		{"valid", func(p *db.Plan) {}, "", ""},
		{"professional may upgrade to advanced", func(p *db.Plan) { p.Schedule = db.ScheduleAdvanced }, "", ""},
		{"professional may not have premium", func(p *db.Plan) { p.Schedule = db.SchedulePremium }, "schedule", "needs the enterprise or elite tier"},
		{"enterprise premium", func(p *db.Plan) { p.Tier, p.Schedule = db.TierEnterprise, db.SchedulePremium }, "", ""},
		{"elite premium", func(p *db.Plan) { p.Tier, p.Schedule = db.TierElite, db.SchedulePremium }, "", ""},
		{"elite may downgrade to basic", func(p *db.Plan) { p.Tier, p.Schedule = db.TierElite, db.ScheduleBasic }, "", ""},
		{"unknown tier", func(p *db.Plan) { p.Tier = "gold" }, "tier", `unknown tier "gold"`},
		{"unknown schedule", func(p *db.Plan) { p.Schedule = "hourly" }, "schedule", `unknown schedule "hourly"`},
		{"unknown timezone", func(p *db.Plan) { p.Timezone = "Mars/Olympus" }, "timezone", "IANA"},
		{"empty timezone", func(p *db.Plan) { p.Timezone = "" }, "timezone", "IANA"},
		{"local timezone", func(p *db.Plan) { p.Timezone = "Local" }, "timezone", "IANA"},
		{"empty name", func(p *db.Plan) { p.Name = "  " }, "name", "required"},
		{"control character", func(p *db.Plan) { p.Name = "a\x00b" }, "name", "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.edit(&p)
			err := p.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", p, err)
				}
				return
			}
			var ve *db.ValidationError
			if !errors.As(err, &ve) || !strings.Contains(ve.For(tt.field), tt.msg) {
				t.Fatalf("Validate(%+v) = %v, want %s error containing %q", p, err, tt.field, tt.msg)
			}
		})
	}
	if err := MustOpenDB(t).UpdatePlan(context.Background(), db.Plan{Name: "x", Timezone: "UTC", Tier: db.TierProfessional, Schedule: db.SchedulePremium}); err == nil {
		t.Fatal("UpdatePlan saved premium on professional")
	}
}
