-- Backups: one row per Rewind backup, mirroring the repository so the dashboard lists them without reading kopia.
-- The repository stays the source of truth for a backup's content (its rewind.json); this row carries the
-- backup's life (pending → running → complete | failed, later expired) and what the Backups tab shows.
CREATE TABLE backups (
	id            TEXT PRIMARY KEY,            -- 20 lowercase hex characters, also the backup's name
	environment   TEXT NOT NULL,               -- environment name at the time
	kind          TEXT NOT NULL CHECK (kind IN ('manual', 'automated', 'pre-restore', 'drill')),
	live          INTEGER NOT NULL DEFAULT 0,
	status        TEXT NOT NULL CHECK (status IN ('pending', 'running', 'complete', 'failed', 'expired')),
	progress      INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
	activity_id   INTEGER REFERENCES activities (id) ON DELETE SET NULL,
	restored_from TEXT NOT NULL DEFAULT '', -- pre-restore backups: the backup whose restore replaced this state
	code_commit   TEXT NOT NULL DEFAULT '',
	size_bytes    INTEGER NOT NULL DEFAULT 0, -- logical size of the services' data
	new_bytes     INTEGER NOT NULL DEFAULT 0, -- bytes this backup added to the repository
	pause_ms      INTEGER NOT NULL DEFAULT 0, -- how long requests were held
	services      TEXT NOT NULL DEFAULT '[]', -- JSON: name, type, version, size of each service
	error         TEXT NOT NULL DEFAULT '',
	created_at    TEXT NOT NULL,
	completed_at  TEXT
);
CREATE INDEX backups_environment ON backups (environment, created_at DESC, id DESC);
CREATE INDEX backups_status ON backups (status);
