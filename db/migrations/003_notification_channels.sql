-- Notification channels: where Rewind tells the team that something went wrong (or a restore is done), and the
-- log of every delivery attempt. A channel's secret part (a webhook or ping URL, which carries its token, or an
-- SMTP password) is sealed with the catalog key like a service URL; config holds the rest as JSON.
CREATE TABLE notification_channels (
	id           INTEGER PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	kind         TEXT NOT NULL CHECK (kind IN ('webhook', 'slack', 'discord', 'email', 'ping')),
	enabled      INTEGER NOT NULL DEFAULT 1,
	events       TEXT NOT NULL DEFAULT '[]', -- JSON list of event names ("backup.failed", ...)
	environments TEXT NOT NULL DEFAULT '[]', -- JSON list of environment names; empty: every environment
	rpo_hours    INTEGER NOT NULL DEFAULT 0,  -- rpo.exceeded: newest complete backup older than this
	config       TEXT NOT NULL DEFAULT '{}', -- JSON: SMTP host, port, username, from, to, tls
	secret       BLOB,                       -- sealed JSON: url, password
	created_at   TEXT NOT NULL,
	updated_at   TEXT NOT NULL
);

CREATE TABLE notification_deliveries (
	id           INTEGER PRIMARY KEY,
	channel_id   INTEGER REFERENCES notification_channels (id) ON DELETE CASCADE,
	channel_name TEXT NOT NULL,
	event        TEXT NOT NULL,
	environment  TEXT NOT NULL DEFAULT '',
	activity_id  INTEGER NOT NULL DEFAULT 0,
	attempt      INTEGER NOT NULL,
	status       TEXT NOT NULL CHECK (status IN ('delivered', 'retrying', 'failed')),
	error        TEXT NOT NULL DEFAULT '',
	created_at   TEXT NOT NULL
);
CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_id, id DESC);
