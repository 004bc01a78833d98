package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGenerateKeyParses(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey()
	require.NoError(t, err)
	require.Len(t, k.Prefix, 8)
	require.Len(t, k.Secret, 43)
	require.Equal(t, "tg_"+k.Prefix+"_"+k.Secret, k.Plaintext)
	require.Len(t, k.Plaintext, 55)
	for _, c := range k.Prefix {
		require.Contains(t, prefixAlphabet, string(c))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(k.Secret)
	require.NoError(t, err)
	require.Len(t, raw, 32, "256 random bits")
	sum := sha256.Sum256([]byte(k.Secret))
	require.Equal(t, sum[:], k.Hash)
	require.Equal(t, k.Hash, HashSecret(k.Secret))

	prefix, secret, ok := ParseKey(k.Plaintext)
	require.True(t, ok)
	require.Equal(t, k.Prefix, prefix)
	require.Equal(t, k.Secret, secret)
}

func TestGenerateKeyDistinct(t *testing.T) {
	t.Parallel()
	const n = 10_000
	prefixes := make(map[string]bool, n)
	secrets := make(map[string]bool, n)
	var counts [256]int
	for range n {
		k, err := GenerateKey()
		require.NoError(t, err)
		_, _, ok := ParseKey(k.Plaintext)
		require.True(t, ok, k.Plaintext)
		require.False(t, prefixes[k.Prefix], "duplicate prefix %s", k.Prefix)
		require.False(t, secrets[k.Secret], "duplicate secret")
		prefixes[k.Prefix] = true
		secrets[k.Secret] = true
		for i := 0; i < len(k.Prefix); i++ {
			counts[k.Prefix[i]]++
		}
	}
	// 80,000 characters over 36 symbols: about 2,222 each, with a standard
	// deviation of about 47. Modulo bias (b % 36 over all 256 bytes) would
	// give the first 4 symbols 2,500 each: outside ±230 (5 deviations), which
	// a fair draw leaves about once in 50,000 runs.
	for i := 0; i < len(prefixAlphabet); i++ {
		require.InDelta(t, n*8/len(prefixAlphabet), counts[prefixAlphabet[i]], 230, "symbol %c", prefixAlphabet[i])
	}
}

func TestParseKeyRejects(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey()
	require.NoError(t, err)
	good := k.Plaintext
	const (
		prefix = "abcd1234"
		secret = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn-_0" // 43 chars, canonical ending
	)
	_, _, ok := ParseKey("tg_" + prefix + "_" + secret)
	require.True(t, ok, "the reference key itself parses")
	_, _, ok = ParseKey("tg_" + prefix + "_" + strings.Repeat("_", 42) + "A")
	require.True(t, ok, "underscores and dashes are base64url characters of the secret")

	cases := map[string]string{
		"empty":                  "",
		"scheme only":            "tg_",
		"tg___":                  "tg___",
		"wrong scheme":           "tk_" + prefix + "_" + secret,
		"upper scheme":           "TG_" + prefix + "_" + secret,
		"no scheme":              prefix + "_" + secret,
		"no secret":              "tg_" + prefix + "_",
		"no prefix":              "tg__" + secret,
		"no separator":           "tg_" + prefix + secret,
		"dot separator":          "tg_" + prefix + "." + secret,
		"dots":                   "tg." + prefix + "." + secret,
		"dot in secret":          "tg_" + prefix + "_" + secret[:42] + ".",
		"dot in prefix":          "tg_abcd.234_" + secret,
		"underscore in prefix":   "tg_abcd_234_" + secret,
		"extra underscore":       "tg__" + prefix + secret,
		"short prefix":           "tg_abcd123_" + secret + "A",
		"long prefix":            "tg_abcd12345_" + secret[1:],
		"short secret":           "tg_" + prefix + "_" + secret[:42],
		"long secret":            "tg_" + prefix + "_" + secret + "A",
		"upper prefix":           "tg_ABCD1234_" + secret,
		"padded secret":          "tg_" + prefix + "_" + secret[:42] + "=",
		"plus in secret":         "tg_" + prefix + "_" + "+" + secret[1:],
		"slash in secret":        "tg_" + prefix + "_" + "/" + secret[1:],
		"space":                  "tg_" + prefix + "_" + secret[:42] + " ",
		"leading space":          " " + good,
		"trailing newline":       good + "\n",
		"non-canonical ending":   "tg_" + prefix + "_" + secret[:42] + "1",
		"non-ASCII":              "tg_" + prefix + "_" + secret[:41] + "é",
		"NUL":                    "tg_" + prefix + "_" + secret[:42] + "\x00",
		"64 KiB":                 strings.Repeat("a", 64<<10),
		"64 KiB after good":      good + strings.Repeat("A", 64<<10),
		"bearer":                 "Key " + good,
		"good key doubled":       good + good,
		"good key missing first": good[1:],
	}
	for name, s := range cases {
		p, sec, ok := ParseKey(s)
		require.False(t, ok, name)
		require.Empty(t, p, name)
		require.Empty(t, sec, name)
	}
}

func TestHashSecret(t *testing.T) {
	t.Parallel()
	h := HashSecret("s")
	require.Len(t, h, 32)
	require.False(t, bytes.Equal(h, HashSecret("t")))
}
