//! Ports and their protocols: asked for (`PortMapping`) and decided (`Port`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Owner;

/// A published port's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The host address a decided port is published on: every address of one
/// family, or one address. Never an unspecified address in `V4`/`V6` (see
/// `from_ip`), so equal values mean the same socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostIp {
    /// Every IPv4 address of the host (`0.0.0.0`).
    AnyV4,
    /// Every IPv6 address of the host (`[::]`).
    AnyV6,
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl HostIp {
    /// The unspecified address of a family is "every address" of it.
    pub fn from_ip(ip: IpAddr) -> HostIp {
        match ip {
            IpAddr::V4(ip) if ip.is_unspecified() => HostIp::AnyV4,
            IpAddr::V6(ip) if ip.is_unspecified() => HostIp::AnyV6,
            IpAddr::V4(ip) => HostIp::V4(ip),
            IpAddr::V6(ip) => HostIp::V6(ip),
        }
    }

    /// The address a socket binds: the unspecified one for `Any*`.
    pub fn ip(self) -> IpAddr {
        match self {
            HostIp::AnyV4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            HostIp::AnyV6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            HostIp::V4(ip) => IpAddr::V4(ip),
            HostIp::V6(ip) => IpAddr::V6(ip),
        }
    }

    /// One address, not every address of a family.
    pub fn specific(self) -> Option<IpAddr> {
        match self {
            HostIp::AnyV4 | HostIp::AnyV6 => None,
            HostIp::V4(ip) => Some(IpAddr::V4(ip)),
            HostIp::V6(ip) => Some(IpAddr::V6(ip)),
        }
    }

    pub fn is_ipv6(self) -> bool {
        matches!(self, HostIp::AnyV6 | HostIp::V6(_))
    }

    /// Whether a port on `self` and the same port on `other` would clash:
    /// same family, and the same address or every address on either side.
    pub fn overlaps(self, other: HostIp) -> bool {
        self.is_ipv6() == other.is_ipv6()
            && (self.specific().is_none() || other.specific().is_none() || self == other)
    }
}

/// `0.0.0.0`, `::`, or the address; IPv6 without brackets (see
/// `Bracketed` for `ADDR:PORT`).
impl fmt::Display for HostIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ip())
    }
}

/// A host address as it is written before `:PORT`: IPv6 in brackets.
pub struct Bracketed(pub HostIp);

impl fmt::Display for Bracketed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.ip() {
            IpAddr::V4(ip) => write!(f, "{ip}"),
            IpAddr::V6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// One host port forwarded to one container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// None: every address of the host, of every family the network has
    /// (the plan decides one `Port` per family; see `Port::host_ip`).
    pub host_ip: Option<HostIp>,
    /// None: pick a free one (within `host_range` when it has one).
    pub host_port: Option<u16>,
    /// `8000-8010:80`: the first port of these, first to last, that is
    /// free (docker's and podman's choice), kept once `host_port` is
    /// decided so a port picked again is picked in the range too.
    pub host_range: Option<(u16, u16)>,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{}:", Bracketed(ip))?;
        }
        match (self.host_port, self.host_range) {
            (Some(port), _) => write!(f, "{port}")?,
            (None, Some((first, last))) => write!(f, "{first}-{last}")?,
            (None, None) => f.write_str("?")?,
        }
        write!(f, "->{}/{}", self.container_port, self.protocol)
    }
}

impl PortMapping {
    /// Whether `self` and `v6` are one picked port split per family (see
    /// `plan::per_family`): the same mapping, on every IPv4 address, then
    /// on every IPv6 address. Both get the same host port.
    pub fn is_split_pair(&self, v6: &PortMapping) -> bool {
        self.host_port.is_none()
            && self.host_ip == Some(HostIp::AnyV4)
            && *v6
                == PortMapping {
                    host_ip: Some(HostIp::AnyV6),
                    ..*self
                }
    }
}

/// A published port with its host port decided, on one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    pub host_ip: HostIp,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            Bracketed(self.host_ip),
            self.host_port,
            self.container_port,
            self.protocol
        )
    }
}

/// A host port someone else publishes already: what both the plan (from a
/// snapshot) and the kernel (refusing the batch) report, with its holder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("port {port} is already published by {holder}")]
pub struct PortTaken {
    pub port: Port,
    /// The holder, for people: "container NAME (ID)" or "another container".
    pub holder: String,
    /// The holder, when its element carries our comment.
    pub owner: Option<Owner>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_mean_every_address_of_their_family() {
        assert_eq!(HostIp::from_ip("0.0.0.0".parse().unwrap()), HostIp::AnyV4);
        assert_eq!(HostIp::from_ip("::".parse().unwrap()), HostIp::AnyV6);
        assert_eq!(
            HostIp::from_ip("::1".parse().unwrap()),
            HostIp::V6(Ipv6Addr::LOCALHOST)
        );
        assert_eq!(HostIp::AnyV6.ip(), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    }

    #[test]
    fn ports_clash_within_a_family_only() {
        let local4 = HostIp::V4(Ipv4Addr::LOCALHOST);
        let local6 = HostIp::V6(Ipv6Addr::LOCALHOST);
        assert!(HostIp::AnyV4.overlaps(local4));
        assert!(local4.overlaps(local4));
        assert!(!local4.overlaps(HostIp::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert!(!HostIp::AnyV4.overlaps(HostIp::AnyV6));
        assert!(!HostIp::AnyV4.overlaps(local6));
        assert!(HostIp::AnyV6.overlaps(local6));
    }

    #[test]
    fn ipv6_host_addresses_print_in_brackets() {
        let port = |host_ip| Port {
            host_ip,
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        assert_eq!(port(HostIp::AnyV4).to_string(), "0.0.0.0:8080->80/tcp");
        assert_eq!(port(HostIp::AnyV6).to_string(), "[::]:8080->80/tcp");
        assert_eq!(
            port(HostIp::V6(Ipv6Addr::LOCALHOST)).to_string(),
            "[::1]:8080->80/tcp"
        );
    }
}
