package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DHCP leases of the coordinator's own DHCP server (full mode).
//
// A lease is two plain string keys that expire together:
//
//	ingot:lease:mac:{mac}  → the address ("192.0.2.10")
//	ingot:lease:ip:{addr}  → the owner's MAC ("52:54:00:12:34:56")
//
// both written by one script with the same PX, so a lease disappears by
// itself when it runs out and a restarted coordinator (or another one
// sharing the Redis) sees exactly the leases still running. Two keys rather
// than a hash and an expiry zset because Redis expires them for us: no
// sweeper, no clock of our own. The price is that finding the lowest free
// address probes the range one EXISTS at a time inside the script; that is
// microseconds per address, fine for the /24-sized pools a provisioning
// network has, and still only milliseconds for a /16.
//
// A declined address (the client found it in use) is held by the owner
// "declined" so nobody is offered it until the hold runs out.

// ErrPoolExhausted is returned when every address of a pool is leased.
var ErrPoolExhausted = errors.New("dhcp pool exhausted: every address is leased")

// declinedOwner owns addresses clients declined.
const declinedOwner = "declined"

// LeasePool is an inclusive range of IPv4 addresses to lease from.
type LeasePool struct {
	First, Last netip.Addr
}

// Contains reports whether ip is in the pool.
func (p LeasePool) Contains(ip netip.Addr) bool {
	return ip.Is4() && p.First.Compare(ip) <= 0 && ip.Compare(p.Last) <= 0
}

func (p LeasePool) validate() error {
	if !p.First.Is4() || !p.Last.Is4() {
		return fmt.Errorf("lease pool %s-%s: bounds must be IPv4 addresses", p.First, p.Last)
	}
	if p.Last.Less(p.First) {
		return fmt.Errorf("lease pool %s-%s: last address before first", p.First, p.Last)
	}
	return nil
}

func (s *Store) leaseMACKey(mac net.HardwareAddr) string { return s.key("lease", "mac", mac.String()) }
func (s *Store) leaseIPKey(ip netip.Addr) string         { return s.key("lease", "ip", ip.String()) }

func ipv4Uint(ip netip.Addr) uint32 { b := ip.As4(); return binary.BigEndian.Uint32(b[:]) }

// allocateLease: KEYS mac key, ip-key prefix ("ingot:lease:ip:").
// ARGV mac, first (uint32), last (uint32), wanted (uint32, 0: none), ttl ms.
// Returns the address leased, or error POOLFULL.
//
// Order: the MAC's current lease if it is still in the pool and still
// points back at the MAC; else the wanted address if free; else the lowest
// free address. Whatever is returned is (re)written with a fresh expiry.
var allocateLease = redis.NewScript(`
local function dotted(n)
  return string.format('%d.%d.%d.%d', math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end
local function toint(s)
  local a, b, c, d = string.match(s, '^(%d+)%.(%d+)%.(%d+)%.(%d+)$')
  if not a then return nil end
  return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
end
local mac, first, last, want, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local function take(ip)
  redis.call('SET', KEYS[1], ip, 'PX', ttl)
  redis.call('SET', KEYS[2] .. ip, mac, 'PX', ttl)
  return ip
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local n = toint(cur)
  local owner = redis.call('GET', KEYS[2] .. cur)
  if n and n >= first and n <= last and (not owner or owner == mac) then return take(cur) end
  -- Out of the (reconfigured) pool or taken over: forget it.
  redis.call('DEL', KEYS[1])
  if owner == mac then redis.call('DEL', KEYS[2] .. cur) end
end
if want > 0 and want >= first and want <= last and redis.call('EXISTS', KEYS[2] .. dotted(want)) == 0 then
  return take(dotted(want))
end
for n = first, last do
  local ip = dotted(n)
  if redis.call('EXISTS', KEYS[2] .. ip) == 0 then return take(ip) end
end
return redis.error_reply('POOLFULL')
`)

// releaseLease: KEYS mac key, ip-key prefix. ARGV mac, address (” : any).
var releaseLease = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur or (ARGV[2] ~= '' and cur ~= ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2] .. cur) == ARGV[1] then redis.call('DEL', KEYS[2] .. cur) end
return 1
`)

// declineLease: KEYS mac key, ip key. ARGV mac, address, owner to hold it
// with, hold ms. Only the address's holder (or nobody) can decline it, so
// a client cannot lock away someone else's address.
var declineLease = redis.NewScript(`
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
`)

// AllocateLease leases an address of pool to mac for ttl, atomically: the
// MAC's current lease if it has one in the pool (renewed), else want if it
// is in the pool and free (zero want: no preference), else the lowest free
// address. Expired leases are free. A full pool is ErrPoolExhausted.
func (s *Store) AllocateLease(ctx context.Context, mac net.HardwareAddr, pool LeasePool, want netip.Addr, ttl time.Duration) (netip.Addr, error) {
	if err := pool.validate(); err != nil {
		return netip.Addr{}, err
	}
	if len(mac) == 0 {
		return netip.Addr{}, errors.New("allocate lease: empty MAC")
	}
	if ttl < time.Millisecond {
		return netip.Addr{}, fmt.Errorf("allocate lease for %s: ttl %v too short", mac, ttl)
	}
	var w uint32
	if want.Is4() {
		w = ipv4Uint(want)
	}
	keys := []string{s.leaseMACKey(mac), s.key("lease", "ip", "")}
	res, err := allocateLease.Run(ctx, s.rdb, keys, mac.String(), ipv4Uint(pool.First), ipv4Uint(pool.Last), w, ttl.Milliseconds()).Text()
	if err != nil {
		if strings.TrimPrefix(err.Error(), "ERR ") == "POOLFULL" {
			return netip.Addr{}, fmt.Errorf("allocate lease for %s in %s-%s: %w", mac, pool.First, pool.Last, ErrPoolExhausted)
		}
		return netip.Addr{}, fmt.Errorf("allocate lease for %s: %w", mac, err)
	}
	ip, err := netip.ParseAddr(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("allocate lease for %s: bad address %q from script: %w", mac, res, err)
	}
	return ip, nil
}

// Lease returns mac's current lease and when it expires.
func (s *Store) Lease(ctx context.Context, mac net.HardwareAddr) (ip netip.Addr, expiry time.Time, found bool, err error) {
	key := s.leaseMACKey(mac)
	pipe := s.rdb.Pipeline()
	get := pipe.Get(ctx, key)
	pttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return netip.Addr{}, time.Time{}, false, fmt.Errorf("lease of %s: %w", mac, err)
	}
	v, err := get.Result()
	if errors.Is(err, redis.Nil) {
		return netip.Addr{}, time.Time{}, false, nil
	}
	if err != nil {
		return netip.Addr{}, time.Time{}, false, fmt.Errorf("lease of %s: %w", mac, err)
	}
	ip, err = netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, time.Time{}, false, fmt.Errorf("lease of %s: bad address %q: %w", mac, v, err)
	}
	// PTTL is negative when the key expired between the two commands or
	// has no expiry; neither happens to a lease we wrote, so report "now".
	d := max(pttl.Val(), 0)
	return ip, time.Now().Add(d), true, nil
}

// LeaseOwner returns the MAC holding ip. An address held because a client
// declined it is found with a nil MAC.
func (s *Store) LeaseOwner(ctx context.Context, ip netip.Addr) (mac net.HardwareAddr, found bool, err error) {
	v, err := s.rdb.Get(ctx, s.leaseIPKey(ip)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("owner of lease %s: %w", ip, err)
	}
	if v == declinedOwner {
		return nil, true, nil
	}
	mac, err = net.ParseMAC(v)
	if err != nil {
		return nil, false, fmt.Errorf("owner of lease %s: bad MAC %q: %w", ip, v, err)
	}
	return mac, true, nil
}

// ReleaseLease ends mac's lease on ip (a zero ip: whatever mac holds). It
// does nothing if mac does not hold ip.
func (s *Store) ReleaseLease(ctx context.Context, mac net.HardwareAddr, ip netip.Addr) error {
	want := ""
	if ip.IsValid() {
		want = ip.String()
	}
	keys := []string{s.leaseMACKey(mac), s.key("lease", "ip", "")}
	if err := releaseLease.Run(ctx, s.rdb, keys, mac.String(), want).Err(); err != nil {
		return fmt.Errorf("release lease %s of %s: %w", ip, mac, err)
	}
	return nil
}

// DeclineLease records that mac found ip in use by someone else: mac's
// lease on it ends and nobody is offered ip for hold. It does nothing if
// another MAC holds ip.
func (s *Store) DeclineLease(ctx context.Context, mac net.HardwareAddr, ip netip.Addr, hold time.Duration) error {
	if !ip.Is4() {
		return fmt.Errorf("decline lease of %s: %q is not an IPv4 address", mac, ip)
	}
	if hold < time.Millisecond {
		return fmt.Errorf("decline lease %s of %s: hold %v too short", ip, mac, hold)
	}
	keys := []string{s.leaseMACKey(mac), s.leaseIPKey(ip)}
	if err := declineLease.Run(ctx, s.rdb, keys, mac.String(), ip.String(), declinedOwner, hold.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("decline lease %s of %s: %w", ip, mac, err)
	}
	return nil
}
