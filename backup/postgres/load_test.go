package postgres

import (
	"context"
	"testing"

	"github.com/kopia/kopia/fs"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/internal/testserver"
)

// remoteSource hands Prepare its folder as from the repository (no local path), so the dump is streamed:
// Rewind reads the archive, loads the tables with COPY (several connections, a table on one) and leaves the rest to
// pg_restore --jobs from a spool whose offsets it filled in.
type remoteSource struct{ *Source }

func (s remoteSource) Prepare(ctx context.Context, dir fs.Directory, p backup.Progress) (backup.Prepared, error) {
	return s.Source.Prepare(ctx, remoteDir{dir}, p)
}

// bigSQL adds what the streamed restore handles specially: a table larger than several COPY batches, its rows
// stored in neither id nor any other column's order, whose values need COPY's escapes, an empty table, and
// large objects (data blocks pg_restore restores from the spool).
const bigSQL = `
CREATE TABLE public.big (id int PRIMARY KEY, body text, blob bytea);
INSERT INTO public.big SELECT i, repeat(E'row\t' || i || E'\n\\ \\. 日本 ', 1 + i % 40), decode(md5(i::text), 'hex')
FROM generate_series(1, 60000) i ORDER BY (i * 7919) % 60000;
INSERT INTO public.big VALUES (0, E'\\.', NULL), (-1, E'\\.\n', ''), (-2, '', NULL);
CREATE TABLE public.nothing (x int);
SELECT lo_from_bytea(0, convert_to(repeat('large object ' || i, 1000 * i), 'UTF8')) FROM generate_series(1, 3) i;
`

func streamedCase(t *testing.T, url string) backuptest.Case {
	c := newCase(t, url, Options{SpoolDir: t.TempDir(), Jobs: 3})
	c.Source = remoteSource{c.Source.(*Source)}
	fill := c.Fill
	c.Fill = func(t testing.TB) {
		fill(t)
		run(t, conn(t, url), bigSQL)
	}
	sum := c.Checksum
	c.Checksum = func(t testing.TB) backuptest.State {
		st := sum(t)
		var los string
		if err := conn(t, url).QueryRow(context.Background(), `SELECT count(*) || ':' ||
			coalesce(md5(string_agg(md5(lo_get(oid)), ',' ORDER BY md5(lo_get(oid)))), '')
			FROM pg_largeobject_metadata`).Scan(&los); err != nil {
			t.Fatal(err)
		}
		st["large objects"] = los
		// The rows' physical order too: a restore that interleaves a table's rows (as loading one table over
		// several connections does) undoes a CLUSTER, defeats BRIN indexes and makes the next dump share
		// nothing with the last one.
		var order string
		if err := conn(t, url).QueryRow(context.Background(),
			`SELECT md5(string_agg(id::text, ',' ORDER BY ctid)) FROM public.big`).Scan(&order); err != nil {
			t.Fatal(err)
		}
		st["physical order of public.big"] = order
		return st
	}
	return c
}

func TestStreamedRestoreSuperuser(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "pw", "")
	db := srv.CreateDatabase(t, role) // owned by the application: pg_restore --role, SET ROLE for COPY
	backuptest.RoundTrip(t, streamedCase(t, srv.URL(db)))
}

func TestStreamedRestoreAppRole(t *testing.T) {
	t.Parallel()
	srv := testserver.StartPostgres(t)
	role := srv.CreateRole(t, "pw'd", "CREATEDB")
	db := srv.CreateDatabase(t, role)
	backuptest.RoundTrip(t, streamedCase(t, srv.RoleURL(role, "pw'd", db)))
}
