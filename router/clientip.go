package router

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

const (
	// maxProxyHeader caps the header value read (all its lines together):
	// a longer one is ignored, and the peer is the client. Real chains are
	// a handful of addresses; a kilobyte is dozens.
	maxProxyHeader = 1024
	// maxProxyHops caps the entries examined from the right: past it the
	// walk stops at the left-most one examined, as if that were the whole
	// chain.
	maxProxyHops = 16
)

// clientAddr is the address of the client that sent the request, as login
// throttling, signup limits and logs key on it.
//
// With header empty it is the connection's remote address (the peer).
// Otherwise header names a list of addresses in X-Forwarded-For style,
// each proxy appending the address it received the request from, and it
// is believed only as far as trusted proxies wrote it:
//   - the header is ignored unless the peer is inside a trusted prefix (a
//     client talking to the gateway directly can write anything there);
//   - the list is walked from the right, skipping addresses inside trusted
//     prefixes: the client is the right-most one that is not. Entries to
//     its left were written by the client itself and are not believed;
//   - if every entry is trusted, the left-most is the client;
//   - an entry that does not parse ends the walk: whoever wrote it is not
//     a proxy we know, so nothing left of it can be trusted either, and
//     the answer is the last trusted hop seen (or the peer);
//   - a value over maxProxyHeader is ignored (the peer is the answer), and
//     at most maxProxyHops entries are examined.
//
// Several header lines count as one list joined by commas, in order (RFC
// 9110 §5.3): a proxy that adds a line of its own instead of appending to
// the client's must not leave the client's line to be read alone. Entries
// may carry a port ("1.2.3.4:5678", "[2001:db8::1]:443"); IPv4-mapped IPv6
// addresses are read as IPv4 and zones are dropped, so the same client
// always gets the same string: netip.Addr's canonical form.
func clientAddr(c *fiber.Ctx, header string, trusted []netip.Prefix) string {
	ip := c.Context().RemoteIP()
	peer, ok := netip.AddrFromSlice(ip)
	if !ok {
		return ip.String()
	}
	peer = canonical(peer)
	if header == "" || !inPrefixes(peer, trusted) {
		return peer.String()
	}
	lines := c.Request().Header.PeekAll(header)
	n := len(lines) - 1 // the commas joining them
	for _, l := range lines {
		n += len(l)
	}
	if len(lines) == 0 || n > maxProxyHeader {
		return peer.String()
	}
	var value strings.Builder
	value.Grow(n)
	for i, l := range lines {
		if i > 0 {
			value.WriteByte(',')
		}
		value.Write(l)
	}
	return forwardedClient(peer, value.String(), trusted).String()
}

// forwardedClient walks list (one header value, at most maxProxyHeader
// bytes) from the right as clientAddr describes; peer is trusted.
func forwardedClient(peer netip.Addr, list string, trusted []netip.Prefix) netip.Addr {
	client := peer // the last trusted hop seen
	rest := list
	for range maxProxyHops {
		i := strings.LastIndexByte(rest, ',') // -1: rest is the left-most entry
		a, ok := parseHop(rest[i+1:])
		if !ok {
			return client
		}
		if !inPrefixes(a, trusted) {
			return a
		}
		client = a
		if i < 0 {
			break
		}
		rest = rest[:i]
	}
	return client
}

// parseHop reads one list entry: an address, optionally with a port
// ("1.2.3.4:5678", "[2001:db8::1]:443", "[2001:db8::1]"), between optional
// spaces or tabs.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	if a, err := netip.ParseAddr(s); err == nil {
		return canonical(a), true // IPv4, or IPv6 without brackets (so without a port)
	}
	if strings.HasPrefix(s, "[") { // [IPv6] or [IPv6]:port
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		if rest := s[end+1:]; rest != "" {
			port, ok := strings.CutPrefix(rest, ":")
			if !ok || !validPort(port) {
				return netip.Addr{}, false
			}
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return canonical(a), true
	}
	host, port, found := strings.Cut(s, ":") // IPv4:port
	if !found || !validPort(port) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// validPort reports whether s is a port number, 1-65535, in decimal digits.
func validPort(s string) bool {
	if s == "" || len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

// canonical drops a zone and reads an IPv4-mapped IPv6 address as IPv4, so
// that one client is one string and IPv4 prefixes match it.
func canonical(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

func inPrefixes(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
