package approvals

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Call is the exact call an approval is bound to.
type Call struct {
	User     string
	Agent    string
	Tenant   string
	Resource string
	// Action is the MCP tool name, or the action for calls that are not MCP.
	Action string
	// ArgumentsSHA256 is the lowercase hex SHA-256 of the arguments in
	// RFC 8785 canonical JSON; empty when the call has no arguments.
	ArgumentsSHA256 string
	// DecisionID names the decision this call belongs to. It is reported on
	// events and is not part of the fingerprint.
	DecisionID string
	// Arguments is the arguments' RFC 8785 canonical JSON, kept so that
	// approvers see exactly what they approve. It is not fingerprinted
	// (ArgumentsSHA256 is, and must be its digest).
	Arguments string
}

// fingerprintDomain separates approval fingerprints from any other SHA-256
// writ computes, and versions the encoding.
const fingerprintDomain = "writ approval fingerprint v1"

// Fingerprint returns the lowercase hex SHA-256 that identifies c: the
// domain string and then User, Agent, Tenant, Resource, Action and
// ArgumentsSHA256, each preceded by its length as a big-endian uint64, so no
// two different calls share an encoding. DecisionID is not included.
func Fingerprint(c Call) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range []string{fingerprintDomain, c.User, c.Agent, c.Tenant, c.Resource, c.Action, c.ArgumentsSHA256} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c Call) validate() error {
	if c.User == "" && c.Agent == "" {
		return fmt.Errorf("%w: neither user nor agent", ErrInvalidCall)
	}
	if c.ArgumentsSHA256 == "" {
		return nil
	}
	if len(c.ArgumentsSHA256) != 2*sha256.Size {
		return fmt.Errorf("%w: arguments digest is not 64 hex digits", ErrInvalidCall)
	}
	for _, r := range c.ArgumentsSHA256 {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return fmt.Errorf("%w: arguments digest is not lowercase hex", ErrInvalidCall)
		}
	}
	return nil
}
