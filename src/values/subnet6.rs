//! An IPv6 container subnet and the checks on the addresses in it: the
//! IPv6 side of a dual-stack bridge network (`--ipv6`, `--subnet6`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::Subnet;
use super::quoted::quoted;

/// An IPv6 subnet for containers: the network prefix and its length. Its
/// first address (`::1` of the prefix) is the gateway, the bridge's
/// address; the prefix's own address (the subnet-router anycast address)
/// is never leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet6 {
    network: Ipv6Addr,
    prefix_len: u8,
}

/// The default `--subnet6`: a fixed unique local /64 of ours, 53:7570:6572
/// being "Super" in ASCII.
pub const DEFAULT_SUBNET6: &str = "fd53:7570:6572::/64";

/// The prefix lengths `--subnet6` takes: /64 is what SLAAC-minded hosts
/// expect; longer ones down to 256 addresses for small networks.
const PREFIX_LENGTHS: std::ops::RangeInclusive<u8> = 64..=120;

/// Why a `--subnet6` value is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Subnet6Error {
    #[error("invalid --subnet6 {}: expected an IPv6 prefix like fd53:7570:6572::/64", quoted(.0))]
    Syntax(String),
    #[error("invalid --subnet6 {}: prefix length /{prefix_len}, use /64 to /120", quoted(.text))]
    PrefixLength { text: String, prefix_len: u8 },
    #[error(
        "invalid --subnet6 {}: host bits set, did you mean {network}/{prefix_len}?",
        quoted(.text)
    )]
    HostBits {
        text: String,
        network: Ipv6Addr,
        prefix_len: u8,
    },
    #[error(
        "invalid --subnet6 {}: inside {range} ({what}), which a container network cannot use; choose a unique local prefix such as fd53:7570:6572::/64",
        quoted(.text)
    )]
    Unusable {
        text: String,
        range: &'static str,
        what: &'static str,
    },
}

/// Prefixes no container network can use: the kernel routes them
/// elsewhere or they are no unicast host addresses of a link.
const UNUSABLE: [(Ipv6Addr, u8, &str, &str); 5] = [
    (
        Ipv6Addr::UNSPECIFIED,
        96,
        "::/96",
        "unspecified, loopback and IPv4-compatible",
    ),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        "::ffff:0:0/96",
        "IPv4-mapped",
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "fe80::/10",
        "link-local",
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "fec0::/10",
        "deprecated site-local",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "ff00::/8",
        "multicast",
    ),
];

/// Why an address cannot be pinned with `--ip6`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Address6Error {
    #[error("{} is not an IPv6 address (like fd53:7570:6572::30)", quoted(.0))]
    Syntax(String),
    #[error("address {addr} is outside the subnet {subnet}")]
    OutsideSubnet { addr: Ipv6Addr, subnet: Subnet6 },
    #[error("address {addr} is the {role} address of {subnet}, not a container address")]
    Reserved {
        addr: Ipv6Addr,
        role: &'static str,
        subnet: Subnet6,
    },
}

impl Subnet6 {
    pub fn new(network: Ipv6Addr, prefix_len: u8) -> Result<Subnet6, Subnet6Error> {
        Subnet6::checked(network, prefix_len, format!("{network}/{prefix_len}"))
    }

    /// `new`, its errors naming the value as `text`.
    fn checked(network: Ipv6Addr, prefix_len: u8, text: String) -> Result<Subnet6, Subnet6Error> {
        if !PREFIX_LENGTHS.contains(&prefix_len) {
            return Err(Subnet6Error::PrefixLength { text, prefix_len });
        }
        let masked = Ipv6Addr::from(network.to_bits() & mask(prefix_len));
        if masked != network {
            return Err(Subnet6Error::HostBits {
                text,
                network: masked,
                prefix_len,
            });
        }
        if let Some((_, _, range, what)) = UNUSABLE
            .iter()
            .find(|(net, len, _, _)| (network.to_bits() ^ net.to_bits()) & mask(*len) == 0)
        {
            return Err(Subnet6Error::Unusable { text, range, what });
        }
        Ok(Subnet6 {
            network,
            prefix_len,
        })
    }

    pub fn network(&self) -> Ipv6Addr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The bridge's address: `::1` of the prefix.
    pub fn gateway(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.network.to_bits() + 1)
    }

    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        addr.to_bits() & mask(self.prefix_len) == self.network.to_bits()
    }

    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, network: Ipv6Addr, prefix_len: u8) -> bool {
        let shorter = self.prefix_len.min(prefix_len);
        (self.network.to_bits() ^ network.to_bits()) & mask(shorter) == 0
    }

    /// How many host bits the prefix leaves.
    pub fn host_bits(&self) -> u32 {
        128 - u32::from(self.prefix_len)
    }

    /// The address with host number `host` (`::5` of the prefix for 5);
    /// None when the number does not fit in the host bits.
    pub fn host(&self, host: u128) -> Option<Ipv6Addr> {
        (host & mask(self.prefix_len) == 0).then(|| Ipv6Addr::from(self.network.to_bits() | host))
    }

    /// A container's IPv6 address by default: this prefix and the host
    /// number of its IPv4 address in `subnet` (172.16.0.5 in
    /// 172.16.0.0/24 gives `::5`); None when the number does not fit.
    pub fn derive(&self, subnet: Subnet, addr: Ipv4Addr) -> Option<Ipv6Addr> {
        let host = addr.to_bits() & !subnet.netmask_bits();
        (subnet.contains(addr)).then(|| self.host(u128::from(host)))?
    }

    /// Checks that `addr` may be given to a container.
    pub fn check_container_address(&self, addr: Ipv6Addr) -> Result<(), Address6Error> {
        let reserved = |role| Address6Error::Reserved {
            addr,
            role,
            subnet: *self,
        };
        if !self.contains(addr) {
            Err(Address6Error::OutsideSubnet {
                addr,
                subnet: *self,
            })
        } else if addr == self.network {
            Err(reserved("subnet-router anycast"))
        } else if addr == self.gateway() {
            Err(reserved("gateway"))
        } else {
            Ok(())
        }
    }

    /// Parses a `--ip6` value and checks it belongs to this subnet.
    pub fn parse_container_address(&self, text: &str) -> Result<Ipv6Addr, Address6Error> {
        let addr: Ipv6Addr = text
            .parse()
            .map_err(|_| Address6Error::Syntax(text.to_string()))?;
        self.check_container_address(addr)?;
        Ok(addr)
    }
}

fn mask(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl Default for Subnet6 {
    fn default() -> Subnet6 {
        Subnet6 {
            network: Ipv6Addr::new(0xfd53, 0x7570, 0x6572, 0, 0, 0, 0, 0),
            prefix_len: 64,
        }
    }
}

impl FromStr for Subnet6 {
    type Err = Subnet6Error;

    fn from_str(text: &str) -> Result<Subnet6, Subnet6Error> {
        let syntax = || Subnet6Error::Syntax(text.to_string());
        let (addr, len) = text.split_once('/').ok_or_else(syntax)?;
        let network: Ipv6Addr = addr.parse().map_err(|_| syntax())?;
        // Only plain decimal: `u8::from_str` would also take "+64".
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix_len: u8 = len.parse().map_err(|_| syntax())?;
        // The messages name the value as the user wrote it.
        Subnet6::checked(network, prefix_len, text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet6(text: &str) -> Subnet6 {
        text.parse().unwrap()
    }

    #[test]
    fn the_default_is_our_ula_and_its_gateway_is_the_first_address() {
        let s = subnet6(DEFAULT_SUBNET6);
        assert_eq!(s, Subnet6::default());
        assert_eq!(
            s.gateway(),
            "fd53:7570:6572::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(s.to_string(), "fd53:7570:6572::/64");
        assert!(s.contains("fd53:7570:6572::ffff:1".parse().unwrap()));
        assert!(!s.contains("fd53:7570:6573::1".parse().unwrap()));
        assert_eq!(s.host_bits(), 64);
    }

    #[test]
    fn a_host_number_maps_into_the_prefix_when_it_fits() {
        let s = subnet6(DEFAULT_SUBNET6);
        assert_eq!(s.host(5), Some("fd53:7570:6572::5".parse().unwrap()));
        let small = subnet6("fd00:1::/120");
        assert_eq!(small.host(255), Some("fd00:1::ff".parse().unwrap()));
        assert_eq!(small.host(256), None);
        let v4: Subnet = "172.16.0.0/24".parse().unwrap();
        assert_eq!(
            s.derive(v4, Ipv4Addr::new(172, 16, 0, 5)),
            Some("fd53:7570:6572::5".parse().unwrap())
        );
        let wide: Subnet = "10.0.0.0/16".parse().unwrap();
        assert_eq!(small.derive(wide, Ipv4Addr::new(10, 0, 1, 2)), None);
        assert_eq!(s.derive(v4, Ipv4Addr::new(10, 0, 0, 5)), None);
        assert_eq!(s.derive(v4, Ipv4Addr::new(192, 168, 0, 5)), None);
    }

    #[test]
    fn bad_prefixes_are_refused_naming_the_value() {
        for (text, start) in [
            (
                "fd53::",
                "invalid --subnet6 \"fd53::\": expected an IPv6 prefix",
            ),
            ("fd53::/+64", "invalid --subnet6 \"fd53::/+64\": expected"),
            (
                "172.16.0.0/24",
                "invalid --subnet6 \"172.16.0.0/24\": expected",
            ),
            (
                "fd53::/63",
                "invalid --subnet6 \"fd53::/63\": prefix length /63, use /64 to /120",
            ),
            (
                "fd53::/121",
                "invalid --subnet6 \"fd53::/121\": prefix length /121",
            ),
            ("fd53::/1280", "invalid --subnet6 \"fd53::/1280\": expected"),
            (
                "fd53::1/64",
                "invalid --subnet6 \"fd53::1/64\": host bits set, did you mean fd53::/64?",
            ),
            (
                "fe80::/64",
                "invalid --subnet6 \"fe80::/64\": inside fe80::/10 (link-local)",
            ),
            (
                "ff02::/64",
                "invalid --subnet6 \"ff02::/64\": inside ff00::/8 (multicast)",
            ),
            (
                "::/96",
                "invalid --subnet6 \"::/96\": inside ::/96 (unspecified, loopback",
            ),
            (
                "::ff00/120",
                "invalid --subnet6 \"::ff00/120\": inside ::/96",
            ),
            (
                "::ffff:0:0/96",
                "invalid --subnet6 \"::ffff:0:0/96\": inside ::ffff:0:0/96 (IPv4-mapped)",
            ),
            (
                "::ffff:ac10:0/112",
                "invalid --subnet6 \"::ffff:ac10:0/112\": inside ::ffff:0:0/96",
            ),
        ] {
            let err = text.parse::<Subnet6>().unwrap_err().to_string();
            assert!(err.starts_with(start), "{text}: {err}");
        }
        for good in [
            "fd53:7570:6572::/64",
            "2001:db8:1::/64",
            "fd00::ff00/120",
            "fc00::/64",
        ] {
            assert!(good.parse::<Subnet6>().is_ok(), "{good}");
        }
    }

    #[test]
    fn container_addresses_exclude_the_prefix_itself_and_the_gateway() {
        let s = subnet6("fd00:9::/64");
        for (text, role) in [
            ("fd00:9::", "subnet-router anycast"),
            ("fd00:9::1", "gateway"),
        ] {
            let err = s.parse_container_address(text).unwrap_err();
            assert!(
                matches!(err, Address6Error::Reserved { role: r, .. } if r == role),
                "{err}"
            );
        }
        assert!(matches!(
            s.parse_container_address("fd00:a::2"),
            Err(Address6Error::OutsideSubnet { .. })
        ));
        assert!(matches!(
            s.parse_container_address("172.16.0.2"),
            Err(Address6Error::Syntax(_))
        ));
        assert_eq!(
            s.parse_container_address("fd00:9::abcd"),
            Ok("fd00:9::abcd".parse().unwrap())
        );
    }
}
