package router

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// clientAddrOf runs clientAddr on a request from peer (an address:port)
// carrying one header line per value.
func clientAddrOf(t *testing.T, peer, header string, trusted []netip.Prefix, values ...string) string {
	t.Helper()
	var req fasthttp.Request
	for _, v := range values {
		req.Header.Add("X-Forwarded-For", v)
	}
	fctx := &fasthttp.RequestCtx{}
	fctx.Init(&req, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(peer)), nil)
	app := fiber.New()
	c := app.AcquireCtx(fctx)
	defer app.ReleaseCtx(c)
	return clientAddr(c, header, trusted)
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	const xff = "X-Forwarded-For"
	const proxy = "10.0.0.2:40000" // a trusted peer: the ingress
	var chain []string             // 20 trusted hops: 10.0.1.1 … 10.0.1.20
	for i := range 20 {
		chain = append(chain, netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}).String())
	}
	long := strings.Repeat("203.0.113.9, ", 100) + "203.0.113.5" // 1.3 KiB

	for _, tc := range []struct {
		name, peer, header string
		trusted            []netip.Prefix
		values             []string
		want               string
	}{
		{name: "no header configured: the peer", peer: "203.0.113.7:5555", header: "", values: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "no header configured, IPv6 peer", peer: "[2001:db8::7]:5555", header: "", want: "2001:db8::7"},
		{name: "untrusted peer: header ignored", peer: "198.51.100.9:1234", header: xff, values: []string{"203.0.113.5"}, want: "198.51.100.9"},
		{name: "untrusted IPv6 peer: header ignored", peer: "[2001:db8:1::9]:1234", header: xff, values: []string{"203.0.113.5"}, want: "2001:db8:1::9"},
		{name: "no trusted prefixes: header ignored", peer: proxy, header: xff, trusted: []netip.Prefix{}, values: []string{"203.0.113.5"}, want: "10.0.0.2"},
		{name: "trusted peer, one address", peer: proxy, header: xff, values: []string{"203.0.113.5"}, want: "203.0.113.5"},
		{name: "header absent", peer: proxy, header: xff, want: "10.0.0.2"},
		{name: "header empty", peer: proxy, header: xff, values: []string{""}, want: "10.0.0.2"},
		{name: "spoofed left-most entry", peer: proxy, header: xff, values: []string{"6.6.6.6, 203.0.113.5"}, want: "203.0.113.5"},
		{name: "spoofed entries behind trusted hops", peer: proxy, header: xff,
			values: []string{"6.6.6.6, 7.7.7.7,203.0.113.5, 10.0.0.3,\t10.1.2.3"}, want: "203.0.113.5"},
		{name: "spoofed trusted-looking entry left of the client", peer: proxy, header: xff,
			values: []string{"10.9.9.9, 203.0.113.5, 10.0.0.3"}, want: "203.0.113.5"},
		{name: "every entry trusted: the left-most", peer: proxy, header: xff, values: []string{"10.9.9.9, 10.0.0.3"}, want: "10.9.9.9"},
		{name: "the client's own line, then the proxy's line", peer: proxy, header: xff,
			values: []string{"6.6.6.6", "203.0.113.5"}, want: "203.0.113.5"},
		{name: "malformed right-most entry: the peer", peer: proxy, header: xff, values: []string{"203.0.113.5, bogus"}, want: "10.0.0.2"},
		{name: "malformed entry: the last trusted hop seen", peer: proxy, header: xff,
			values: []string{"203.0.113.5, unknown, 10.0.0.3"}, want: "10.0.0.3"},
		{name: "empty entry is malformed", peer: proxy, header: xff, values: []string{"203.0.113.5,,10.0.0.3"}, want: "10.0.0.3"},
		{name: "IPv4 with a port", peer: proxy, header: xff, values: []string{"203.0.113.5:5678"}, want: "203.0.113.5"},
		{name: "IPv4 with a bad port", peer: proxy, header: xff, values: []string{"203.0.113.5:99999"}, want: "10.0.0.2"},
		{name: "IPv4 with an empty port", peer: proxy, header: xff, values: []string{"203.0.113.5:"}, want: "10.0.0.2"},
		{name: "IPv4 in brackets", peer: proxy, header: xff, values: []string{"[203.0.113.5]:80"}, want: "10.0.0.2"},
		{name: "a host name", peer: proxy, header: xff, values: []string{"client.example"}, want: "10.0.0.2"},
		{name: "IPv4 leading zeros", peer: proxy, header: xff, values: []string{"203.000.113.005"}, want: "10.0.0.2"},
		{name: "IPv6", peer: proxy, header: xff, values: []string{"2001:db8::abcd"}, want: "2001:db8::abcd"},
		{name: "IPv6 in brackets with a port", peer: proxy, header: xff, values: []string{"[2001:db8::abcd]:443"}, want: "2001:db8::abcd"},
		{name: "IPv6 in brackets", peer: proxy, header: xff, values: []string{"[2001:db8::abcd]"}, want: "2001:db8::abcd"},
		{name: "IPv6 in brackets, junk after", peer: proxy, header: xff, values: []string{"[2001:db8::abcd]x"}, want: "10.0.0.2"},
		{name: "IPv6 unclosed bracket", peer: proxy, header: xff, values: []string{"[2001:db8::abcd"}, want: "10.0.0.2"},
		{name: "IPv6 canonical form", peer: proxy, header: xff, values: []string{"2001:0DB8:0000:0000::ABCD"}, want: "2001:db8::abcd"},
		{name: "IPv6 zone dropped", peer: proxy, header: xff, values: []string{"fe80::1%eth0"}, want: "fe80::1"},
		{name: "IPv4-mapped IPv6 is IPv4", peer: proxy, header: xff, values: []string{"::ffff:203.0.113.5"}, want: "203.0.113.5"},
		{name: "IPv6 peer and trusted IPv6 hop", peer: "[2001:db8:ffff::1]:443", header: xff,
			values: []string{"6.6.6.6, 2001:db8:1::5, [2001:db8:ffff::2]:8443"}, want: "2001:db8:1::5"},
		{name: "IPv4-mapped peer matches IPv4 prefixes", peer: "[::ffff:10.0.0.2]:40000", header: xff,
			values: []string{"203.0.113.5"}, want: "203.0.113.5"},
		{name: "header over the cap: the peer", peer: proxy, header: xff, values: []string{long}, want: "10.0.0.2"},
		{name: "lines over the cap together: the peer", peer: proxy, header: xff,
			values: []string{long[:600], long[600:]}, want: "10.0.0.2"},
		{name: "more hops than examined: the left-most examined", peer: proxy, header: xff,
			values: []string{"203.0.113.5, " + strings.Join(chain, ", ")}, want: chain[len(chain)-maxProxyHops]},
		{name: "hops within the cap", peer: proxy, header: xff,
			values: []string{"203.0.113.5, " + strings.Join(chain[:maxProxyHops-1], ", ")}, want: "203.0.113.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := trusted
			if tc.trusted != nil {
				tr = tc.trusted
			}
			require.Equal(t, tc.want, clientAddrOf(t, tc.peer, tc.header, tr, tc.values...))
		})
	}
}

func FuzzForwardedClient(f *testing.F) {
	for _, seed := range []string{"", "1.2.3.4", "6.6.6.6, 10.0.0.1", "[::1]:1,", ",,,", "[", "[]:", "1.2.3.4:0", "::ffff:1.2.3.4%x"} {
		f.Add(seed)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peer := netip.MustParseAddr("10.0.0.2")
	f.Fuzz(func(t *testing.T, list string) {
		got := forwardedClient(peer, list, trusted)
		require.True(t, got.IsValid())
		require.Empty(t, got.Zone())
		require.False(t, got.Is4In6())
	})
}
