//! What one container adds to the supervisor's tables, as plain values:
//! which element goes into which map or set, in the kernel's byte layout.
//! Pure, so it is unit-tested without a kernel and printable for humans.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::netlink::{link_local_for, mac_for};
use crate::nftables::Family;
use crate::nftables::{concat, ifname};
use crate::values::{Generation, HostIp, Owner, Port, Protocol};

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
    /// `ip6 supervisor tcp_ports` / `udp_ports`: host port → IPv6 address
    /// . port.
    Ports6(Protocol),
    /// `ip6 supervisor tcp_addr_ports` / `udp_addr_ports`: host IPv6
    /// address . host port → IPv6 address . port.
    AddrPorts6(Protocol),
    /// `bridge supervisor spoof_guard6`: host veth . container IPv6
    /// address (its own, and its link-local one) . container MAC.
    SpoofGuard6,
    /// `ip6 supervisor bridges`: every IPv6 network's bridge.
    Bridges6,
    /// `ip6 supervisor same_bridge`.
    SameBridge6,
    /// `ip6 supervisor subnets6`: every network's IPv6 subnet.
    Subnets6,
    /// `ip6 supervisor no_masquerade6`: as `NoMasquerade`, for IPv6.
    NoMasquerade6,
    /// `ip supervisor generations`: container address → its generation.
    Generations,
    /// `ip supervisor live`: container address . its generation.
    Live,
    /// `ip6 supervisor generations`: as `Generations`, for IPv6.
    Generations6,
    /// `ip6 supervisor live`: as `Live`, for IPv6.
    Live6,
    /// `ip supervisor routed_subnets`: a routed network's subnet as the
    /// pair `S . S`, an interval (concatenated).
    RoutedSubnets,
    /// `ip supervisor sources`: a routed container's host veth . its
    /// address, the one source it may send from.
    Sources,
}

impl Target {
    /// The map or set's name in nft/supervisor.nft.
    pub fn name(self) -> &'static str {
        match self {
            Target::Ports(Protocol::Tcp) | Target::Ports6(Protocol::Tcp) => "tcp_ports",
            Target::Ports(Protocol::Udp) | Target::Ports6(Protocol::Udp) => "udp_ports",
            Target::AddrPorts(Protocol::Tcp) | Target::AddrPorts6(Protocol::Tcp) => {
                "tcp_addr_ports"
            }
            Target::AddrPorts(Protocol::Udp) | Target::AddrPorts6(Protocol::Udp) => {
                "udp_addr_ports"
            }
            Target::SpoofGuard => "spoof_guard",
            Target::SpoofGuard6 => "spoof_guard6",
            Target::Bridges6 => "bridges",
            Target::SameBridge6 => "same_bridge",
            Target::Subnets6 => "subnets6",
            Target::MacGuard => "mac_guard",
            Target::Version => "version",
            Target::Bridges => "bridges",
            Target::SameBridge => "same_bridge",
            Target::Subnets => "subnets",
            Target::NoMasquerade => "no_masquerade",
            Target::NoMasquerade6 => "no_masquerade6",
            Target::Generations | Target::Generations6 => "generations",
            Target::Live | Target::Live6 => "live",
            Target::RoutedSubnets => "routed_subnets",
            Target::Sources => "sources",
        }
    }

    /// The map or set's table: the guards live in the bridge family.
    pub fn is_bridge(self) -> bool {
        matches!(
            self,
            Target::SpoofGuard | Target::MacGuard | Target::SpoofGuard6
        )
    }

    /// The family of its table.
    pub fn family(self) -> Family {
        match self {
            _ if self.is_bridge() => Family::Bridge,
            Target::Ports6(_)
            | Target::AddrPorts6(_)
            | Target::Bridges6
            | Target::SameBridge6
            | Target::Subnets6
            | Target::NoMasquerade6
            | Target::Generations6
            | Target::Live6 => Family::Ip6,
            _ => Family::Ip,
        }
    }

    /// Whether it is one of a container's anti-spoofing sets: the bridge
    /// table's guards, or a routed container's `sources`.
    pub fn is_guard(self) -> bool {
        self.is_bridge() || self == Target::Sources
    }

    /// Whether it is a `live` set (address . generation).
    pub fn is_live(self) -> bool {
        matches!(self, Target::Live | Target::Live6)
    }

    /// Whether it is a map (port maps, generations) or a plain set.
    pub fn is_map(self) -> bool {
        matches!(
            self,
            Target::Ports(_)
                | Target::AddrPorts(_)
                | Target::Ports6(_)
                | Target::AddrPorts6(_)
                | Target::Generations
                | Target::Generations6
        )
    }

    /// Whether it is a port map (host port → address . port).
    pub fn is_port_map(self) -> bool {
        matches!(
            self,
            Target::Ports(_) | Target::AddrPorts(_) | Target::Ports6(_) | Target::AddrPorts6(_)
        )
    }

    /// Every per-container target, in a fixed order.
    pub const ALL: [Target; 16] = [
        Target::Ports(Protocol::Tcp),
        Target::Ports(Protocol::Udp),
        Target::AddrPorts(Protocol::Tcp),
        Target::AddrPorts(Protocol::Udp),
        Target::SpoofGuard,
        Target::MacGuard,
        Target::Ports6(Protocol::Tcp),
        Target::Ports6(Protocol::Udp),
        Target::AddrPorts6(Protocol::Tcp),
        Target::AddrPorts6(Protocol::Udp),
        Target::SpoofGuard6,
        Target::Generations,
        Target::Live,
        Target::Generations6,
        Target::Live6,
        Target::Sources,
    ];

    /// Every per-network target.
    pub const NETWORK: [Target; 9] = [
        Target::Bridges,
        Target::SameBridge,
        Target::Subnets,
        Target::NoMasquerade,
        Target::Bridges6,
        Target::SameBridge6,
        Target::Subnets6,
        Target::NoMasquerade6,
        Target::RoutedSubnets,
    ];
}

/// Everything of one container's that lives in the firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub owner: Owner,
    pub address: Ipv4Addr,
    /// Its IPv6 address; None: IPv4 only, and then no IPv6 element at all
    /// (its IPv6 ports, if any, are left out, and the IPv6 spoof guard,
    /// holding nothing for its veth, drops every IPv6 packet it sends).
    pub address6: Option<Ipv6Addr>,
    /// The host end of its veth, which the guards name; empty when the
    /// interface is another's (a CNI plugin chained after another plugin):
    /// then only its ports are published.
    pub veth: String,
    pub ports: Vec<Port>,
    /// Its generation, which its connections carry (see nft/supervisor.nft,
    /// chain generation); None: no generation elements (a chained CNI
    /// attachment, whose interface and traffic are another plugin's, or a
    /// container recorded by an earlier version).
    pub generation: Option<Generation>,
    /// Whether its veth is routed (a CNI attachment in routed mode), not a
    /// bridge port: its guard is then its `sources` element, in the ip
    /// table, and it has no IPv6.
    pub routed: bool,
}

/// One element to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedElement {
    pub target: Target,
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
    /// The element as nft would print it, for messages.
    pub label: ElementLabel,
    /// The port this element publishes, if any (not the guards).
    pub port: Option<Port>,
}

/// An element as nft prints it, `KEY` or `KEY : DATA`, with where its key
/// ends: `--dry-run` writes a map element's comment between the two.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ElementLabel {
    text: String,
    key_end: usize,
}

impl ElementLabel {
    /// A set element's label: its key alone.
    fn of_key(key: String) -> ElementLabel {
        ElementLabel {
            key_end: key.len(),
            text: key,
        }
    }

    /// A map element's label: `KEY : DATA`.
    fn of_map(key: String, data: impl std::fmt::Display) -> ElementLabel {
        ElementLabel {
            key_end: key.len(),
            text: format!("{key} : {data}"),
        }
    }

    /// `KEY` or `KEY : DATA`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key part.
    pub fn key(&self) -> &str {
        &self.text[..self.key_end]
    }

    /// The data part of a map element.
    pub fn data(&self) -> Option<&str> {
        self.text[self.key_end..].strip_prefix(" : ")
    }
}

impl std::fmt::Display for ElementLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The text alone: messages and failed assertions show a label as nft
/// would print the element.
impl std::fmt::Debug for ElementLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.text.fmt(f)
    }
}

impl PartialEq<&str> for ElementLabel {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl Publication {
    /// The elements, guards first (a container must never run with ports
    /// published but its addresses unguarded), then its generation, then
    /// its ports. Its MAC is the one derived from its address (see
    /// `netlink::mac_for`).
    pub fn elements(&self) -> Vec<PlannedElement> {
        self.planned(true)
    }

    /// [`Publication::elements`] with empty labels, in the same order: for
    /// the batch, which shows labels only when the kernel refuses one.
    pub fn unlabelled_elements(&self) -> Vec<PlannedElement> {
        self.planned(false)
    }

    fn planned(&self, labelled: bool) -> Vec<PlannedElement> {
        let mac = mac_for(self.address);
        let veth = ifname(&self.veth);
        let mut guards = if self.veth.is_empty() {
            Vec::new()
        } else if self.routed {
            vec![PlannedElement {
                target: Target::Sources,
                key: concat(&[&veth, &self.address.octets()]),
                data: None,
                label: label(labelled, || {
                    ElementLabel::of_key(format!("\"{}\" . {}", self.veth, self.address))
                }),
                port: None,
            }]
        } else {
            vec![
                PlannedElement {
                    target: Target::SpoofGuard,
                    key: concat(&[&veth, &self.address.octets(), &mac]),
                    data: None,
                    label: label(labelled, || {
                        ElementLabel::of_key(format!(
                            "\"{}\" . {} . {}",
                            self.veth,
                            self.address,
                            Mac(mac)
                        ))
                    }),
                    port: None,
                },
                PlannedElement {
                    target: Target::MacGuard,
                    key: concat(&[&veth, &mac]),
                    data: None,
                    label: label(labelled, || {
                        ElementLabel::of_key(format!("\"{}\" . {}", self.veth, Mac(mac)))
                    }),
                    port: None,
                },
            ]
        };
        if let (Some(address6), false) = (self.address6, self.veth.is_empty() || self.routed) {
            for addr in [address6, link_local_for(mac)] {
                guards.push(PlannedElement {
                    target: Target::SpoofGuard6,
                    key: concat(&[&veth, &addr.octets(), &mac]),
                    data: None,
                    label: label(labelled, || {
                        ElementLabel::of_key(format!("\"{}\" . {addr} . {}", self.veth, Mac(mac)))
                    }),
                    port: None,
                });
            }
        }
        let mut out = guards;
        out.extend(self.generation_elements(labelled));
        for port in &self.ports {
            if port.host_ip.is_ipv6() {
                out.extend(self.element6(port, labelled));
                continue;
            }
            let data = addr_port(self.address, port.container_port);
            let (target, key) = match port.host_ip {
                HostIp::AnyV4 => (
                    Target::Ports(port.protocol),
                    port.host_port.to_be_bytes().to_vec(),
                ),
                HostIp::V4(ip) => (
                    Target::AddrPorts(port.protocol),
                    addr_port(ip, port.host_port),
                ),
                HostIp::AnyV6 | HostIp::V6(_) => continue,
            };
            out.push(PlannedElement {
                target,
                key,
                data: Some(data),
                label: label(labelled, || {
                    ElementLabel::of_map(
                        host_key(port),
                        format_args!("{} . {}", self.address, port.container_port),
                    )
                }),
                port: Some(*port),
            });
        }
        out
    }

    /// Its generation by each of its addresses (a map element) and with
    /// each (a set element): none without a generation.
    fn generation_elements(&self, labelled: bool) -> Vec<PlannedElement> {
        let Some(generation) = self.generation else {
            return Vec::new();
        };
        let mark = generation.get().to_ne_bytes();
        let mut addresses: Vec<(IpAddr, Vec<u8>)> =
            vec![(self.address.into(), self.address.octets().to_vec())];
        if let Some(address6) = self.address6 {
            addresses.push((address6.into(), address6.octets().to_vec()));
        }
        let mut out = Vec::new();
        for (address, octets) in addresses {
            let (map, set) = match address {
                IpAddr::V4(_) => (Target::Generations, Target::Live),
                IpAddr::V6(_) => (Target::Generations6, Target::Live6),
            };
            out.push(PlannedElement {
                target: map,
                key: octets.clone(),
                data: Some(mark.to_vec()),
                label: label(labelled, || {
                    ElementLabel::of_map(address.to_string(), generation)
                }),
                port: None,
            });
            out.push(PlannedElement {
                target: set,
                key: concat(&[&octets, &mark]),
                data: None,
                label: label(labelled, || {
                    ElementLabel::of_key(format!("{address} . {generation}"))
                }),
                port: None,
            });
        }
        out
    }

    /// The element of an IPv6 port; none without an IPv6 address.
    fn element6(&self, port: &Port, labelled: bool) -> Option<PlannedElement> {
        let address6 = self.address6?;
        let data = addr6_port(address6, port.container_port);
        let (target, key) = match port.host_ip {
            HostIp::V6(ip) => (
                Target::AddrPorts6(port.protocol),
                addr6_port(ip, port.host_port),
            ),
            _ => (
                Target::Ports6(port.protocol),
                port.host_port.to_be_bytes().to_vec(),
            ),
        };
        Some(PlannedElement {
            target,
            key,
            data: Some(data),
            label: label(labelled, || {
                ElementLabel::of_map(
                    host_key(port),
                    format_args!("{address6} . {}", port.container_port),
                )
            }),
            port: Some(*port),
        })
    }
}

/// An element's label, as nft prints it, when `labelled`; else empty.
fn label(labelled: bool, make: impl FnOnce() -> ElementLabel) -> ElementLabel {
    if labelled {
        make()
    } else {
        ElementLabel::default()
    }
}

/// A port map element's key as nft prints it: the host port, after the
/// host address when the port is published on one.
fn host_key(port: &Port) -> String {
    match port.host_ip {
        HostIp::V4(ip) => format!("{ip} . {}", port.host_port),
        HostIp::V6(ip) => format!("{ip} . {}", port.host_port),
        HostIp::AnyV4 | HostIp::AnyV6 => format!("{}", port.host_port),
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

/// `ipv6_addr . inet_service` in the kernel's layout.
fn addr6_port(addr: Ipv6Addr, port: u16) -> Vec<u8> {
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
            address6: None,
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
            generation: None,
            routed: false,
        }
    }

    #[test]
    fn a_routed_container_is_guarded_by_its_sources_element_alone_and_has_no_ipv6() {
        let mut routed = web();
        routed.routed = true;
        routed.address6 = Some("fd00::2".parse().unwrap());
        let elements = routed.elements();
        let guards: Vec<_> = elements.iter().filter(|e| e.target.is_guard()).collect();
        assert_eq!(guards.len(), 1, "{elements:?}");
        assert_eq!(guards[0].target, Target::Sources);
        assert_eq!(guards[0].label, "\"sv-0123456789ab\" . 172.16.0.2");
        assert_eq!(
            guards[0].key,
            concat(&[&ifname("sv-0123456789ab"), &[172, 16, 0, 2]])
        );
        assert!(elements.iter().all(|e| !e.target.is_bridge()));
        assert_eq!(elements[0].target, Target::Sources, "the guard first");
    }

    #[test]
    fn unlabelled_elements_are_the_elements_with_empty_labels() {
        let mut dual = web();
        dual.address6 = Some("fd00::2".parse().unwrap());
        dual.generation = Generation::new(7);
        dual.ports.push(Port {
            host_ip: HostIp::AnyV6,
            host_port: 8443,
            container_port: 443,
            protocol: Protocol::Tcp,
        });
        let labelled = dual.elements();
        let bare = dual.unlabelled_elements();
        assert_eq!(labelled.len(), bare.len());
        for (l, b) in labelled.iter().zip(&bare) {
            assert!(
                !l.label.as_str().is_empty() && b.label.as_str().is_empty(),
                "{l:?} {b:?}"
            );
            let plain = |e: &PlannedElement| (e.target, e.key.clone(), e.data.clone(), e.port);
            assert_eq!(plain(l), plain(b));
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

    /// `web` dual stack: its ports on every IPv4 address, on every IPv6
    /// address, and on one IPv6 address.
    pub(crate) fn web6() -> Publication {
        let mut web = web();
        web.address6 = Some("fd53:7570:6572::2".parse().unwrap());
        web.ports = vec![
            web.ports[0],
            Port {
                host_ip: HostIp::AnyV6,
                ..web.ports[0]
            },
            Port {
                host_ip: HostIp::V6("2001:db8::1".parse().unwrap()),
                host_port: 5353,
                container_port: 53,
                protocol: Protocol::Udp,
            },
        ];
        web
    }

    #[test]
    fn a_dual_stack_container_guards_both_ipv6_addresses_and_publishes_per_family() {
        let e = web6().elements();
        let found: Vec<_> = e.iter().map(|e| (e.target, e.label.as_str())).collect();
        assert_eq!(
            found,
            [
                (
                    Target::SpoofGuard,
                    "\"sv-0123456789ab\" . 172.16.0.2 . 02:42:ac:10:00:02"
                ),
                (Target::MacGuard, "\"sv-0123456789ab\" . 02:42:ac:10:00:02"),
                (
                    Target::SpoofGuard6,
                    "\"sv-0123456789ab\" . fd53:7570:6572::2 . 02:42:ac:10:00:02"
                ),
                (
                    Target::SpoofGuard6,
                    "\"sv-0123456789ab\" . fe80::42:acff:fe10:2 . 02:42:ac:10:00:02"
                ),
                (Target::Ports(Protocol::Tcp), "8080 : 172.16.0.2 . 8000"),
                (
                    Target::Ports6(Protocol::Tcp),
                    "8080 : fd53:7570:6572::2 . 8000"
                ),
                (
                    Target::AddrPorts6(Protocol::Udp),
                    "2001:db8::1 . 5353 : fd53:7570:6572::2 . 53"
                ),
            ]
        );
    }

    #[test]
    fn ipv6_keys_and_data_use_the_kernels_layout() {
        let e = web6().elements();
        let fd53 = [
            0xfd, 0x53, 0x75, 0x70, 0x65, 0x72, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
        ];
        let mac = [2, 0x42, 172, 16, 0, 2, 0, 0];
        // ifname (16) . ipv6_addr (16) . ether_addr (6, padded to 8)
        assert_eq!(e[2].key.len(), 40);
        assert_eq!(&e[2].key[..15], b"sv-0123456789ab");
        assert_eq!(&e[2].key[16..32], &fd53);
        assert_eq!(&e[2].key[32..], &mac);
        assert_eq!(
            &e[3].key[16..32],
            &[
                0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x42, 0xac, 0xff, 0xfe, 0x10, 0, 2
            ]
        );
        // inet_service : ipv6_addr . inet_service (2, padded to 4)
        assert_eq!(e[5].key, vec![0x1f, 0x90]);
        let data = e[5].data.as_deref().unwrap();
        assert_eq!(data.len(), 20);
        assert_eq!(&data[..16], &fd53);
        assert_eq!(&data[16..], &[0x1f, 0x40, 0, 0]);
        // ipv6_addr . inet_service
        assert_eq!(e[6].key.len(), 20);
        assert_eq!(&e[6].key[..4], &[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(&e[6].key[16..], &[0x14, 0xe9, 0, 0]);
    }

    #[test]
    fn without_an_ipv6_address_there_is_no_ipv6_element() {
        let mut web = web6();
        web.address6 = None;
        let targets: Vec<_> = web.elements().iter().map(|e| e.target).collect();
        assert_eq!(
            targets,
            [
                Target::SpoofGuard,
                Target::MacGuard,
                Target::Ports(Protocol::Tcp)
            ]
        );
    }

    #[test]
    fn a_generation_is_one_map_element_and_one_pair_per_address_after_the_guards() {
        let mut web = web6();
        web.generation = Generation::new(0x8f3a_0c11);
        let e = web.elements();
        let found: Vec<_> = e[4..8]
            .iter()
            .map(|e| (e.target, e.label.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (Target::Generations, "172.16.0.2 : 0x8f3a0c11"),
                (Target::Live, "172.16.0.2 . 0x8f3a0c11"),
                (Target::Generations6, "fd53:7570:6572::2 : 0x8f3a0c11"),
                (Target::Live6, "fd53:7570:6572::2 . 0x8f3a0c11"),
            ]
        );
        // A mark is in host order, as the kernel keeps it.
        let mark = 0x8f3a_0c11u32.to_ne_bytes();
        assert_eq!(e[4].key, [172, 16, 0, 2]);
        assert_eq!(e[4].data.as_deref(), Some(&mark[..]));
        assert_eq!(e[5].key, concat(&[&[172, 16, 0, 2], &mark]));
        assert_eq!(e[7].key.len(), 20);
        assert!(e[4..8].iter().all(|e| e.port.is_none()));
        // Removed with the ports, before the guards.
        assert!(e[4..8].iter().all(|e| !e.target.is_bridge()));
        assert_eq!(
            e.len(),
            web6().elements().len() + 4,
            "and nothing else changed"
        );
    }

    #[test]
    fn ipv6_targets_live_in_the_ip6_and_bridge_tables() {
        assert_eq!(Target::Ports6(Protocol::Tcp).family(), Family::Ip6);
        assert_eq!(Target::Subnets6.family(), Family::Ip6);
        assert_eq!(Target::SpoofGuard6.family(), Family::Bridge);
        assert_eq!(Target::Ports(Protocol::Tcp).family(), Family::Ip);
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
