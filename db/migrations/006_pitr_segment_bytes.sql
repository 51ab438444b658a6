-- What each shipped segment holds, so the storage a stream keeps is counted for every kind of stream (a
-- PostgreSQL WAL segment is 16 MiB; a Redis command log or a binlog is any size). Every stream recorded before
-- this was PostgreSQL's.
ALTER TABLE pitr_segments ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE pitr_segments SET bytes = 16777216;
