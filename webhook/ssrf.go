package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// blocked are the networks a callback may not reach unless private
// addresses are allowed: loopback, private, link-local (cloud metadata at
// 169.254.169.254), CGNAT, unique-local, multicast, reserved and the
// documentation and benchmark ranges.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32",
		"2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Blocked reports whether ip is an address a callback may not reach
// (IPv4-mapped IPv6 addresses count as their IPv4 address).
func Blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range blocked {
		if p.Contains(ip) {
			return true
		}
	}
	return !ip.IsValid()
}

// ErrBlockedAddress is returned for a callback that leads to an internal
// address.
var ErrBlockedAddress = errors.New("the callback URL leads to a loopback, private, link-local or otherwise internal address")

// CheckURL checks a callback URL: http or https, a host, no user info, and,
// unless allowPrivate, a host that resolves only to public addresses. The
// dial is checked again when sending (Client), so that a DNS answer that
// changes later cannot get through.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "":
		return errors.New("the callback URL must be an absolute http(s) URL like https://example.com/hooks/keyq")
	case u.User != nil:
		return errors.New("the callback URL must not hold a user or password")
	case len(raw) > 2048:
		return errors.New("the callback URL must be at most 2048 bytes")
	case allowPrivate:
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if Blocked(ip) {
			return ErrBlockedAddress
		}
		return nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return ErrBlockedAddress
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("the callback URL's host %q does not resolve", host)
	}
	for _, ip := range ips {
		if Blocked(ip) {
			return ErrBlockedAddress
		}
	}
	return nil
}

// dialControl refuses connections to blocked addresses, after DNS: the
// address checked is the one dialled.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: cannot check address %q", address)
	}
	if Blocked(ap.Addr()) {
		return ErrBlockedAddress
	}
	return nil
}
