package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/tenantgate/tenantgate/tenancy"
)

// leeway forgives clock skew between replicas.
const leeway = 5 * time.Second

// Token issuer and audience: a token minted for anything else is refused.
const (
	Issuer   = "tenantgate"
	Audience = "tenantgate-api"
)

// Claims are what a session token carries.
type Claims struct {
	OrganizationID string       `json:"org"`
	Role           tenancy.Role `json:"role"`
	jwt.RegisteredClaims
}

// Tokens issues and verifies HS256 session tokens. The current secret signs;
// previous secrets still verify, so a secret can be rotated without logging
// everyone out. Each key is named by a kid derived from it.
type Tokens struct {
	current string
	keys    map[string][]byte
	ttl     time.Duration
	now     func() time.Time
	parser  *jwt.Parser
	// verified remembers tokens whose signature and claims passed, until
	// they expire: checking an HMAC and decoding claims on every request is
	// most of what authentication costs. Revocation is checked elsewhere,
	// on every request, cached or not.
	verified *lru.Cache[string, verifiedToken]
}

type verifiedToken struct {
	id       tenancy.Identity
	expires  time.Time
	notYetOK time.Time
}

// verifiedCacheSize bounds the verified-token cache (a few MB).
const verifiedCacheSize = 20_000

// NewTokens returns Tokens signing with secret and also accepting previous.
func NewTokens(secret string, previous []string, ttl time.Duration) (*Tokens, error) {
	if len(secret) < 32 {
		return nil, errors.New("identity: jwt_secret must be at least 32 bytes")
	}
	verified, err := lru.New[string, verifiedToken](verifiedCacheSize)
	if err != nil {
		return nil, err
	}
	t := &Tokens{current: kid(secret), keys: map[string][]byte{}, ttl: ttl, now: time.Now, verified: verified}
	t.keys[t.current] = []byte(secret)
	for _, p := range previous {
		if p != "" {
			t.keys[kid(p)] = []byte(p)
		}
	}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(Audience),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
	)
	return t, nil
}

func kid(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}

// Issue returns a signed token for the user and when it expires.
func (t *Tokens) Issue(u tenancy.User) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl)
	claims := Claims{
		OrganizationID: u.OrganizationID,
		Role:           u.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newID(),
		},
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = t.current
	signed, err := tok.SignedString(t.keys[t.current])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("identity: sign: %w", err)
	}
	return signed, exp, nil
}

// ErrInvalidToken covers every way a token can be refused; the reason is
// wrapped for logs, never shown to the client.
var ErrInvalidToken = errors.New("identity: invalid token")

// Verify checks a token's signature, algorithm, expiry, issuer and audience
// and returns the identity it proves.
func (t *Tokens) Verify(raw string) (tenancy.Identity, error) {
	if v, ok := t.verified.Get(raw); ok {
		now := t.now()
		if now.Before(v.expires) && !now.Before(v.notYetOK) {
			return v.id, nil
		}
		t.verified.Remove(raw)
	}
	id, c, err := t.verify(raw)
	if err != nil {
		return id, err
	}
	// The key is cloned: raw may be a view of a reused request buffer.
	nbf := time.Time{}
	if c.NotBefore != nil {
		nbf = c.NotBefore.Add(-leeway)
	}
	t.verified.Add(strings.Clone(raw), verifiedToken{id: id, expires: c.ExpiresAt.Add(leeway), notYetOK: nbf})
	return id, nil
}

func (t *Tokens) verify(raw string) (tenancy.Identity, *Claims, error) {
	var c Claims
	_, err := t.parser.ParseWithClaims(raw, &c, t.keyFor)
	if err != nil {
		return tenancy.Identity{}, nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || c.OrganizationID == "" || c.ID == "" {
		return tenancy.Identity{}, nil, fmt.Errorf("%w: missing sub, org or jti", ErrInvalidToken)
	}
	if _, err := tenancy.ParseRole(string(c.Role)); err != nil {
		return tenancy.Identity{}, nil, fmt.Errorf("%w: bad role", ErrInvalidToken)
	}
	return tenancy.Identity{UserID: c.Subject, OrganizationID: c.OrganizationID, Role: c.Role, TokenID: c.ID,
		ExpiresAt: c.ExpiresAt.Time}, &c, nil
}

func (t *Tokens) keyFor(tok *jwt.Token) (any, error) {
	id, _ := tok.Header["kid"].(string)
	key, ok := t.keys[id]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return key, nil
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
