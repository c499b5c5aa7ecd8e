//! Who the client is, by address: the direct peer, or what a trusted proxy in front of the
//! gateway says it is.
//!
//! `X-Forwarded-For` is written by whoever sends the request, so from an arbitrary client it
//! is a lie waiting to happen: honouring it would let anyone pick the address its rate limit
//! is charged to (a fresh one per request) and put any address in the logs. It is read only
//! when the direct peer is one of the configured proxies (an ingress controller, a load
//! balancer), and then from the right: each hop appends the address it saw, so the rightmost
//! entry not itself a trusted proxy is the first address nobody we trust could have
//! invented. Entries left of it are the client's own claims and stay ignored.

use std::{fmt, net::IpAddr, str::FromStr};

/// One network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or a CIDR such as 10.0.0.0/8")]
    Address(String),
    #[error("{0:?}: the prefix length must be a number up to {1}")]
    Prefix(String, u8),
    #[error("{0:?} has bits set beyond its prefix length; did you mean {1}?")]
    HostBits(String, Cidr),
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let network = address
            .parse::<IpAddr>()
            .map_err(|_| CidrError::Address(raw.to_owned()))?;
        let network = canonical(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(CidrError::Prefix(raw.to_owned(), max))?,
        };
        let masked = match network {
            IpAddr::V4(v4) => IpAddr::from(mask_v4(u32::from(v4), prefix).to_be_bytes()),
            IpAddr::V6(v6) => IpAddr::from(mask_v6(u128::from(v6), prefix).to_be_bytes()),
        };
        let cidr = Cidr {
            network: masked,
            prefix,
        };
        // `10.1.2.3/8` is almost always a typo for a single address or for `10.0.0.0/8`:
        // refusing it beats silently trusting sixteen million addresses.
        if masked != network {
            return Err(CidrError::HostBits(raw.to_owned(), cidr));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) is that IPv4
/// address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => bits & (u32::MAX << (32 - u32::from(p))),
    }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => bits & (u128::MAX << (128 - u32::from(p))),
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default): nobody's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self(networks)
    }

    /// A comma-separated list of CIDRs or addresses; blank means none.
    pub fn parse(raw: &str) -> Result<Self, CidrError> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn networks(&self) -> &[Cidr] {
        &self.0
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client's address, given the direct peer and the `X-Forwarded-For` values as
    /// received (each a comma-separated list; several headers read as one list, in order).
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> ClientAddress {
        if !self.trusts(peer) {
            return ClientAddress {
                client: canonical(peer),
                trusted_chain: Vec::new(),
            };
        }
        let claimed: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        // Walk from the peer leftwards while the hop is a proxy we trust; the first hop that
        // is not (or that is garbage, which a trusted proxy would never write) ends the walk.
        let mut client = canonical(peer);
        let mut chain = Vec::new();
        for entry in claimed.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            let Ok(ip) = parse_entry(entry) else {
                break;
            };
            chain.push(ip);
            client = canonical(ip);
        }
        chain.reverse();
        ClientAddress {
            client,
            trusted_chain: chain,
        }
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`[::1]:443`, `1.2.3.4:80`),
/// as some proxies write it.
fn parse_entry(entry: &str) -> Result<IpAddr, ()> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(ip);
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Ok(addr.ip());
    }
    Err(())
}

/// The verdict: who the client is, and the part of the forwarded chain that was believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    /// The address rate limits are charged to and logs show.
    pub client: IpAddr,
    /// The believed `X-Forwarded-For` entries, leftmost first, ending with the one before the
    /// peer: what the gateway passes on (followed by the peer). Empty when the peer is not a
    /// trusted proxy.
    pub trusted_chain: Vec<IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(s: &str) -> TrustedProxies {
        TrustedProxies::parse(s).unwrap()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.200.1.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("fd00::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")));
        assert!(one.contains(ip("::ffff:192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12:3456::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
    }

    #[test]
    fn bad_cidrs_are_refused() {
        for raw in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/x",
            "host",
        ] {
            assert!(raw.parse::<Cidr>().is_err(), "{raw:?}");
        }
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>(),
            Err(CidrError::HostBits(
                "10.1.2.3/8".into(),
                "10.0.0.0/8".parse().unwrap()
            ))
        );
        assert!(TrustedProxies::parse("10.0.0.0/8, nonsense").is_err());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        let seen = none.client_address(ip("198.51.100.9"), ["203.0.113.1"]);
        assert_eq!(seen.client, ip("198.51.100.9"));
        assert!(seen.trusted_chain.is_empty());
        let some = trusted("10.0.0.0/8");
        let seen = some.client_address(ip("198.51.100.9"), ["10.0.0.1"]);
        assert_eq!(seen.client, ip("198.51.100.9"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let proxies = trusted("10.0.0.0/8");
        let seen = proxies.client_address(ip("10.0.0.2"), ["203.0.113.1"]);
        assert_eq!(seen.client, ip("203.0.113.1"));
        assert_eq!(seen.trusted_chain, vec![ip("203.0.113.1")]);
    }

    #[test]
    fn the_rightmost_untrusted_entry_wins_over_what_the_client_prepended() {
        let proxies = trusted("10.0.0.0/8");
        // The client claimed 1.1.1.1; the edge proxy saw 203.0.113.1 and appended it; an
        // inner proxy 10.0.0.5 appended the edge proxy.
        let seen = proxies.client_address(ip("10.0.0.2"), ["1.1.1.1, 203.0.113.1", "10.0.0.5"]);
        assert_eq!(seen.client, ip("203.0.113.1"));
        assert_eq!(seen.trusted_chain, vec![ip("203.0.113.1"), ip("10.0.0.5")]);
    }

    #[test]
    fn garbage_or_nothing_leaves_the_last_trusted_hop() {
        let proxies = trusted("10.0.0.0/8");
        let seen = proxies.client_address(ip("10.0.0.2"), ["203.0.113.1, bogus"]);
        assert_eq!(seen.client, ip("10.0.0.2"));
        let seen = proxies.client_address(ip("10.0.0.2"), []);
        assert_eq!(seen.client, ip("10.0.0.2"));
        let seen = proxies.client_address(ip("10.0.0.2"), ["[2001:db8::1]:443"]);
        assert_eq!(seen.client, ip("2001:db8::1"));
    }
}
