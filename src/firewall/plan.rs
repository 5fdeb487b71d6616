//! What one container adds to the supervisor's tables, as plain values:
//! which element goes into which map or set, in the kernel's byte layout.
//! Pure, so it is unit-tested without a kernel and printable for humans.

use std::net::Ipv4Addr;

use crate::netlink::mac_for;
use crate::nftables::{concat, ifname};
use crate::values::{HostIp, Owner, Port, Protocol};

/// The maps and sets of nft/supervisor.nft that hold per-container elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `ip supervisor tcp_ports` / `udp_ports`: host port → address . port.
    Ports(Protocol),
    /// `ip supervisor tcp_addr_ports` / `udp_addr_ports`: host address .
    /// host port → address . port.
    AddrPorts(Protocol),
    /// `bridge supervisor spoof_guard`: host veth . container address .
    /// container MAC, for IP packets and ARP.
    SpoofGuard,
    /// `bridge supervisor mac_guard`: host veth . container MAC, for every
    /// frame.
    MacGuard,
    /// `ip supervisor version`: the loaded ruleset's version, one element.
    Version,
    /// `ip supervisor bridges`: every network's bridge.
    Bridges,
    /// `ip supervisor same_bridge`: bridge . the same bridge, per network.
    SameBridge,
    /// `ip supervisor subnets`: every network's subnet, an interval set.
    Subnets,
    /// `ip supervisor no_masquerade`: destinations reached unmasqueraded,
    /// an interval set.
    NoMasquerade,
}

impl Target {
    /// The map or set's name in nft/supervisor.nft.
    pub fn name(self) -> &'static str {
        match self {
            Target::Ports(Protocol::Tcp) => "tcp_ports",
            Target::Ports(Protocol::Udp) => "udp_ports",
            Target::AddrPorts(Protocol::Tcp) => "tcp_addr_ports",
            Target::AddrPorts(Protocol::Udp) => "udp_addr_ports",
            Target::SpoofGuard => "spoof_guard",
            Target::MacGuard => "mac_guard",
            Target::Version => "version",
            Target::Bridges => "bridges",
            Target::SameBridge => "same_bridge",
            Target::Subnets => "subnets",
            Target::NoMasquerade => "no_masquerade",
        }
    }

    /// The map or set's table: the guards live in the bridge family.
    pub fn is_bridge(self) -> bool {
        matches!(self, Target::SpoofGuard | Target::MacGuard)
    }

    /// Whether it is a map (port maps) or a plain set.
    pub fn is_map(self) -> bool {
        matches!(self, Target::Ports(_) | Target::AddrPorts(_))
    }

    /// Every per-container target, in a fixed order.
    pub const ALL: [Target; 6] = [
        Target::Ports(Protocol::Tcp),
        Target::Ports(Protocol::Udp),
        Target::AddrPorts(Protocol::Tcp),
        Target::AddrPorts(Protocol::Udp),
        Target::SpoofGuard,
        Target::MacGuard,
    ];

    /// Every per-network target.
    pub const NETWORK: [Target; 4] = [
        Target::Bridges,
        Target::SameBridge,
        Target::Subnets,
        Target::NoMasquerade,
    ];
}

/// Everything of one container's that lives in the firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub owner: Owner,
    pub address: Ipv4Addr,
    /// The host end of its veth, which the guards name; empty when the
    /// interface is another's (a CNI plugin chained after another plugin):
    /// then only its ports are published.
    pub veth: String,
    pub ports: Vec<Port>,
}

/// One element to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedElement {
    pub target: Target,
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
    /// The element as nft would print it, for messages.
    pub label: String,
    /// The port this element publishes, if any (not the guards).
    pub port: Option<Port>,
}

impl Publication {
    /// The elements, guards first: a container must never run with ports
    /// published but its addresses unguarded. Its MAC is the one derived
    /// from its address (see `netlink::mac_for`).
    pub fn elements(&self) -> Vec<PlannedElement> {
        let mac = mac_for(self.address);
        let veth = ifname(&self.veth);
        let guards = if self.veth.is_empty() {
            Vec::new()
        } else {
            vec![
                PlannedElement {
                    target: Target::SpoofGuard,
                    key: concat(&[&veth, &self.address.octets(), &mac]),
                    data: None,
                    label: format!("\"{}\" . {} . {}", self.veth, self.address, Mac(mac)),
                    port: None,
                },
                PlannedElement {
                    target: Target::MacGuard,
                    key: concat(&[&veth, &mac]),
                    data: None,
                    label: format!("\"{}\" . {}", self.veth, Mac(mac)),
                    port: None,
                },
            ]
        };
        let mut out = guards;
        for port in &self.ports {
            let data = addr_port(self.address, port.container_port);
            let (target, key, label) = match port.host_ip {
                HostIp::AnyV4 => (
                    Target::Ports(port.protocol),
                    port.host_port.to_be_bytes().to_vec(),
                    format!("{}", port.host_port),
                ),
                HostIp::V4(ip) => (
                    Target::AddrPorts(port.protocol),
                    addr_port(ip, port.host_port),
                    format!("{ip} . {}", port.host_port),
                ),
                // IPv6 elements come with the ip6 table.
                HostIp::AnyV6 | HostIp::V6(_) => continue,
            };
            out.push(PlannedElement {
                target,
                key,
                data: Some(data),
                label: format!("{label} : {} . {}", self.address, port.container_port),
                port: Some(*port),
            });
        }
        out
    }
}

/// A MAC address as nft prints it.
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// `ipv4_addr . inet_service` in the kernel's layout.
fn addr_port(addr: Ipv4Addr, port: u16) -> Vec<u8> {
    concat(&[&addr.octets(), &port.to_be_bytes()])
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A container with a port on every address and one on 127.0.0.1.
    pub(crate) fn web() -> Publication {
        Publication {
            owner: Owner {
                name: "web".into(),
                id: "0123456789ab".into(),
            },
            address: Ipv4Addr::new(172, 16, 0, 2),
            veth: "sv-0123456789ab".into(),
            ports: vec![
                Port {
                    host_ip: HostIp::AnyV4,
                    host_port: 8080,
                    container_port: 8000,
                    protocol: Protocol::Tcp,
                },
                Port {
                    host_ip: HostIp::V4(Ipv4Addr::LOCALHOST),
                    host_port: 5353,
                    container_port: 53,
                    protocol: Protocol::Udp,
                },
            ],
        }
    }

    #[test]
    fn the_guards_come_first_then_one_element_per_port() {
        let e = web().elements();
        let targets: Vec<_> = e.iter().map(|e| e.target).collect();
        assert_eq!(
            targets,
            [
                Target::SpoofGuard,
                Target::MacGuard,
                Target::Ports(Protocol::Tcp),
                Target::AddrPorts(Protocol::Udp)
            ]
        );
        let labels: Vec<_> = e.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "\"sv-0123456789ab\" . 172.16.0.2 . 02:42:ac:10:00:02",
                "\"sv-0123456789ab\" . 02:42:ac:10:00:02",
                "8080 : 172.16.0.2 . 8000",
                "127.0.0.1 . 5353 : 172.16.0.2 . 53"
            ]
        );
    }

    #[test]
    fn keys_and_data_use_the_kernels_layout() {
        let e = web().elements();
        assert_eq!(e[0].key.len(), 28);
        assert_eq!(&e[0].key[..15], b"sv-0123456789ab");
        assert_eq!(
            &e[0].key[16..],
            &[172, 16, 0, 2, 2, 0x42, 172, 16, 0, 2, 0, 0]
        );
        assert_eq!(&e[1].key[16..], &[2, 0x42, 172, 16, 0, 2, 0, 0]);
        assert_eq!(e[2].key, vec![0x1f, 0x90]);
        assert_eq!(
            e[2].data.as_deref(),
            Some(&[172, 16, 0, 2, 0x1f, 0x40, 0, 0][..])
        );
        assert_eq!(e[3].key, vec![127, 0, 0, 1, 0x14, 0xe9, 0, 0]);
    }

    #[test]
    fn owners_round_trip_through_the_comment() {
        let owner = web().owner;
        assert_eq!(owner.comment(), "web 0123456789ab");
        assert_eq!(Owner::from_comment(&owner.comment()), Some(owner));
        assert_eq!(Owner::from_comment("hand-written"), None);
    }

    #[test]
    fn target_names_match_the_ruleset_file() {
        let file = include_str!("../../nft/supervisor.nft");
        for target in Target::ALL.into_iter().chain(Target::NETWORK) {
            let kind = if target.is_map() { "map" } else { "set" };
            assert!(
                file.contains(&format!("{kind} {} {{", target.name())),
                "{kind} {} missing from nft/supervisor.nft",
                target.name()
            );
        }
    }
}
