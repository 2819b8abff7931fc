package bus

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
)

// Attempt tokens. NATS does not tell a subscriber who published a message,
// so besides the NATS permissions (only the controller may publish shim
// requests) every shim request carries a token the controller signed with
// its nkey. The shim verifies it against the public keys it trusts, and
// checks that it was issued for this cluster, node, verb and these exact
// parameters, and that it has not expired. A request with a token the shim
// cannot verify is refused; a captured token replays nothing, because the
// shim's ledger records each attempt and a token is bound to one request
// and lives for minutes.
//
// The token is three base64url fields joined by '.': the claims as JSON, the
// ed25519 signature of those bytes, and the signer's public nkey.

// MaxAttemptLifetime bounds how long an attempt token is valid.
const MaxAttemptLifetime = 15 * time.Minute

// attemptClockSkew is how far in the future a token's issue time may be.
const attemptClockSkew = time.Minute

// ErrAttempt is wrapped by every error VerifyAttempt returns.
var ErrAttempt = errors.New("bus: attempt token not verified")

// AttemptClaims is what an attempt token asserts.
type AttemptClaims struct {
	// ID names the attempt. It stays the same when the controller sends
	// the same request again, so the shim can tell a retry from a new
	// action: for example "<proposal UID>/apply/1".
	ID string `json:"id"`
	// Proposal is the proposal the attempt belongs to, "<namespace>/<name>",
	// for the record.
	Proposal string `json:"proposal,omitempty"`
	Cluster  string `json:"cluster"`
	Node     string `json:"node"`
	Verb     string `json:"verb"`
	// Params is ShimRequest.ParamsDigest of the request.
	Params    string    `json:"params"`
	IssuedAt  time.Time `json:"iat"`
	ExpiresAt time.Time `json:"exp"`
}

// SignAttempt signs claims with kp, the controller's nkey.
func SignAttempt(kp nkeys.KeyPair, claims AttemptClaims) (string, error) {
	if err := claims.validate(); err != nil {
		return "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("failed to read the signing key's public key: %w", err)
	}
	payload, err := marshal(claims)
	if err != nil {
		return "", fmt.Errorf("failed to encode attempt claims: %w", err)
	}
	sig, err := kp.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("failed to sign attempt claims: %w", err)
	}
	enc := base64.RawURLEncoding
	token := enc.EncodeToString(payload) + "." + enc.EncodeToString(sig) + "." + pub
	if len(token) > MaxAttemptTokenSize {
		return "", fmt.Errorf("%w: token of %d bytes exceeds %d", ErrAttempt, len(token), MaxAttemptTokenSize)
	}
	return token, nil
}

// VerifyAttempt checks that token was signed by one of the trusted public
// nkeys, is valid at now, and returns its claims. The caller checks that
// the claims match its request (AttemptClaims.Matches).
func VerifyAttempt(token string, trusted []string, now time.Time) (AttemptClaims, error) {
	if len(token) > MaxAttemptTokenSize {
		return AttemptClaims{}, fmt.Errorf("%w: longer than %d bytes", ErrAttempt, MaxAttemptTokenSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return AttemptClaims{}, fmt.Errorf("%w: not a token (want claims.signature.key)", ErrAttempt)
	}
	if !slices.Contains(trusted, parts[2]) {
		return AttemptClaims{}, fmt.Errorf("%w: signed by %q, which this shim does not trust", ErrAttempt, clip(parts[2]))
	}
	pub, err := nkeys.FromPublicKey(parts[2])
	if err != nil {
		return AttemptClaims{}, fmt.Errorf("%w: bad signer key: %w", ErrAttempt, err)
	}
	enc := base64.RawURLEncoding
	payload, err := enc.DecodeString(parts[0])
	if err != nil {
		return AttemptClaims{}, fmt.Errorf("%w: bad claims encoding: %w", ErrAttempt, err)
	}
	sig, err := enc.DecodeString(parts[1])
	if err != nil {
		return AttemptClaims{}, fmt.Errorf("%w: bad signature encoding: %w", ErrAttempt, err)
	}
	if err := pub.Verify(payload, sig); err != nil {
		return AttemptClaims{}, fmt.Errorf("%w: bad signature", ErrAttempt)
	}
	var claims AttemptClaims
	if err := decodeStrict(payload, &claims); err != nil {
		return AttemptClaims{}, fmt.Errorf("%w: %w", ErrAttempt, err)
	}
	if err := claims.validate(); err != nil {
		return AttemptClaims{}, err
	}
	switch {
	case now.Before(claims.IssuedAt.Add(-attemptClockSkew)):
		return AttemptClaims{}, fmt.Errorf("%w: issued in the future (%s)", ErrAttempt, claims.IssuedAt.Format(time.RFC3339))
	case !now.Before(claims.ExpiresAt):
		return AttemptClaims{}, fmt.Errorf("%w: expired at %s", ErrAttempt, claims.ExpiresAt.Format(time.RFC3339))
	}
	return claims, nil
}

// Matches checks that the claims were issued for r.
func (c AttemptClaims) Matches(r *ShimRequest) error {
	digest, err := r.ParamsDigest()
	if err != nil {
		return err
	}
	switch {
	case c.Cluster != r.Cluster, c.Node != r.Node:
		return fmt.Errorf("%w: issued for %s/%s, not %s/%s", ErrAttempt, clip(c.Cluster), clip(c.Node), clip(r.Cluster), clip(r.Node))
	case c.Verb != r.Verb:
		return fmt.Errorf("%w: issued for %s, not %s", ErrAttempt, clip(c.Verb), clip(r.Verb))
	case c.Params != digest:
		return fmt.Errorf("%w: issued for other parameters", ErrAttempt)
	}
	return nil
}

func (c AttemptClaims) validate() error {
	switch {
	case c.ID == "" || len(c.ID) > maxIDLen:
		return fmt.Errorf("%w: the attempt ID must have 1 to %d bytes", ErrAttempt, maxIDLen)
	case len(c.Proposal) > maxNameLen*2:
		return fmt.Errorf("%w: proposal longer than %d bytes", ErrAttempt, maxNameLen*2)
	case c.Cluster == "" || c.Node == "" || c.Verb == "" || c.Params == "":
		return fmt.Errorf("%w: cluster, node, verb and params are required", ErrAttempt)
	case c.IssuedAt.IsZero() || c.ExpiresAt.IsZero():
		return fmt.Errorf("%w: issue and expiry times are required", ErrAttempt)
	case !c.ExpiresAt.After(c.IssuedAt):
		return fmt.Errorf("%w: expires before it is issued", ErrAttempt)
	case c.ExpiresAt.Sub(c.IssuedAt) > MaxAttemptLifetime:
		return fmt.Errorf("%w: lives longer than %s", ErrAttempt, MaxAttemptLifetime)
	}
	for i := range len(c.ID) {
		if c.ID[i] <= ' ' || c.ID[i] > '~' {
			return fmt.Errorf("%w: the attempt ID must be printable ASCII without spaces", ErrAttempt)
		}
	}
	return nil
}
