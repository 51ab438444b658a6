package db

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters (OWASP's recommended minimum: 19 MiB, 2 passes, 1
// lane). They are written into every hash, so raising them later still
// verifies old hashes.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 8

// HashPassword returns an argon2id hash of pw in the PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return currentHashPrefix() + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key), nil
}

// currentHashPrefix is how a hash made with the current parameters starts.
func currentHashPrefix() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$", argon2.Version, argonMemory, argonTime, argonThreads)
}

// CheckPassword reports whether pw matches hash (from HashPassword). It
// compares in constant time and returns false for a malformed hash.
func CheckPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	var memory, time uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &time, &threads); err != nil {
		return false
	}
	// Refuse absurd parameters from a tampered row instead of allocating them.
	if memory == 0 || memory > 1<<21 || time == 0 || time > 100 || threads == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, time, memory, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked against when no user matches, so a wrong email costs
// as much time as a wrong password.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Jk2lDL3Q0u0GQm0H8X4gD1ZC1nHFl6p1fIqyYJvD6tU"

func validatePassword(ve *ValidationError, pw string) {
	switch {
	case pw == "":
		ve.add("password", "password is required")
	case len([]rune(pw)) < MinPasswordLength:
		ve.add("password", fmt.Sprintf("password is too short: use at least %d characters", MinPasswordLength))
	case len(pw) > 1024:
		ve.add("password", "password is too long: use at most 1024 bytes")
	}
}
