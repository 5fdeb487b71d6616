//! An IPv4 container subnet and the checks on the addresses in it.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::quoted::quoted;

/// An IPv4 subnet for containers: the network address and prefix length.
/// The first address is the gateway (the bridge's address); the network and
/// broadcast addresses are never leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

/// Why a `--subnet` value is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubnetError {
    #[error("invalid subnet {}: expected an IPv4 network like 172.16.0.0/24", quoted(.0))]
    Syntax(String),
    #[error(
        "invalid subnet {}: prefix /{prefix_len} leaves no container addresses (use /1 to /30)",
        quoted(.text)
    )]
    PrefixLength { text: String, prefix_len: u8 },
    #[error(
        "invalid subnet {}: host bits set, did you mean {network}/{prefix_len}?",
        quoted(.text)
    )]
    HostBits {
        text: String,
        network: Ipv4Addr,
        prefix_len: u8,
    },
    #[error(
        "invalid subnet {}: overlaps {range} ({what}), which a container network cannot use; choose a private range such as 172.16.0.0/24 or 10.88.0.0/24",
        quoted(.text)
    )]
    Unusable {
        text: String,
        range: &'static str,
        what: &'static str,
    },
}

/// Ranges no container network can use: the kernel routes them elsewhere
/// (loopback, multicast), they are not unicast host addresses at all, or
/// links configure them by themselves.
const UNUSABLE: [(Ipv4Addr, u8, &str, &str); 5] = [
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "0.0.0.0/8",
        "\"this network\"",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "127.0.0.0/8", "loopback"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "169.254.0.0/16",
        "link-local",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "224.0.0.0/4", "multicast"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "240.0.0.0/4",
        "reserved, with the broadcast address 255.255.255.255",
    ),
];

/// Why an address cannot be pinned with `--ip`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("{} is not an IPv4 address (like 172.16.0.30)", quoted(.0))]
    Syntax(String),
    #[error("address {addr} is outside the subnet {subnet}")]
    OutsideSubnet { addr: Ipv4Addr, subnet: Subnet },
    #[error("address {addr} is the {role} address of {subnet}, not a container address")]
    Reserved {
        addr: Ipv4Addr,
        role: &'static str,
        subnet: Subnet,
    },
}

impl Subnet {
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Subnet, SubnetError> {
        let text = format!("{network}/{prefix_len}");
        if !(1..=30).contains(&prefix_len) {
            return Err(SubnetError::PrefixLength { text, prefix_len });
        }
        let masked = Ipv4Addr::from(network.to_bits() & mask(prefix_len));
        if masked != network {
            return Err(SubnetError::HostBits {
                text,
                network: masked,
                prefix_len,
            });
        }
        let subnet = Subnet {
            network,
            prefix_len,
        };
        if let Some((_, _, range, what)) = UNUSABLE
            .iter()
            .find(|(net, len, _, _)| subnet.overlaps(*net, *len))
        {
            return Err(SubnetError::Unusable { text, range, what });
        }
        Ok(subnet)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The bridge's address: the subnet's first address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network.to_bits() + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network.to_bits() | !mask(self.prefix_len))
    }

    /// The prefix as a mask: its network bits set.
    pub fn netmask_bits(&self) -> u32 {
        mask(self.prefix_len)
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        addr.to_bits() & mask(self.prefix_len) == self.network.to_bits()
    }

    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, network: Ipv4Addr, prefix_len: u8) -> bool {
        let shorter = self.prefix_len.min(prefix_len);
        (self.network.to_bits() ^ network.to_bits()) & mask(shorter) == 0
    }

    /// Checks that `addr` may be given to a container.
    pub fn check_container_address(&self, addr: Ipv4Addr) -> Result<(), AddressError> {
        let reserved = |role| AddressError::Reserved {
            addr,
            role,
            subnet: *self,
        };
        if !self.contains(addr) {
            Err(AddressError::OutsideSubnet {
                addr,
                subnet: *self,
            })
        } else if addr == self.network {
            Err(reserved("network"))
        } else if addr == self.gateway() {
            Err(reserved("gateway"))
        } else if addr == self.broadcast() {
            Err(reserved("broadcast"))
        } else {
            Ok(())
        }
    }

    /// Parses a `--ip` value and checks it belongs to this subnet.
    pub fn parse_container_address(&self, text: &str) -> Result<Ipv4Addr, AddressError> {
        let addr: Ipv4Addr = text
            .parse()
            .map_err(|_| AddressError::Syntax(text.to_string()))?;
        self.check_container_address(addr)?;
        Ok(addr)
    }

    /// Container addresses in increasing order: after the gateway, before the
    /// broadcast address.
    pub fn container_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        (self.gateway().to_bits() + 1..self.broadcast().to_bits()).map(Ipv4Addr::from)
    }

    /// Every container address once, in round-robin order: from the one
    /// after `last`, wrapping past the end; from the first when `last` is
    /// not a container address here.
    pub fn container_addresses_after(
        &self,
        last: Option<Ipv4Addr>,
    ) -> impl Iterator<Item = Ipv4Addr> + Clone + use<> {
        let first = self.gateway().to_bits() + 1;
        let count = self.broadcast().to_bits().saturating_sub(first);
        let skip = last
            .filter(|addr| self.check_container_address(*addr).is_ok())
            .map_or(0, |addr| addr.to_bits() - first + 1);
        (0..count).map(move |i| Ipv4Addr::from(first + (skip + i) % count))
    }
}

fn mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(text: &str) -> Result<Subnet, SubnetError> {
        let syntax = || SubnetError::Syntax(text.to_string());
        let (addr, len) = text.split_once('/').ok_or_else(syntax)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        // Only plain decimal: `u8::from_str` would also take "+24".
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix_len: u8 = len.parse().map_err(|_| syntax())?;
        Subnet::new(network, prefix_len).map_err(|err| match err {
            SubnetError::PrefixLength { prefix_len, .. } => SubnetError::PrefixLength {
                text: text.to_string(),
                prefix_len,
            },
            SubnetError::HostBits {
                network,
                prefix_len,
                ..
            } => SubnetError::HostBits {
                text: text.to_string(),
                network,
                prefix_len,
            },
            SubnetError::Unusable { range, what, .. } => SubnetError::Unusable {
                text: text.to_string(),
                range,
                what,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(text: &str) -> Subnet {
        text.parse().unwrap()
    }

    #[test]
    fn subnet_gives_gateway_broadcast_and_containment() {
        let s = subnet("172.16.0.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(172, 16, 0, 255));
        assert!(s.contains(Ipv4Addr::new(172, 16, 0, 200)));
        assert!(!s.contains(Ipv4Addr::new(172, 16, 1, 1)));
        assert_eq!(s.to_string(), "172.16.0.0/24");
        let first: Vec<_> = s.container_addresses().take(2).collect();
        assert_eq!(
            first,
            [Ipv4Addr::new(172, 16, 0, 2), Ipv4Addr::new(172, 16, 0, 3)]
        );
        assert_eq!(s.container_addresses().count(), 253);
    }

    #[test]
    fn bad_subnets_are_refused_with_the_reason() {
        assert!(matches!(
            "172.16.0.0".parse::<Subnet>(),
            Err(SubnetError::Syntax(_))
        ));
        assert!(matches!(
            "172.16.0.0/+24".parse::<Subnet>(),
            Err(SubnetError::Syntax(_))
        ));
        assert!(matches!(
            "300.16.0.0/24".parse::<Subnet>(),
            Err(SubnetError::Syntax(_))
        ));
        assert!(matches!(
            "172.16.0.0/31".parse::<Subnet>(),
            Err(SubnetError::PrefixLength { prefix_len: 31, .. })
        ));
        assert!(matches!(
            "0.0.0.0/0".parse::<Subnet>(),
            Err(SubnetError::PrefixLength { .. })
        ));
        let err = "172.16.0.1/24".parse::<Subnet>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid subnet \"172.16.0.1/24\": host bits set, did you mean 172.16.0.0/24?"
        );
    }

    #[test]
    fn subnets_no_container_network_can_use_are_refused_naming_the_range() {
        for (text, range) in [
            ("127.0.0.0/24", "127.0.0.0/8 (loopback)"),
            ("224.0.0.0/24", "224.0.0.0/4 (multicast)"),
            ("239.1.0.0/16", "224.0.0.0/4 (multicast)"),
            ("0.0.0.0/24", "0.0.0.0/8 (\"this network\")"),
            ("255.255.255.0/30", "240.0.0.0/4 (reserved"),
            ("255.255.255.252/30", "240.0.0.0/4 (reserved"),
            ("240.0.0.0/24", "240.0.0.0/4 (reserved"),
            ("169.254.0.0/16", "169.254.0.0/16 (link-local)"),
            ("169.254.3.0/24", "169.254.0.0/16 (link-local)"),
            ("128.0.0.0/1", "169.254.0.0/16 (link-local)"),
            ("128.0.0.0/2", "169.254.0.0/16 (link-local)"),
            ("0.0.0.0/1", "0.0.0.0/8"),
            ("120.0.0.0/5", "127.0.0.0/8 (loopback)"),
        ] {
            let err = text.parse::<Subnet>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid subnet {text:?}: overlaps {range}")),
                "{text}: {err}"
            );
        }
        for good in [
            "172.16.0.0/24",
            "10.0.0.0/8",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "1.0.0.0/24",
            "223.255.255.0/24",
            "192.0.0.0/3",
        ] {
            assert!(good.parse::<Subnet>().is_ok(), "{good}");
        }
    }

    #[test]
    fn overlap_is_any_shared_address() {
        let s = subnet("172.16.0.0/24");
        assert!(s.overlaps(Ipv4Addr::new(172, 16, 0, 0), 16));
        assert!(s.overlaps(Ipv4Addr::new(172, 16, 0, 128), 25));
        assert!(!s.overlaps(Ipv4Addr::new(172, 16, 1, 0), 24));
        assert!(s.overlaps(Ipv4Addr::UNSPECIFIED, 0));
    }

    #[test]
    fn container_addresses_after_one_go_round_robin_from_the_next() {
        let s = subnet("10.9.0.0/29");
        let after = |last: Option<[u8; 4]>| {
            s.container_addresses_after(last.map(Ipv4Addr::from))
                .map(|a| a.octets()[3])
                .collect::<Vec<_>>()
        };
        assert_eq!(after(None), [2, 3, 4, 5, 6]);
        assert_eq!(after(Some([10, 9, 0, 4])), [5, 6, 2, 3, 4]);
        assert_eq!(after(Some([10, 9, 0, 6])), [2, 3, 4, 5, 6]);
        // Not a container address here: from the first.
        for last in [[10, 9, 0, 1], [10, 9, 0, 7], [10, 8, 0, 4]] {
            assert_eq!(after(Some(last)), [2, 3, 4, 5, 6]);
        }
        assert_eq!(
            subnet("10.9.0.0/30")
                .container_addresses_after(Some(Ipv4Addr::new(10, 9, 0, 2)))
                .collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 9, 0, 2)]
        );
    }

    #[test]
    fn container_addresses_exclude_network_gateway_and_broadcast() {
        let s = subnet("10.9.0.0/30");
        assert_eq!(
            s.container_addresses().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 9, 0, 2)]
        );
        for (text, role) in [
            ("10.9.0.0", "network"),
            ("10.9.0.1", "gateway"),
            ("10.9.0.3", "broadcast"),
        ] {
            let err = s.parse_container_address(text).unwrap_err();
            assert!(
                matches!(err, AddressError::Reserved { role: r, .. } if r == role),
                "{err}"
            );
        }
        assert!(matches!(
            s.parse_container_address("10.9.1.2"),
            Err(AddressError::OutsideSubnet { .. })
        ));
        assert!(matches!(
            s.parse_container_address("10.9.0.x"),
            Err(AddressError::Syntax(_))
        ));
        assert_eq!(
            s.parse_container_address("10.9.0.2"),
            Ok(Ipv4Addr::new(10, 9, 0, 2))
        );
    }
}
