package backup

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// ManifestFile is the name of the backup's manifest at the root of its snapshot.
const ManifestFile = "rewind.json"

// ManifestFormat is the version of rewind.json this code writes; it reads this one and older.
const ManifestFormat = 1

// Backup kinds.
const (
	KindManual     = "manual"
	KindAutomated  = "automated"
	KindPreRestore = "pre-restore"
	KindDrill      = "drill"
)

// Manifest is rewind.json: everything needed to list a backup and rebuild the catalog from the repository.
type Manifest struct {
	Format      int    `json:"format"`
	ID          string `json:"id"` // 20 lowercase hex characters
	Environment string `json:"environment"`
	Kind        string `json:"kind"`
	Live        bool   `json:"live"`
	Commit      string `json:"commit,omitempty"` // git commit of the environment's code, when known
	// RestoredFrom is, for a pre-restore backup, the id of the backup whose restore replaced this state.
	RestoredFrom string `json:"restored_from,omitempty"`

	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at"`
	Pause      time.Duration `json:"pause_ns"` // how long requests were held (0 for a live backup)

	Services []ServiceManifest `json:"services"`
	Bytes    int64             `json:"bytes"` // sum of the services' bytes

	// StoredBytes is what this backup added to the repository ("new bytes stored"): the bytes its own kopia
	// write sessions uploaded to the storage (the first pass's and the backup's), i.e. the packs of contents
	// the repository did not hold yet, after deduplication, compression and encryption, plus their index blobs
	// and session markers. It is counted per session (kopia's OnUpload), so backups running at the same time
	// each count only what they wrote themselves and their figures add up to the repository's growth. It is
	// what the backup cost when taken: maintenance may later pack it tighter, and deleting the backup frees
	// only what no other backup shares.
	//
	// Backup and BackupReplaced return the full count. rewind.json cannot hold its own size: it stores the count
	// taken just before it is written, which leaves out rewind.json, the root listing and the snapshot manifest,
	// so a manifest read back (FindBackup, ListBackups, a catalog rebuild) says up to about 10 KB less.
	// 0 in manifests written before it was recorded.
	StoredBytes int64 `json:"stored_bytes"`

	// Snapshot is the kopia snapshot manifest id; filled when read, never stored in rewind.json.
	Snapshot string `json:"-"`
}

// ServiceManifest is one service of a backup.
type ServiceManifest struct {
	Name        string        `json:"name"`
	Type        string        `json:"type"`
	Version     string        `json:"version,omitempty"`
	PinnedAt    time.Time     `json:"pinned_at"`
	PinDuration time.Duration `json:"pin_ns"`
	Bytes       int64         `json:"bytes"`
	Files       int           `json:"files"`
	SHA256      string        `json:"sha256"` // SHA-256 of the service's lines of SHA256SUMS
	// Summary is what the service held (tables and rows, keys per database) for restore previews; nil for
	// files services (their tree is in the snapshot), for types without one, and in backups taken before it
	// was recorded.
	Summary *Summary `json:"summary,omitempty"`
	// Path is, for a files service, the sub-tree of the mount its folder holds (ServiceSpec.Sub): set in the
	// pre-restore backup of a partial restore, whose restore (the undo) puts back that sub-tree only. "" is
	// the whole mount.
	Path string `json:"path,omitempty"`
	// Entry says that Path names a single file or symlink (ServiceSpec.Entry): the folder is Path's directory
	// holding that entry alone, or nothing when it was absent.
	Entry bool `json:"entry,omitempty"`
}

// Service returns the service named name, or nil.
func (m *Manifest) Service(name string) *ServiceManifest {
	for i := range m.Services {
		if m.Services[i].Name == name {
			return &m.Services[i]
		}
	}
	return nil
}

var (
	idPattern   = regexp.MustCompile(`^[0-9a-f]{20}$`)
	slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	sumPattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// NewID returns a fresh backup id: 20 random lowercase hex characters.
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (it panics rather)
	return hex.EncodeToString(b[:])
}

// ValidID reports whether id looks like a backup id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// ValidServiceName reports whether name can be a service (and thus a folder of a backup).
func ValidServiceName(name string) bool { return slugPattern.MatchString(name) }

// ErrInvalidManifest is wrapped by every ParseManifest error.
var ErrInvalidManifest = errors.New("invalid backup manifest")

// ParseManifest parses and validates rewind.json. Unknown fields are ignored (newer writers may add some).
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the fields the engine relies on.
func (m *Manifest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidManifest, fmt.Sprintf(format, a...))
	}
	switch {
	case m.Format < 1 || m.Format > ManifestFormat:
		return bad("unsupported format %d", m.Format)
	case !ValidID(m.ID):
		return bad("id %q is not 20 lowercase hex characters", m.ID)
	case !slugPattern.MatchString(m.Environment):
		return bad("environment %q is not a slug", m.Environment)
	case m.RestoredFrom != "" && !ValidID(m.RestoredFrom):
		return bad("restored_from %q is not a backup id", m.RestoredFrom)
	case m.Pause < 0:
		return bad("negative pause")
	case m.StoredBytes < 0:
		return bad("negative stored bytes")
	}
	switch m.Kind {
	case KindManual, KindAutomated, KindPreRestore, KindDrill:
	default:
		return bad("unknown kind %q", m.Kind)
	}
	seen := map[string]bool{}
	for _, s := range m.Services {
		switch {
		case !ValidServiceName(s.Name):
			return bad("service name %q is not a slug", s.Name)
		case seen[s.Name]:
			return bad("service %q listed twice", s.Name)
		case !slugPattern.MatchString(s.Type):
			return bad("service %q has type %q", s.Name, s.Type)
		case !sumPattern.MatchString(s.SHA256):
			return bad("service %q has no sha256", s.Name)
		case s.Bytes < 0 || s.Files < 0 || s.PinDuration < 0:
			return bad("service %q has negative sizes", s.Name)
		case s.Entry && s.Path == "":
			return bad("service %q holds a single entry without a path", s.Name)
		case s.Path != "" && (s.Type != TypeFiles || !cleanSubPath(s.Path)):
			return bad("service %q has path %q: only a files service holds a sub-tree, named by a clean relative path", s.Name, s.Path)
		}
		seen[s.Name] = true
	}
	return nil
}

// Marshal returns rewind.json.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}
