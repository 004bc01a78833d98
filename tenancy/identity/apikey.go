package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// API keys look like tg_<prefix>_<secret> (CONTRACT §3). The prefix names the
// key in the catalog and in listings; the secret is 32 random bytes in
// unpadded base64url (256 bits, DESIGN asks for at least 128).
const (
	keyScheme     = "tg_"
	keyPrefixLen  = 8
	keySecretLen  = 43 // base64.RawURLEncoding.EncodedLen(keySecretSize)
	keySecretSize = 32
	keyLen        = len(keyScheme) + keyPrefixLen + 1 + keySecretLen
)

// prefixAlphabet is what a key prefix is made of.
const prefixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// prefixByteLimit is the largest multiple of len(prefixAlphabet) that fits a
// byte: random bytes at or above it are thrown away, because keeping them
// (b % 36 over 0..255) would make the first letters more likely than the rest.
const prefixByteLimit = 256 - 256%len(prefixAlphabet)

// NewKey is a freshly generated API key. Plaintext is the whole tg_… string:
// it is shown to its owner once and never stored; the catalog keeps Prefix
// and Hash.
type NewKey struct {
	Prefix, Secret, Plaintext string
	Hash                      []byte
}

// GenerateKey returns a new random API key.
func GenerateKey() (NewKey, error) {
	prefix, err := randomPrefix()
	if err != nil {
		return NewKey{}, err
	}
	raw := make([]byte, keySecretSize)
	if _, err := rand.Read(raw); err != nil {
		return NewKey{}, fmt.Errorf("identity: key secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	return NewKey{
		Prefix:    prefix,
		Secret:    secret,
		Plaintext: keyScheme + prefix + "_" + secret,
		Hash:      HashSecret(secret),
	}, nil
}

func randomPrefix() (string, error) {
	var out [keyPrefixLen]byte
	var buf [16]byte // 36/256 of bytes are rejected: 16 almost always suffice
	for n := 0; n < len(out); {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("identity: key prefix: %w", err)
		}
		for _, b := range buf {
			if int(b) >= prefixByteLimit {
				continue
			}
			out[n] = prefixAlphabet[int(b)%len(prefixAlphabet)]
			if n++; n == len(out) {
				break
			}
		}
	}
	return string(out[:]), nil
}

// ParseKey splits an API key into its prefix and secret. It is strict: the
// scheme, both lengths, both character sets and the secret's canonical
// base64url ending are checked, and anything else is !ok. The results are
// views of s, not copies.
func ParseKey(s string) (prefix, secret string, ok bool) {
	if len(s) != keyLen || !strings.HasPrefix(s, keyScheme) || s[len(keyScheme)+keyPrefixLen] != '_' {
		return "", "", false
	}
	prefix = s[len(keyScheme) : len(keyScheme)+keyPrefixLen]
	secret = s[len(keyScheme)+keyPrefixLen+1:]
	for i := 0; i < len(prefix); i++ {
		if c := prefix[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return "", "", false
		}
	}
	for i := 0; i < len(secret); i++ {
		if base64URLValue(secret[i]) < 0 {
			return "", "", false
		}
	}
	// 43 characters carry 258 bits for 256: the last one's two low bits are
	// zero in the one encoding of 32 bytes that GenerateKey can produce.
	if base64URLValue(secret[len(secret)-1])&3 != 0 {
		return "", "", false
	}
	return prefix, secret, true
}

// base64URLValue returns c's value in the base64url alphabet, or -1.
func base64URLValue(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// HashSecret returns the SHA-256 of a key's secret, the only form of it that
// is stored. A fast hash is right here: the secret has 256 random bits, so
// nothing is gained by slowing guesses, and a slow hash per request would
// cap throughput (DESIGN, Traps).
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
