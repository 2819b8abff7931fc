package bus

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// pemAuditKey is the PEM block type of an audit key file.
const pemAuditKey = "PRIVATE KEY"

// ReadAuditKey reads an audit signing key: an ed25519 private key as PKCS #8
// PEM, as `openssl genpkey -algorithm ed25519` writes it.
func ReadAuditKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read the audit key: %w", err)
	}
	return ParseAuditKey(b)
}

// ParseAuditKey parses what ReadAuditKey reads.
func ParseAuditKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemAuditKey {
		return nil, errors.New("bus: the audit key is not a PEM \"PRIVATE KEY\"")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("bus: failed to parse the audit key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("bus: the audit key is a %T, not an ed25519 key", k)
	}
	return key, nil
}

// LoadOrCreateAuditKey reads the audit key at path, or creates one there
// (readable by its owner only) if there is none. The local stack keeps its
// key this way, so that its audit chain verifies across restarts.
func LoadOrCreateAuditKey(path string) (ed25519.PrivateKey, error) {
	key, err := ReadAuditKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate an audit key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the audit key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("failed to create the audit key's directory: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: pemAuditKey, Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the audit key: %w", err)
	}
	return key, nil
}
