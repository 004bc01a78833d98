// Package identity proves who is calling: password hashes (argon2id), HS256
// session tokens with key rotation, API keys (tg_<prefix>_<secret>, only a
// SHA-256 of the secret stored), and the in-process views that make a
// check per request cheap: verified keys by prefix, users' current roles,
// revoked session ids. It knows nothing of storage: each cache reads
// through a function the caller wires to the catalog.
package identity
