-- Rewind catalog, version 1: accounts, API tokens, environments, services,
-- activities and a small settings table. Later features (backups, plan)
-- add their own numbered migrations.

CREATE TABLE users (
	id             INTEGER PRIMARY KEY,
	email          TEXT NOT NULL UNIQUE COLLATE NOCASE,
	password_hash  TEXT NOT NULL,
	role           TEXT NOT NULL CHECK (role IN ('admin', 'contributor', 'viewer')),
	role_overrides TEXT NOT NULL DEFAULT '{}', -- JSON: environment type -> role
	disabled       INTEGER NOT NULL DEFAULT 0,
	created_at     TEXT NOT NULL,
	last_login_at  TEXT
);

CREATE TABLE tokens (
	id           INTEGER PRIMARY KEY,
	user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	prefix       TEXT NOT NULL,          -- first characters, shown to tell tokens apart
	hash         BLOB NOT NULL UNIQUE,   -- SHA-256 of the secret; the secret is never stored
	created_at   TEXT NOT NULL,
	last_used_at TEXT,
	revoked_at   TEXT
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE setup_tokens (
	id         INTEGER PRIMARY KEY,
	hash       BLOB NOT NULL UNIQUE,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	used_at    TEXT
);

CREATE TABLE environments (
	id                INTEGER PRIMARY KEY,
	name              TEXT NOT NULL UNIQUE,
	title             TEXT NOT NULL DEFAULT '',
	type              TEXT NOT NULL CHECK (type IN ('production', 'staging', 'development')),
	parent_id         INTEGER REFERENCES environments (id) ON DELETE RESTRICT,
	status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
	git_dir           TEXT NOT NULL DEFAULT '',
	gate_listen       TEXT NOT NULL DEFAULT '',
	gate_upstream     TEXT NOT NULL DEFAULT '',
	hook_pre_pause    TEXT NOT NULL DEFAULT '',
	hook_post_pause   TEXT NOT NULL DEFAULT '',
	hook_post_restore TEXT NOT NULL DEFAULT '',
	created_at        TEXT NOT NULL,
	updated_at        TEXT NOT NULL
);
CREATE INDEX environments_parent ON environments (parent_id);

CREATE TABLE services (
	id             INTEGER PRIMARY KEY,
	environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
	position       INTEGER NOT NULL,
	name           TEXT NOT NULL,
	type           TEXT NOT NULL CHECK (type IN ('postgresql', 'mysql', 'redis', 'sqlite', 'files')),
	url_enc        BLOB,                 -- AES-256-GCM(nonce || ciphertext) of the URL; NULL for path services
	path           TEXT NOT NULL DEFAULT '',
	exclude        TEXT NOT NULL DEFAULT '[]', -- JSON array of patterns
	UNIQUE (environment_id, name)
);

CREATE TABLE activities (
	id          INTEGER PRIMARY KEY,
	type        TEXT NOT NULL,
	environment TEXT NOT NULL DEFAULT '', -- environment name at the time, kept if it is deleted
	actor       TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	progress    INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
	summary     TEXT NOT NULL DEFAULT '',
	log         TEXT NOT NULL DEFAULT '',
	backup_id   TEXT NOT NULL DEFAULT '',
	params      TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	started_at  TEXT,
	finished_at TEXT
);
CREATE INDEX activities_environment ON activities (environment, id);
CREATE INDEX activities_state ON activities (state, id);
CREATE INDEX activities_type ON activities (type, id);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
