package backup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Scratch state is what an operation makes beside the live data of a service and removes when it ends: a
// staged copy of changed files, a restored database or directory waiting for its switch. Sources put the
// operation's scratch id into the names of these, so that after a crash (kill -9, power loss) Sweep can find
// and remove exactly what that operation left, and nothing of another operation running beside it.

type scratchKey struct{}

// WithScratch returns ctx carrying the scratch id of operation (a backup id, a restore's
// RestoreRequest.Scratch); the engine sets it, and tests that drive a Source directly.
func WithScratch(ctx context.Context, operation string) context.Context {
	return context.WithValue(ctx, scratchKey{}, scratchID(operation))
}

func scratchID(operation string) string {
	sum := sha256.Sum256([]byte(operation))
	return hex.EncodeToString(sum[:8])
}

// ScratchID returns the id a source puts into the names of the scratch state it makes for the operation ctx
// belongs to: 16 lowercase hex characters. Outside an engine operation it is random.
func ScratchID(ctx context.Context) string {
	if id, ok := ctx.Value(scratchKey{}).(string); ok {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Sweeper is a Source that can remove the scratch state an operation with the given scratch id left behind.
// It removes only state that no switch can have put in use (a prepared copy, a stage), never the live state
// or what a switch moved aside, and returns a description of each thing removed ("database shop_rewind_…").
// The caller must know that the operation is no longer running and never started switching: after an
// exchange of directories, the prepared directory's name holds the replaced tree.
type Sweeper interface {
	Sweep(ctx context.Context, scratchID string) (removed []string, err error)
}

// Sweep removes what the operation (a backup id, or the Scratch of a restore) left beside the live data of
// services when it was cut off before any switch. It tries every service and returns what it removed; the
// error joins the failures, each naming its service.
func (e *Engine) Sweep(ctx context.Context, operation string, services []ServiceSpec) ([]string, error) {
	id := scratchID(operation)
	var removed []string
	var errs []error
	for _, spec := range services {
		src, err := e.source(spec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sw, ok := src.(Sweeper)
		if !ok {
			continue
		}
		r, err := sw.Sweep(ctx, id)
		for _, what := range r {
			removed = append(removed, fmt.Sprintf("%s of service %s", what, spec.Name))
		}
		if err != nil {
			errs = append(errs, &ServiceError{Op: "sweep", Service: spec.Name, Type: spec.Type, Err: err})
		}
	}
	return removed, errors.Join(errs...)
}
