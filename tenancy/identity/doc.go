// Package identity proves who is calling: password hashes (argon2id) and
// HS256 session tokens with key rotation. It knows nothing of storage; the
// router looks users up in the catalog and asks this package to check them.
package identity
