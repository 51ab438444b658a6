-- Restore drills: per environment a schedule and an optional smoke command; one row per drill, which restores
-- a backup into throwaway private servers and directories, verifies every checksum, runs the smoke command and
-- records how long the restore took. A drill makes no backup: it references the backup it verified.
ALTER TABLE environments ADD COLUMN drill_schedule TEXT NOT NULL DEFAULT 'off'
	CHECK (drill_schedule IN ('off', 'daily', 'weekly'));
ALTER TABLE environments ADD COLUMN drill_smoke TEXT NOT NULL DEFAULT '';

CREATE TABLE drills (
	id            INTEGER PRIMARY KEY,
	environment   TEXT NOT NULL,               -- environment name at the time
	backup_id     TEXT NOT NULL DEFAULT '',    -- the backup restored (no foreign key: it may expire later)
	activity_id   INTEGER REFERENCES activities (id) ON DELETE SET NULL,
	state         TEXT NOT NULL CHECK (state IN ('running', 'passed', 'failed')),
	size_bytes    INTEGER NOT NULL DEFAULT 0,  -- logical size of the backup restored
	restore_ms    INTEGER NOT NULL DEFAULT 0,  -- prepare + switch + verification into the scratch targets
	files         INTEGER NOT NULL DEFAULT 0,  -- files whose checksum was verified
	error         TEXT NOT NULL DEFAULT '',
	created_at    TEXT NOT NULL,
	finished_at   TEXT
);
CREATE INDEX drills_environment ON drills (environment, id DESC);
