package redis

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc64"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rewind/rewind/backup"
	"github.com/rewind/rewind/backup/backuptest"
	"github.com/rewind/rewind/backup/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func client(t testing.TB, srv *testserver.Redis, db int) *goredis.Client {
	c := srv.Client(db)
	t.Cleanup(func() { c.Close() })
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fill writes every data type, binary and unicode keys and values, a large value and TTLs.
func fill(t testing.TB, c *goredis.Client) {
	ctx := context.Background()
	must(t, c.Set(ctx, "str", "hello", 0).Err())
	must(t, c.Set(ctx, "str:unicode:Zoë 日本語 🚀", "välue 🚀", 0).Err())
	must(t, c.Set(ctx, "bin\x00key\xff", []byte{0, 1, 2, 255, '\n', '\r'}, 0).Err())
	must(t, c.Set(ctx, "int", 42, 0).Err())
	must(t, c.Set(ctx, "big", strings.Repeat("0123456789abcdef", 1<<16), 0).Err()) // 1 MiB
	must(t, c.Set(ctx, "ttl:str", "expires later", time.Hour).Err())
	must(t, c.RPush(ctx, "list", "a", "b", "", "c", "a").Err())
	for i := 0; i < 300; i++ { // a quicklist, not a listpack
		must(t, c.RPush(ctx, "list:long", strings.Repeat("x", i)).Err())
	}
	must(t, c.HSet(ctx, "hash", "f1", "v1", "f2", "", "ünï", "ß").Err())
	must(t, c.Expire(ctx, "hash", 2*time.Hour).Err())
	must(t, c.SAdd(ctx, "set", "x", "y", "z").Err())
	must(t, c.SAdd(ctx, "set:ints", 1, 2, 3, 100000).Err())
	must(t, c.ZAdd(ctx, "zset", goredis.Z{Score: 1.5, Member: "a"}, goredis.Z{Score: -3, Member: "b"},
		goredis.Z{Score: 1e300, Member: "c"}).Err())
	for i := 0; i < 20; i++ {
		must(t, c.XAdd(ctx, &goredis.XAddArgs{Stream: "stream", ID: fmt.Sprintf("%d-1", 1000+i),
			Values: []any{"n", i, "s", "é"}}).Err())
	}
	must(t, c.XGroupCreate(ctx, "stream", "workers", "0").Err())
	must(t, c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "workers", Consumer: "w1", Streams: []string{"stream", ">"},
		Count: 5}).Err())
	for i := 0; i < 50; i++ {
		must(t, c.Set(ctx, fmt.Sprintf("session:%03d", i), fmt.Sprintf("user-%d", i), time.Duration(i+1)*time.Hour).Err())
	}
}

// checksum reads every key of the database by type, with its absolute expiry.
func checksum(t testing.TB, c *goredis.Client) backuptest.State {
	ctx := context.Background()
	st := backuptest.State{}
	var keys []string
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	must(t, iter.Err())
	for _, k := range keys {
		typ, err := c.Type(ctx, k).Result()
		must(t, err)
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "hash":
			var m map[string]string
			m, err = c.HGetAll(ctx, k).Result()
			v = sortedMap(m)
		case "set":
			var m []string
			m, err = c.SMembers(ctx, k).Result()
			sort.Strings(m)
			v = m
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			var msgs []goredis.XMessage
			msgs, err = c.XRange(ctx, k, "-", "+").Result()
			if err == nil {
				var groups []goredis.XInfoGroup
				groups, err = c.XInfoGroups(ctx, k).Result()
				var pending []goredis.XPendingExt
				if err == nil && len(groups) > 0 {
					pending, err = c.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: k, Group: groups[0].Name,
						Start: "-", End: "+", Count: 100}).Result()
					for i := range pending {
						pending[i].Idle = 0
					}
				}
				v = []any{sortedMessages(msgs), groups, pending}
			}
		default:
			t.Fatalf("key %q has unexpected type %s", k, typ)
		}
		must(t, err)
		exp, err := c.PExpireTime(ctx, k).Result()
		must(t, err)
		sum := sha256.Sum256(fmt.Appendf(nil, "%s %v", typ, v))
		st[typ+" "+k] = fmt.Sprintf("%s exp=%d", hex.EncodeToString(sum[:8]), exp.Milliseconds())
	}
	return st
}

func sortedMap(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func sortedMessages(m []goredis.XMessage) []string {
	var out []string
	for _, x := range m {
		out = append(out, fmt.Sprint(x.ID, sortedMap(toStrings(x.Values))))
	}
	return out
}

func toStrings(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func newSource(t testing.TB, url string) *Source {
	src, err := New(backup.ServiceSpec{Name: "cache", Type: backup.TypeRedis, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

func newCase(t *testing.T, srv *testserver.Redis, db int) backuptest.Case {
	c := client(t, srv, db)
	ctx := context.Background()
	return backuptest.Case{
		Source:   newSource(t, srv.URL(db)),
		Fill:     func(t testing.TB) { fill(t, c) },
		Checksum: func(t testing.TB) backuptest.State { return checksum(t, c) },
		Write: func(t testing.TB, n int) {
			must(t, c.Set(ctx, fmt.Sprintf("late:%d", n), "x", 0).Err())
			must(t, c.RPush(ctx, "list", "late").Err())
		},
		Damage: func(t testing.TB) {
			must(t, c.Set(ctx, "str", "damaged", 0).Err())
			must(t, c.Del(ctx, "hash", "session:007").Err())
			must(t, c.Persist(ctx, "ttl:str").Err())
			must(t, c.SAdd(ctx, "added", "new").Err())
			must(t, c.Expire(ctx, "set", time.Minute).Err())
		},
	}
}

func TestRoundTrip(t *testing.T) {
	srv := testserver.StartRedis(t)
	c := newCase(t, srv, srv.CreateDatabase(t))
	admin := client(t, srv, 0)
	clients := func() string {
		info, err := admin.Info(context.Background(), "clients").Result()
		must(t, err)
		for _, line := range strings.Split(info, "\n") {
			if strings.HasPrefix(line, "connected_clients:") {
				return strings.TrimSpace(line)
			}
		}
		return ""
	}
	c.Checksum(t) // opens the case's own client
	before := clients()
	backuptest.RoundTrip(t, c)
	if after := clients(); after != before {
		t.Fatalf("connections left open by the source: %s before, %s after", before, after)
	}
}

// TestRoundTripBatched runs the suite with the SCAN fallback for big datasets.
func TestRoundTripBatched(t *testing.T) {
	srv := testserver.StartRedis(t)
	db := srv.CreateDatabase(t)
	c := newCase(t, srv, db)
	src, err := NewWithOptions(backup.ServiceSpec{Name: "cache", URL: srv.URL(db)}, Options{AtomicLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	c.Source = src
	fill := c.Fill
	c.Fill = func(t testing.TB) {
		fill(t)
		pipe := client(t, srv, db).Pipeline()
		for i := 0; i < 2500; i++ { // several SCAN batches
			pipe.Set(context.Background(), fmt.Sprintf("many:%d", i), i, 0)
		}
		if _, err := pipe.Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	backuptest.RoundTrip(t, c)
}

// TestOtherDatabasesUntouched: a restore of one logical database leaves the others alone.
func TestOtherDatabasesUntouched(t *testing.T) {
	srv := testserver.StartRedis(t)
	db, other := srv.CreateDatabase(t), srv.CreateDatabase(t)
	ctx := context.Background()
	must(t, client(t, srv, other).Set(ctx, "neighbour", "stays", 0).Err())
	c := newCase(t, srv, db)
	c.Fill(t)
	capture, err := c.Source.Pin(ctx)
	must(t, err)
	dir := backuptest.Stream(t, capture, backup.NopProgress)
	capture.Close()
	prep, err := c.Source.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	must(t, err)
	_, err = prep.Switch(ctx)
	must(t, err)
	if v, err := client(t, srv, other).Get(ctx, "neighbour").Result(); err != nil || v != "stays" {
		t.Fatalf("other database: %q, %v", v, err)
	}
}

// TestExpiredKeysSkipped: a key whose expiry passed between backup and restore is not restored; the others
// keep their absolute expiry.
func TestExpiredKeysSkipped(t *testing.T) {
	srv := testserver.StartRedis(t)
	db := srv.CreateDatabase(t)
	c := client(t, srv, db)
	ctx := context.Background()
	must(t, c.Set(ctx, "short", "x", 300*time.Millisecond).Err())
	must(t, c.Set(ctx, "long", "y", time.Hour).Err())
	wantExp, err := c.PExpireTime(ctx, "long").Result()
	must(t, err)
	src := newSource(t, srv.URL(db))
	capture, err := src.Pin(ctx)
	must(t, err)
	dir := backuptest.Stream(t, capture, backup.NopProgress)
	capture.Close()
	time.Sleep(400 * time.Millisecond)
	prep, err := src.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	must(t, err)
	_, err = prep.Switch(ctx)
	must(t, err)
	if n, _ := c.Exists(ctx, "short").Result(); n != 0 {
		t.Errorf("expired key was restored")
	}
	if got, _ := c.PExpireTime(ctx, "long").Result(); got != wantExp {
		t.Errorf("expiry of long = %v, want %v", got, wantExp)
	}
}

func TestPinErrors(t *testing.T) {
	srv := testserver.StartRedis(t)
	ctx := context.Background()
	admin := client(t, srv, 0)
	must(t, admin.Do(ctx, "ACL", "SETUSER", "rewindtest", "on", ">right-password", "~*", "+@all").Err())
	t.Cleanup(func() { admin.Do(ctx, "ACL", "DELUSER", "rewindtest") })
	for _, tc := range []struct{ name, url, want string }{
		{"unreachable", "redis://:hunter2@127.0.0.1:1/0", "connect"},
		{"wrong password", fmt.Sprintf("redis://rewindtest:hunter2@%s/0", srv.Addr()), "WRONGPASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource(t, tc.url)
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := src.Pin(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Pin: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
	if _, err := New(backup.ServiceSpec{Name: "c", URL: "http://:topsecret@h/0"}); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("New with a bad url: %v", err)
	}
}

// TestDamagedBackupRefused: a truncated or altered keys file fails Prepare and leaves the database alone.
func TestDamagedBackupRefused(t *testing.T) {
	srv := testserver.StartRedis(t)
	db := srv.CreateDatabase(t)
	c := newCase(t, srv, db)
	c.Fill(t)
	ctx := context.Background()
	capture, err := c.Source.Pin(ctx)
	must(t, err)
	dir := backuptest.Stream(t, capture, backup.NopProgress)
	capture.Close()
	c.Damage(t)
	before := c.Checksum(t)
	path := filepath.Join(dir, KeysFile)
	good, err := os.ReadFile(path)
	must(t, err)
	for name, data := range map[string][]byte{
		"truncated": good[:len(good)/2],
		"flipped":   append(append(append([]byte{}, good[:len(good)/3]...), good[len(good)/3]^1), good[len(good)/3+1:]...),
		"empty":     nil,
	} {
		must(t, os.WriteFile(path, data, 0o644))
		if _, err := c.Source.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress); err == nil {
			t.Errorf("%s keys file: Prepare succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	backuptest.MustEqual(t, "live state", before, c.Checksum(t))
}

// TestPayloadCRC checks payloadVersion against payloads made by the real server.
func TestPayloadCRC(t *testing.T) {
	srv := testserver.StartRedis(t)
	db := srv.CreateDatabase(t)
	c := client(t, srv, db)
	ctx := context.Background()
	fill(t, c)
	src := newSource(t, srv.URL(db))
	_, rdb, err := src.serverInfo(ctx, c)
	must(t, err)
	keys, err := c.Keys(ctx, "*").Result()
	must(t, err)
	for _, k := range keys {
		p, err := c.Dump(ctx, k).Result()
		must(t, err)
		v, err := payloadVersion([]byte(p))
		if err != nil || v != rdb {
			t.Fatalf("payloadVersion(%q) = %d, %v; want %d", k, v, err, rdb)
		}
		bad := []byte(p)
		bad[0] ^= 0xff
		if _, err := payloadVersion(bad); err == nil {
			t.Fatalf("altered payload of %q passes", k)
		}
	}
}

// TestPinConsistency: while a writer sets numbered keys, the capture holds exactly keys 1..k for a k between
// the keys written before Pin started and those written when it returned.
func TestPinConsistency(t *testing.T) {
	srv := testserver.StartRedis(t)
	db := srv.CreateDatabase(t)
	c := client(t, srv, db)
	ctx := context.Background()
	pipe := c.Pipeline()
	for i := 0; i < 20000; i++ { // some bulk so the pin takes a moment
		pipe.Set(ctx, fmt.Sprintf("bulk:%d", i), strings.Repeat("v", 100), 0)
	}
	_, err := pipe.Exec(ctx)
	must(t, err)
	src := newSource(t, srv.URL(db))
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := srv.Client(db)
		defer w.Close()
		for n := int64(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.Set(ctx, fmt.Sprintf("seq:%d", n), n, 0).Err(); err != nil {
				t.Error(err)
				return
			}
			written.Store(n)
		}
	}()
	for written.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	lo := written.Load()
	cp, err := src.Pin(ctx)
	hi := written.Load()
	must(t, err)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	snap := cp.(*capture).snap
	t.Logf("written before Pin %d, when Pin returned %d, at the end %d; Pin took %s", lo, hi, written.Load(), cp.Info().PinDuration)
	seen := map[string]bool{}
	for _, e := range snap.Entries {
		seen[e.Key] = true
	}
	k := int64(0)
	for seen[fmt.Sprintf("seq:%d", k+1)] {
		k++
	}
	var n int64
	for key := range seen {
		if strings.HasPrefix(key, "seq:") {
			n++
		}
	}
	if n != k || k < lo || k > hi {
		t.Fatalf("capture has %d seq keys, prefix 1..%d; want a prefix 1..k with k in [%d, %d]", n, k, lo, hi)
	}
	cp.Close()
}

func TestFormatRoundTrip(t *testing.T) {
	s := &snapshot{Now: 1700000000123, Entries: []entry{
		{Key: "a", Payload: []byte("p1")},
		{Key: "", ExpireAt: 1700000009999, Payload: nil},
		{Key: "\x00\xff", Payload: bytes.Repeat([]byte{7}, 100000)},
	}}
	var buf bytes.Buffer
	must(t, encode(&buf, s))
	got, err := decode(bytes.NewReader(buf.Bytes()))
	must(t, err)
	if got.Now != s.Now || len(got.Entries) != len(s.Entries) {
		t.Fatalf("decode = %+v", got)
	}
	for i := range s.Entries {
		if got.Entries[i].Key != s.Entries[i].Key || got.Entries[i].ExpireAt != s.Entries[i].ExpireAt ||
			!bytes.Equal(got.Entries[i].Payload, s.Entries[i].Payload) {
			t.Fatalf("entry %d = %+v, want %+v", i, got.Entries[i], s.Entries[i])
		}
	}
	for n := 0; n < buf.Len(); n += 1 + n/50 {
		if _, err := decode(bytes.NewReader(buf.Bytes()[:n])); err == nil {
			t.Fatalf("decode of the first %d bytes succeeded", n)
		}
	}
}

// FuzzDecode: decode never panics and whatever it accepts re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range []*snapshot{
		{Now: 1},
		{Now: 1700000000123, Entries: []entry{{Key: "k", ExpireAt: 5, Payload: []byte("payload")}, {Key: "x"}}},
	} {
		var buf bytes.Buffer
		if err := encode(&buf, s); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("REWINDRK\x01"))
	f.Add([]byte("REWINDRK\x01\x00\x00\x00\x00\x00\x00\x00\x01K\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := encode(&buf, s); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("accepted input does not re-encode to itself")
		}
	})
}

// TestNewerPayloadRefused: a backup whose payloads come from a newer Redis is refused by Prepare, before
// anything changes, with what to do.
func TestNewerPayloadRefused(t *testing.T) {
	srv := testserver.StartRedis(t)
	db := srv.CreateDatabase(t)
	c := client(t, srv, db)
	ctx := context.Background()
	must(t, c.Set(ctx, "k", "v", 0).Err())
	p, err := c.Dump(ctx, "k").Result()
	must(t, err)
	payload := []byte(p)
	body := payload[:len(payload)-8]
	body[len(body)-2], body[len(body)-1] = 99, 0 // RDB version 99, little-endian
	crc := ^crc64.Update(^uint64(0), crcJones, body)
	binary.LittleEndian.PutUint64(payload[len(payload)-8:], crc)
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, KeysFile))
	must(t, err)
	must(t, encode(f, &snapshot{Now: 1, Entries: []entry{{Key: "k", Payload: payload}}}))
	must(t, f.Close())
	must(t, c.Set(ctx, "k", "live", 0).Err())
	_, err = newSource(t, srv.URL(db)).Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	if err == nil || !strings.Contains(err.Error(), "newer Redis") {
		t.Fatalf("Prepare of a newer payload: %v", err)
	}
	if v, _ := c.Get(ctx, "k").Result(); v != "live" {
		t.Fatalf("live key changed to %q", v)
	}
}

// TestSwitchFailurePutsKeysBack: a payload the server rejects at RESTORE (it passed the checksum and version
// checks) fails Switch after FLUSHDB ran inside the transaction; the previous keys are put back.
func TestSwitchFailurePutsKeysBack(t *testing.T) {
	srv := testserver.StartRedis(t)
	db := srv.CreateDatabase(t)
	c := client(t, srv, db)
	ctx := context.Background()
	must(t, c.Set(ctx, "k", "v", 0).Err())
	p, err := c.Dump(ctx, "k").Result()
	must(t, err)
	bad := []byte(p)
	bad[0] = 200 // no such object type
	binary.LittleEndian.PutUint64(bad[len(bad)-8:], ^crc64.Update(^uint64(0), crcJones, bad[:len(bad)-8]))
	good := []byte(p)
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, KeysFile))
	must(t, err)
	must(t, encode(f, &snapshot{Now: 1, Entries: []entry{{Key: "a", Payload: good}, {Key: "b", Payload: bad}}}))
	must(t, f.Close())

	fill(t, c)
	before := checksum(t, c)
	src := newSource(t, srv.URL(db))
	prep, err := src.Prepare(ctx, backuptest.Dir(t, dir), backup.NopProgress)
	must(t, err)
	_, err = prep.Switch(ctx)
	if err == nil || !strings.Contains(err.Error(), "previous keys put back") {
		t.Fatalf("Switch with a rejected payload: %v", err)
	}
	t.Logf("Switch: %v", err)
	backuptest.MustEqual(t, "live state after a failed Switch", before, checksum(t, c))
}
