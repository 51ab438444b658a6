package jobs

import (
	"time"

	"github.com/rewind/rewind/db"
)

// PromisedRPO is the recovery point the plan's automated backups promise env: the longest gap between two slots
// of the schedule (24 hours for basic and advanced, 6 for premium). It is 0 when env gets no automated backups
// (Scheduled): then only manual backups protect it, and nothing is promised.
func PromisedRPO(schedule string, env *db.Environment) time.Duration {
	if !Scheduled(env) {
		return 0
	}
	hours := slotHours(schedule)
	gap := 24 - hours[len(hours)-1] + hours[0] // from the last slot of a day to the first of the next
	for i := 1; i < len(hours); i++ {
		gap = max(gap, hours[i]-hours[i-1])
	}
	return time.Duration(gap) * time.Hour
}
