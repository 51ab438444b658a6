package jobs

import (
	"testing"
	"time"

	"github.com/rewind/rewind/db"
)

func TestPromisedRPO(t *testing.T) {
	prod := &db.Environment{Type: db.EnvProduction, Status: db.StatusActive, Services: []db.Service{{Name: "db"}}}
	staging := &db.Environment{Type: db.EnvStaging, Status: db.StatusActive, Services: []db.Service{{Name: "db"}}}
	for _, tc := range []struct {
		schedule string
		env      *db.Environment
		want     time.Duration
	}{
		{db.ScheduleBasic, prod, 24 * time.Hour},
		{db.ScheduleAdvanced, prod, 24 * time.Hour},
		{db.SchedulePremium, prod, 6 * time.Hour},
		{db.SchedulePremium, staging, 0},
	} {
		if got := PromisedRPO(tc.schedule, tc.env); got != tc.want {
			t.Errorf("PromisedRPO(%s, %s) = %v, want %v", tc.schedule, tc.env.Type, got, tc.want)
		}
	}
}
