package db

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// ErrDecrypt reports a stored secret that the catalog key cannot open: the
// catalog was written with another secret.key, or the row was tampered with.
var ErrDecrypt = errors.New("cannot decrypt stored secret: is this the secret.key the catalog was created with?")

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("catalog key: got %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("catalog key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("catalog key: %w", err)
	}
	return aead, nil
}

// seal encrypts plain with a fresh random nonce; purpose is bound as
// additional data so a ciphertext cannot be moved to another kind of column.
func (db *DB) seal(purpose string, plain []byte) ([]byte, error) {
	nonce := make([]byte, db.aead.NonceSize(), db.aead.NonceSize()+len(plain)+db.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return db.aead.Seal(nonce, nonce, plain, []byte(purpose)), nil
}

func (db *DB) open(purpose string, sealed []byte) ([]byte, error) {
	n := db.aead.NonceSize()
	if len(sealed) < n+db.aead.Overhead() {
		return nil, ErrDecrypt
	}
	plain, err := db.aead.Open(nil, sealed[:n], sealed[n:], []byte(purpose))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}
