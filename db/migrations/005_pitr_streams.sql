-- Point-in-time restore (issue 10). Per environment: whether continuous protection is on and for how many days
-- (bounded by the plan's schedule when read). Per followed service: one stream, the bases taken of it and the
-- WAL segments shipped into the repository, so the dashboard and a restore to T know which moments are covered
-- without reading kopia. The repository holds the data (one kopia snapshot per base and per segment).
ALTER TABLE environments ADD COLUMN pitr_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN pitr_window_days INTEGER NOT NULL DEFAULT 30;

CREATE TABLE pitr_streams (
	id             INTEGER PRIMARY KEY,
	environment    TEXT NOT NULL,
	service        TEXT NOT NULL,
	slot           TEXT NOT NULL,               -- the replication slot on the service's server
	state          TEXT NOT NULL DEFAULT 'starting', -- starting | running | failed | stopped
	error          TEXT NOT NULL DEFAULT '',
	wal_status     TEXT NOT NULL DEFAULT '',    -- pg_replication_slots.wal_status of the slot
	lag_bytes      INTEGER NOT NULL DEFAULT 0,  -- server's current WAL position minus what is shipped
	last_commit_at TEXT,                        -- newest commit shipped into the repository
	covered_until  TEXT,                        -- every commit up to here is shipped
	started_at     TEXT,
	updated_at     TEXT NOT NULL,
	UNIQUE (environment, service)
);

CREATE TABLE pitr_bases (
	id          INTEGER PRIMARY KEY,
	stream_id   INTEGER NOT NULL REFERENCES pitr_streams (id) ON DELETE CASCADE,
	snapshot    TEXT NOT NULL,    -- kopia manifest id
	system_id   TEXT NOT NULL,    -- the server's system identifier
	timeline    INTEGER NOT NULL,
	start_lsn   TEXT NOT NULL,
	end_lsn     TEXT NOT NULL,
	start_wal   TEXT NOT NULL,    -- name of the WAL segment holding start_lsn
	started_at  TEXT NOT NULL,
	finished_at TEXT NOT NULL,    -- restorable from here on
	bytes       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX pitr_bases_stream ON pitr_bases (stream_id, finished_at);

CREATE TABLE pitr_segments (
	stream_id       INTEGER NOT NULL REFERENCES pitr_streams (id) ON DELETE CASCADE,
	name            TEXT NOT NULL,              -- WAL file name (24 hex digits)
	snapshot        TEXT NOT NULL,              -- kopia manifest id
	partial         INTEGER NOT NULL DEFAULT 0, -- the segment still being written (replaced as it grows)
	first_commit_at TEXT,
	last_commit_at  TEXT,
	end_lsn         TEXT NOT NULL DEFAULT '',   -- end of the last record in it
	read_at         TEXT NOT NULL,              -- when it was read for shipping: covers every commit before
	PRIMARY KEY (stream_id, name)
);
