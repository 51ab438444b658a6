package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"
	"github.com/kopia/kopia/snapshot/snapshotfs"
	"github.com/kopia/kopia/snapshot/upload"
)

// uploadProgress forwards kopia's cached-file events (files not read again because an earlier backup has them)
// to the engine's Progress; bytes read are counted by the hashing wrapper.
type uploadProgress struct {
	upload.NullUploadProgress
	p Progress
}

func (u *uploadProgress) CachedFile(_ string, size int64) { u.p.Add(size) }

// upload runs in one write session: no snapshot is saved unless it returns nil (contents it flushed before
// failing are unreferenced, and maintenance collects them).
//
// Order: kopia uploads the service folders first (as the root of a scratch upload that is never saved as a
// snapshot); the engine then walks the uploaded trees for the checksums (files kopia did not read again come
// from the previous backup's SHA256SUMS), writes SHA256SUMS, flushes the session so that stored (the bytes
// the session uploaded) covers everything written so far, writes rewind.json with that count, and builds the
// final root directory from the uploaded service folders plus those two files. Only then is the snapshot saved.
func (e *Engine) upload(ctx context.Context, w repo.RepositoryWriter, m *Manifest, pinned []*pinnedService,
	folders []fs.Entry, rec *hashRecorder, uploadSource snapshot.SourceInfo, p Progress, pre *firstPass,
	reread map[string][]string, stored *atomic.Int64,
) error {
	types := map[string]string{}
	for _, ps := range pinned {
		types[ps.spec.Name] = ps.spec.Type
	}
	prevMan, prevSums := e.previousForCache(ctx, w, m.Environment, types, pre, reread)

	u := upload.NewUploader(w)
	u.FailFast = true
	u.DisableIgnoreRules = true // sources apply their own excludes; kopia's .kopiaignore must not drop data
	u.ParallelUploads = e.parallel()
	u.Progress = &uploadProgress{p: p}
	if pre != nil {
		u.Progress = &upload.NullUploadProgress{} // the first pass counted what this upload finds cached
	}

	polTree, err := e.uploadPolicy(ctx, w, uploadSource, types)
	if err != nil {
		return err
	}
	var prev []*snapshot.Manifest
	if prevMan != nil {
		prev = append(prev, prevMan)
	}
	root := virtualfs.NewStaticDirectory("rewind", folders)
	stop := context.AfterFunc(ctx, u.Cancel)
	up, err := u.Upload(ctx, root, polTree, uploadSource, prev...)
	stop()
	if ctx.Err() != nil {
		return fmt.Errorf("upload: %w", ctx.Err())
	}
	if ferr := rec.firstFailure(); ferr != nil {
		return captureError(types, ferr)
	}
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if up.IncompleteReason != "" || up.Stats.ErrorCount > 0 {
		return fmt.Errorf("upload incomplete (%s): %w", up.IncompleteReason, summaryError(up.RootEntry.DirSummary, types))
	}

	// Manifest services in request order, with the uploaded sizes and checksums.
	for _, ps := range pinned {
		sm := ServiceManifest{
			Name: ps.spec.Name, Type: ps.spec.Type, Version: ps.info.Version,
			PinnedAt: ps.info.PinnedAt, PinDuration: ps.info.PinDuration, Path: ps.spec.Sub, Entry: ps.spec.Entry,
		}
		if cs, ok := ps.capt.(CaptureSummarizer); ok {
			if s, err := cs.Summary(); err == nil { // without it the backup is as good, only not previewable
				sm.Summary = s
			}
		}
		m.Services = append(m.Services, sm)
	}
	// The listing as stored: snapshotfs would report each folder's newest time below it instead of its own.
	upEntries, err := readListing(ctx, w, up.RootEntry.ObjectID)
	if err != nil {
		return fmt.Errorf("read uploaded root: %w", err)
	}
	sums := Sums{}
	var builder snapshotfs.DirManifestBuilder
	err = func() error {
		for _, de := range upEntries {
			if err := e.sumService(ctx, w, de, m, &builder, sums, rec, pre, prevSums); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		return err
	}
	m.Bytes = 0
	for i := range m.Services {
		m.Services[i].SHA256 = sums.ServiceChecksum(m.Services[i].Name)
		m.Bytes += m.Services[i].Bytes
	}
	m.FinishedAt = e.now()

	pol := polTree.EffectivePolicy()
	sumsEntry, err := writeSmallFile(ctx, w, pol, SumsFile, sums.Marshal(), m.FinishedAt)
	if err != nil {
		return err
	}
	builder.AddEntry(sumsEntry)
	// Packs are uploaded when full or on flush: flush now so that the count includes every content written so
	// far; only rewind.json, the root listing and the snapshot manifest remain (a few KB). The price is a
	// second small data pack, metadata pack and index blob per backup (about 9 KB, which maintenance compacts).
	if err := w.Flush(ctx); err != nil {
		return fmt.Errorf("flush backup data: %w", err)
	}
	m.StoredBytes = stored.Load()
	js, err := m.Marshal()
	if err != nil {
		return err
	}
	manEntry, err := writeSmallFile(ctx, w, pol, ManifestFile, js, m.FinishedAt)
	if err != nil {
		return err
	}
	builder.AddEntry(manEntry)
	dm := builder.Build(fs.UTCTimestampFromTime(m.FinishedAt), "")
	rootOID, err := snapshotfs.WriteDirManifest(ctx, w, ".", dm, pol.MetadataCompressionPolicy.MetadataCompressor())
	if err != nil {
		return fmt.Errorf("write backup root: %w", err)
	}
	sm := &snapshot.Manifest{
		Source:      envSource(m.Environment),
		Description: fmt.Sprintf("Rewind %s backup %s of %s", m.Kind, m.ID, m.Environment),
		StartTime:   fs.UTCTimestampFromTime(m.StartedAt),
		EndTime:     fs.UTCTimestampFromTime(m.FinishedAt),
		Stats:       up.Stats,
		RootEntry: &snapshot.DirEntry{
			Name:        "rewind-" + m.ID,
			Type:        snapshot.EntryTypeDirectory,
			Permissions: 0o755,
			ModTime:     fs.UTCTimestampFromTime(m.FinishedAt),
			ObjectID:    rootOID,
			DirSummary:  dm.Summary,
		},
		Tags: map[string]string{tagID: m.ID, tagEnvironment: m.Environment, tagKind: m.Kind},
		// Rewind owns retention: the pin keeps `kopia snapshot expire` from deleting backups by kopia's policy.
		Pins: []string{"rewind"},
	}
	if _, err := snapshot.SaveSnapshot(ctx, w, sm); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	m.Snapshot = string(sm.ID)
	return deleteSource(ctx, w, uploadSource)
}

// uploadPolicy is the policy of an upload from src of one folder per service (types: name → type): the
// repository's, except that the folders of files services are compressed with the files compressor and split
// with FilesSplitter.
func (e *Engine) uploadPolicy(ctx context.Context, w repo.RepositoryWriter, src snapshot.SourceInfo,
	types map[string]string,
) (*policy.Tree, error) {
	tree, err := policy.TreeForSource(ctx, w, src)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	comp := compression.Name(e.FilesCompression)
	if comp == "" {
		comp = DefaultFilesCompression
	}
	root := tree.EffectivePolicy()
	if root.CompressionPolicy.CompressorName == comp && root.SplitterPolicy.Algorithm == FilesSplitter {
		return tree, nil
	}
	defined := map[string]*policy.Policy{".": root}
	for name, typ := range types {
		if typ != TypeFiles {
			continue
		}
		p := *root
		p.CompressionPolicy.CompressorName = comp
		p.SplitterPolicy.Algorithm = FilesSplitter
		defined["./"+name] = &p
	}
	return policy.BuildTree(defined, policy.DefaultPolicy), nil
}

// captureError turns the first read failure of an upload into a ServiceError naming its service.
func captureError(types map[string]string, err error) error {
	svc := ""
	msg := err.Error()
	if rest, ok := cutPrefix(msg, "read "); ok {
		svc = serviceOf(rest)
	}
	return &ServiceError{Op: "capture", Service: svc, Type: types[svc], Err: err}
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

// summaryError describes the failed entries kopia recorded.
func summaryError(s *fs.DirectorySummary, types map[string]string) error {
	if s == nil || len(s.FailedEntries) == 0 {
		return errors.New("unknown failure")
	}
	f := s.FailedEntries[0]
	svc := serviceOf(f.EntryPath)
	return &ServiceError{Op: "capture", Service: svc, Type: types[svc], Err: fmt.Errorf("%s: %s", f.EntryPath, f.Error)}
}

func writeSmallFile(ctx context.Context, w repo.RepositoryWriter, pol *policy.Policy, name string, data []byte, t interface {
	UnixNano() int64
},
) (*snapshot.DirEntry, error) {
	ow := w.NewObjectWriter(ctx, object.WriterOptions{
		Description:        "FILE:" + name,
		Compressor:         pol.CompressionPolicy.CompressorName,
		MetadataCompressor: pol.MetadataCompressionPolicy.MetadataCompressor(),
	})
	defer ow.Close() //nolint:errcheck
	if _, err := ow.Write(data); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	oid, err := ow.Result()
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	return &snapshot.DirEntry{
		Name:        name,
		Type:        snapshot.EntryTypeFile,
		Permissions: snapshot.Permissions(os.FileMode(0o644)),
		FileSize:    int64(len(data)),
		ModTime:     fs.UTCTimestamp(t.UnixNano()),
		ObjectID:    oid,
	}, nil
}

func hashEntry(ctx context.Context, f fs.File) (fileSum, error) {
	r, err := f.Open(ctx)
	if err != nil {
		return fileSum{}, err //nolint:wrapcheck
	}
	defer r.Close() //nolint:errcheck
	return hashReader(r)
}

// readRootFile reads a small file at the root of a backup.
func readRootFile(ctx context.Context, root fs.Directory, name string) ([]byte, error) {
	ent, err := root.Child(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", name, err)
	}
	f, ok := ent.(fs.File)
	if !ok {
		return nil, fmt.Errorf("%s is not a file", name)
	}
	r, err := f.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer r.Close() //nolint:errcheck
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(r, 1<<30)); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// previousForCache finds the newest backup of env and returns a scratch snapshot manifest whose root holds only
// its folders of "files" services that are still "files" services now, plus that backup's checksums. Kopia then
// skips reading files whose metadata did not change. Database streams are never offered (a stream with the
// same timestamp is not the same data). Errors only disable the cache.
func (e *Engine) previousForCache(ctx context.Context, w repo.RepositoryWriter, env string, types map[string]string,
	pre *firstPass, reread map[string][]string,
) (*snapshot.Manifest, Sums) {
	var b snapshotfs.DirManifestBuilder
	n := 0
	taken := map[string]bool{}
	if pre != nil {
		// The first pass of this backup is the best cache for the services it read.
		for _, de := range pre.folders {
			taken[de.Name] = true // with or without cache, the previous backup is not used for it
			if paths := reread[de.Name]; len(paths) > 0 {
				var err error
				if de, err = dropPaths(ctx, w, de, paths); err != nil {
					continue // no cache for this service: every file is read again
				}
			}
			b.AddEntry(de)
			n++
		}
	}
	finish := func(sums Sums) (*snapshot.Manifest, Sums) {
		if n == 0 {
			return nil, nil
		}
		dm := b.Build(fs.UTCTimestampFromTime(e.now()), "")
		oid, err := snapshotfs.WriteDirManifest(ctx, w, ".", dm, "")
		if err != nil {
			return nil, nil
		}
		return &snapshot.Manifest{RootEntry: &snapshot.DirEntry{
			Name: "previous", Type: snapshot.EntryTypeDirectory, Permissions: 0o755, ObjectID: oid, DirSummary: dm.Summary,
		}}, sums
	}
	ents, err := w.FindManifests(ctx, map[string]string{manifest.TypeLabelKey: snapshot.ManifestType, tagEnvironment: env})
	if err != nil || len(ents) == 0 {
		return finish(nil)
	}
	latest := ents[0]
	for _, en := range ents[1:] {
		if en.ModTime.After(latest.ModTime) {
			latest = en
		}
	}
	root, pm, allSums, err := e.readBackup(ctx, w, latest.ID)
	if err != nil {
		return finish(nil)
	}
	sums := Sums{}
	for _, s := range pm.Services {
		if s.Type != TypeFiles || types[s.Name] != TypeFiles {
			continue
		}
		// Checksums of files the cache lets kopia skip: the same path in the previous backup (directly, or
		// through the first pass, which used the previous backup as its cache).
		for p, v := range allSums {
			if serviceOf(p) == s.Name {
				sums[p] = v
			}
		}
		if taken[s.Name] {
			continue
		}
		ent, err := root.Child(ctx, s.Name)
		if err != nil {
			continue
		}
		h, ok := ent.(snapshot.HasDirEntry)
		if !ok {
			continue
		}
		b.AddEntry(h.DirEntry())
		n++
	}
	return finish(sums)
}

// readBackup reads the root, manifest and checksums of the snapshot with kopia manifest id.
func (e *Engine) readBackup(ctx context.Context, r repo.Repository, id manifest.ID) (fs.Directory, *Manifest, Sums, error) {
	man, err := snapshot.LoadSnapshot(ctx, r, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load snapshot: %w", err)
	}
	root, err := rootOf(r, man)
	if err != nil {
		return nil, nil, nil, err
	}
	pm, err := readManifest(ctx, root)
	if err != nil {
		return nil, nil, nil, err
	}
	sumsData, err := readRootFile(ctx, root, SumsFile)
	if err != nil {
		return nil, nil, nil, err
	}
	sums, err := ParseSums(sumsData)
	if err != nil {
		return nil, nil, nil, err
	}
	return root, pm, sums, nil
}

// firstPass is what the engine uploaded of the staged sources before the pause.
type firstPass struct {
	folders []*snapshot.DirEntry // one per staged service, named after it
	rec     *hashRecorder        // checksums of the files it read
	stored  int64                // bytes its write session uploaded (part of Manifest.StoredBytes)
}

// prestage uploads the live state of every staged source (outside the pause), so that the pins only re-read
// what changed since. Files that changed while being read are left out (their read fails); nothing here is
// saved as a snapshot, and what it wrote is collected by maintenance if the backup fails.
func (e *Engine) prestage(ctx context.Context, req BackupRequest, pinners []*pinner, p Progress) (*firstPass, error) {
	types := map[string]string{}
	var folders []fs.Entry
	rec := newHashRecorder(p)
	tot := &totals{p: p, m: map[string]int64{}}
	for _, pn := range pinners {
		types[pn.spec.Name] = pn.spec.Type
		if pn.stage == nil {
			continue
		}
		d, err := pn.stage.Folder(ctx, tot.forService(pn.spec.Name))
		if err != nil {
			return nil, &ServiceError{Op: "stage", Service: pn.spec.Name, Type: pn.spec.Type, Err: err}
		}
		folders = append(folders, namedDir{Directory: wrapHashing(d, pn.spec.Name, rec), name: pn.spec.Name})
	}
	if len(folders) == 0 {
		return nil, nil
	}
	pre := &firstPass{rec: rec}
	src := snapshot.SourceInfo{Host: kopiaHost, UserName: kopiaUser, Path: "/rewind-upload/" + req.ID + "-first"}
	var stored atomic.Int64
	err := repo.WriteSession(ctx, e.Repo.rep, repo.WriteSessionOptions{Purpose: "rewind first pass " + req.ID,
		OnUpload: func(n int64) { stored.Add(n) }},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			prevMan, _ := e.previousForCache(ctx, w, req.Environment, types, nil, nil)
			u := upload.NewUploader(w)
			u.FailFast = false
			u.DisableIgnoreRules = true
			u.ParallelUploads = e.parallel()
			u.Progress = &uploadProgress{p: p}
			polTree, err := e.uploadPolicy(ctx, w, src, types)
			if err != nil {
				return err
			}
			var prev []*snapshot.Manifest
			if prevMan != nil {
				prev = append(prev, prevMan)
			}
			stop := context.AfterFunc(ctx, u.Cancel)
			up, err := u.Upload(ctx, virtualfs.NewStaticDirectory("rewind", folders), polTree, src, prev...)
			stop()
			if ctx.Err() != nil {
				return fmt.Errorf("first pass: %w", ctx.Err())
			}
			if err != nil {
				return fmt.Errorf("first pass: %w", err)
			}
			root, err := rootOf(w, up)
			if err != nil {
				return err
			}
			if err := fs.IterateEntries(ctx, root, func(_ context.Context, ent fs.Entry) error {
				if h, ok := ent.(snapshot.HasDirEntry); ok && ent.IsDir() {
					pre.folders = append(pre.folders, h.DirEntry())
				}
				return nil
			}); err != nil {
				return fmt.Errorf("first pass: %w", err)
			}
			return deleteSource(ctx, w, src)
		})
	if err != nil {
		return nil, err //nolint:wrapcheck
	}
	pre.stored = stored.Load() // WriteSession has flushed: every upload of the first pass is counted
	return pre, nil
}

// dropPaths returns a copy of the directory de without the files at paths (slash-separated, relative to de),
// writing new listings only along those paths.
func dropPaths(ctx context.Context, w repo.RepositoryWriter, de *snapshot.DirEntry, paths []string) (*snapshot.DirEntry, error) {
	byName := map[string][]string{}
	for _, p := range paths {
		first, rest, _ := strings.Cut(p, "/")
		byName[first] = append(byName[first], rest)
	}
	rd, err := w.OpenObject(ctx, de.ObjectID)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", de.Name, err)
	}
	var dm snapshot.DirManifest
	err = json.NewDecoder(rd).Decode(&dm)
	rd.Close() //nolint:errcheck
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", de.Name, err)
	}
	var b snapshotfs.DirManifestBuilder
	for _, e := range dm.Entries {
		rests, hit := byName[e.Name]
		if !hit {
			b.AddEntry(e)
			continue
		}
		if e.Type != snapshot.EntryTypeDirectory {
			continue // the file itself: dropped
		}
		var sub []string
		for _, r := range rests {
			if r != "" {
				sub = append(sub, r)
			}
		}
		if len(sub) == 0 {
			b.AddEntry(e)
			continue
		}
		e2, err := dropPaths(ctx, w, e, sub)
		if err != nil {
			return nil, err
		}
		b.AddEntry(e2)
	}
	built := b.Build(de.ModTime, "")
	oid, err := snapshotfs.WriteDirManifest(ctx, w, de.Name, built, "")
	if err != nil {
		return nil, fmt.Errorf("write directory %s: %w", de.Name, err)
	}
	out := *de
	out.ObjectID = oid
	out.DirSummary = built.Summary
	return &out, nil
}

// sumService adds the uploaded folder de of one service to the root being built and the checksums of its files
// to sums: read in this upload, read in the first pass, known from the previous backup, or (rarely) read back
// from the repository.
func (e *Engine) sumService(ctx context.Context, w repo.RepositoryWriter, de *snapshot.DirEntry, m *Manifest,
	builder *snapshotfs.DirManifestBuilder, sums Sums, rec *hashRecorder, pre *firstPass, prevSums Sums,
) error {
	svc := de.Name
	if de.Type != snapshot.EntryTypeDirectory {
		return fmt.Errorf("upload root holds %q, not a service folder", svc)
	}
	sm := m.Service(svc)
	if sm == nil {
		return fmt.Errorf("upload root holds unknown service %q", svc)
	}
	builder.AddEntry(de)
	if de.DirSummary != nil {
		sm.Bytes = de.DirSummary.TotalFileSize
		sm.Files = int(de.DirSummary.TotalFileCount)
	}
	d, ok := snapshotfs.EntryFromDirEntry(w, de).(fs.Directory)
	if !ok {
		return fmt.Errorf("folder of service %q is not a directory", svc)
	}
	return fileEntries(ctx, d, svc, func(rel string, f fs.File, de *snapshot.DirEntry) error {
		if s, ok := rec.lookup(rel); ok && (de == nil || s.size == de.FileSize) {
			sums[rel] = s.sum
			return nil
		}
		if pre != nil {
			if s, ok := pre.rec.lookup(rel); ok && (de == nil || s.size == de.FileSize) {
				sums[rel] = s.sum
				return nil
			}
		}
		if s, ok := prevSums[rel]; ok {
			sums[rel] = s
			return nil
		}
		// neither read now nor known from the previous backup: hash it from the repository
		s, err := hashEntry(ctx, f)
		if err != nil {
			return fmt.Errorf("checksum %s: %w", rel, err)
		}
		sums[rel] = s.sum
		return nil
	})
}

// readListing reads a directory listing as stored in the repository.
func readListing(ctx context.Context, r repo.Repository, oid object.ID) ([]*snapshot.DirEntry, error) {
	rd, err := r.OpenObject(ctx, oid)
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", err)
	}
	defer rd.Close() //nolint:errcheck
	var dm snapshot.DirManifest
	if err := json.NewDecoder(rd).Decode(&dm); err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	return dm.Entries, nil
}
