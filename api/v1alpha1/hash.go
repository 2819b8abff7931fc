package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Hash returns the hex SHA-256 of the spec's canonical JSON encoding. An
// approval is bound to this value: any change to the spec changes it.
func (s *ProposalSpec) Hash() string {
	// encoding/json writes struct fields in declaration order and map keys
	// sorted, so the encoding is canonical for a given spec value.
	b, err := json.Marshal(s)
	if err != nil {
		// A ProposalSpec holds only JSON-safe types; apiextensions JSON values
		// were already validated when decoded.
		panic("v1alpha1: failed to encode proposal spec: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
