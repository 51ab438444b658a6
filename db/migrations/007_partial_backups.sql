-- A backup that holds only part of its environment: the pre-restore backup of a partial restore (one service,
-- one directory or one file). It undoes that restore, but it is not a point the whole environment can be
-- restored to, so the recovery point, the RPO alerts and the drills skip it.
ALTER TABLE backups ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;
