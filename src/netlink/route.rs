//! The host routes a new subnet (IPv4 or IPv6) must not overlap.

use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};

use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::Error;
use super::direct::Direct;

use crate::values::{Subnet, Subnet6};

/// The kernel's table of local and broadcast addresses: routes to the host's
/// own addresses, never a reason to refuse a subnet.
const RT_TABLE_LOCAL: u8 = 255;

/// A route whose destination shares addresses with a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Overlap {
    pub destination: IpAddr,
    pub prefix_len: u8,
    /// The output interface; None for routes without one (blackhole, multipath).
    pub oif: Option<u32>,
}

/// The first route, in any table but `local`, that overlaps `subnet` and
/// does not go out of link `except` (the bridge itself). Default routes
/// overlap everything and are ignored.
pub(crate) fn first_overlap(
    routes: &[RouteMessage],
    subnet: Subnet,
    except: Option<u32>,
) -> Option<Overlap> {
    routes
        .iter()
        .find_map(|route| overlap(route, subnet, except))
}

/// [`first_overlap`] for an IPv6 subnet.
pub(crate) fn first_overlap6(
    routes: &[RouteMessage],
    subnet: Subnet6,
    except: Option<u32>,
) -> Option<Overlap> {
    routes
        .iter()
        .find_map(|route| overlap6(route, subnet, except))
}

/// The first of the host's own addresses (a `local` route, in the `local`
/// table) that `overlaps` says share addresses with a subnet, on a link
/// other than `except` (the bridge, whose gateway it is): a container
/// given one could not be reached, and its published ports would lead to
/// the host's own services. A local route may cover a whole range (AnyIP:
/// `ip route add local 172.16.0.0/16 dev lo`), whose first address can lie
/// outside a subnet inside it: `overlaps` is given the route's prefix
/// length too. With that length and its link's index.
pub(crate) fn first_host_address(
    routes: &[RouteMessage],
    overlaps: impl Fn(IpAddr, u8) -> bool,
    except: Option<u32>,
) -> Option<HostAddress> {
    routes.iter().find_map(|route| {
        let header = &route.header;
        if header.table != RT_TABLE_LOCAL || header.kind != RouteType::Local {
            return None;
        }
        let (destination, oif) = destination_and_oif(route);
        let destination = destination?;
        let prefix_len = header.destination_prefix_length;
        (!(oif.is_some() && oif == except) && overlaps(destination, prefix_len)).then_some(
            HostAddress {
                address: destination,
                prefix_len,
                oif,
            },
        )
    })
}

/// What [`first_host_address`] found: an address of the host's, or a
/// range of them, and its link's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub oif: Option<u32>,
}

impl HostAddress {
    /// How a subnet meets it, for a message: "holds ADDRESS, an address
    /// of this host", or for a range "overlaps RANGE, addresses of this
    /// host (a local route)".
    pub(crate) fn describe(&self) -> String {
        match self.is_single() {
            true => format!("holds {}, an address of this host", self.address),
            false => format!(
                "overlaps {}/{}, addresses of this host (a local route)",
                self.address, self.prefix_len
            ),
        }
    }

    /// Whether it is one address, not a range.
    pub(crate) fn is_single(&self) -> bool {
        self.prefix_len
            == match self.address {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            }
    }
}

/// A route on a link other than `bridge` that overlaps `subnet` (or
/// `subnet6`), as [`first_overlap`] finds it, or else an address of the
/// host's (or a range of them) on such a link that the subnet shares, as
/// [`first_host_address`] finds it (a `/32` of keepalived's has no prefix
/// route to overlap): with the subnet it meets and its link named. For a
/// network another program made (a chained CNI plugin's), whose subnet
/// comes from that program's word. One dump, on a socket of its own.
pub fn overlap_beside(
    bridge: &str,
    subnet: Subnet,
    subnet6: Option<Subnet6>,
) -> Result<Option<RouteOverlap>, Error> {
    let mut direct = Direct::open().map_err(Error::Socket)?;
    let routes = from_dump(direct.ask(dump_request(subnet6.is_some()), true))?;
    let except = direct.index_of(bridge).ok();
    let route = |(subnet, found): (String, Overlap)| {
        let meets = format!(
            "overlaps the route {}/{}",
            found.destination, found.prefix_len
        );
        (subnet, meets, found.oif)
    };
    let host = |(subnet, found): (String, HostAddress)| (subnet, found.describe(), found.oif);
    let found = first_overlap(&routes, subnet, except)
        .map(|found| route((subnet.to_string(), found)))
        .or_else(|| {
            let subnet6 = subnet6?;
            first_overlap6(&routes, subnet6, except)
                .map(|found| route((subnet6.to_string(), found)))
        })
        .or_else(|| {
            let overlaps = |address, prefix_len| match address {
                IpAddr::V4(address) => subnet.overlaps(address, prefix_len),
                IpAddr::V6(_) => false,
            };
            first_host_address(&routes, overlaps, except)
                .map(|found| host((subnet.to_string(), found)))
        })
        .or_else(|| {
            let subnet6 = subnet6?;
            let overlaps = |address, prefix_len| match address {
                IpAddr::V6(address) => subnet6.overlaps(address, prefix_len),
                IpAddr::V4(_) => false,
            };
            first_host_address(&routes, overlaps, except)
                .map(|found| host((subnet6.to_string(), found)))
        });
    Ok(found.map(|(subnet, meets, oif)| RouteOverlap {
        subnet,
        meets,
        interface: match oif {
            Some(index) => direct
                .name_of(index)
                .unwrap_or_else(|_| format!("interface #{index}")),
            None => "no interface (blackhole or multipath route)".to_string(),
        },
    }))
}

/// What [`overlap_beside`] found: the subnet, how it meets the route or
/// the host's address ("overlaps the route 10.0.0.0/8", "holds 10.1.2.3,
/// an address of this host"), and the link that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOverlap {
    pub subnet: String,
    pub meets: String,
    pub interface: String,
}

/// The request for every IPv4 route of every table, and with `ipv6` every
/// IPv6 one too, to be answered on the spot (see `direct` and
/// `Direct::ask_all`).
pub(crate) fn dump_request(ipv6: bool) -> RouteNetlinkMessage {
    // All zero but the family: with strict checking a table, protocol or
    // type in the header would filter the dump.
    let mut message = RouteMessage::default();
    message.header.address_family = match ipv6 {
        true => AddressFamily::Unspec,
        false => AddressFamily::Inet,
    };
    RouteNetlinkMessage::GetRoute(message)
}

/// The routes among the answers to [`dump_request`].
pub(crate) fn from_dump(
    answers: std::io::Result<Vec<RouteNetlinkMessage>>,
) -> Result<Vec<RouteMessage>, Error> {
    let answers = answers.map_err(Error::direct("listing", "routes"))?;
    Ok(answers
        .into_iter()
        .filter_map(|answer| match answer {
            RouteNetlinkMessage::NewRoute(route) => Some(route),
            _ => None,
        })
        .collect())
}

/// What the kernel's routes make of an address: one of the host's own
/// (`local`), a broadcast one (`broadcast`), or another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Local,
    Broadcast,
    Other,
}

/// The kind of each of `addresses`, as `ip route get` tells it, in one
/// message and one round trip: the route type is what the kernel decides
/// by, where a bind test is fooled (`ip_nonlocal_bind` binds any address,
/// and a directed broadcast one binds too). One the kernel has no route
/// to, for whatever reason, is another.
pub fn address_kinds(addresses: &[IpAddr]) -> Result<Vec<AddressKind>, Error> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let mut direct = Direct::open().map_err(Error::Socket)?;
    Ok(lookup(&mut direct, addresses)?
        .into_iter()
        .map(|(kind, _)| kind)
        .collect())
}

/// Where the kernel sends an address: its kind, and the name of the link
/// its route goes out of (None without a route, or for a route through
/// no link: blackhole, multipath).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedTo {
    pub kind: AddressKind,
    pub link: Option<String>,
}

/// [`address_kinds`] with each route's link named: one more ioctl per
/// address routed through a link (SIOCGIFNAME, no message to build).
pub fn address_routes(addresses: &[IpAddr]) -> Result<Vec<RoutedTo>, Error> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let mut direct = Direct::open().map_err(Error::Socket)?;
    Ok(lookup(&mut direct, addresses)?
        .into_iter()
        .map(|(kind, oif)| RoutedTo {
            kind,
            // Gone since the answer: it leads nowhere now.
            link: oif.and_then(|index| direct.name_of(index).ok()),
        })
        .collect())
}

/// Each address's route type and output link index, asked on `direct`.
fn lookup(
    direct: &mut Direct,
    addresses: &[IpAddr],
) -> Result<Vec<(AddressKind, Option<u32>)>, Error> {
    let outcomes = direct
        .pipeline(addresses.iter().map(|&a| (get_request(a), None)).collect())
        .map_err(Error::direct("looking up routes to", "addresses"))?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(Some(RouteNetlinkMessage::NewRoute(route))) => {
                let kind = match route.header.kind {
                    RouteType::Local => AddressKind::Local,
                    RouteType::Broadcast => AddressKind::Broadcast,
                    _ => AddressKind::Other,
                };
                let oif = route.attributes.iter().find_map(|attr| match attr {
                    RouteAttribute::Oif(index) => Some(*index),
                    _ => None,
                });
                (kind, oif)
            }
            // No route (unreachable, `prohibit`: EACCES, `blackhole`:
            // EINVAL, …): not the host's, whatever the reason; whoever asks
            // lets the bind decide, as without the lookup.
            _ => (AddressKind::Other, None),
        })
        .collect())
}

/// The interface of the route the host's table matches for `address`
/// (see [`matched_route`]); None when none matches.
pub fn route_interface(address: Ipv4Addr) -> Result<Option<u32>, Error> {
    let mut direct = Direct::open().map_err(Error::Socket)?;
    Ok(matched_route(&mut direct, address)?.and_then(|matched| matched.oif))
}

/// The route the kernel's lookup of an address settled on (see
/// [`matched_route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatchedRoute {
    pub prefix_len: u8,
    /// None: a blackhole or multipath route.
    pub oif: Option<u32>,
    /// A route of type local: the address is the host's own.
    pub local: bool,
}

/// The route the host's table matches for `address` (RTM_F_FIB_MATCH:
/// the entry itself, not the route resolved for one packet): its prefix
/// length and output interface; None when none matches.
pub(crate) fn matched_route(
    direct: &mut Direct,
    address: Ipv4Addr,
) -> Result<Option<MatchedRoute>, Error> {
    let mut request = get_message(IpAddr::V4(address));
    request.header.flags = RouteFlags::FibMatch;
    match direct.ask(RouteNetlinkMessage::GetRoute(request), false) {
        Ok(answers) => Ok(answers.into_iter().find_map(|answer| match answer {
            RouteNetlinkMessage::NewRoute(route) => Some(MatchedRoute {
                prefix_len: route.header.destination_prefix_length,
                oif: route.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(index) => Some(*index),
                    _ => None,
                }),
                local: route.header.kind == RouteType::Local,
            }),
            _ => None,
        })),
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(Error::direct(
            "looking up the route to",
            address.to_string(),
        )(err)),
    }
}

/// RTM_GETROUTE for one address; every other field zero, as strict
/// checking wants.
fn get_request(address: IpAddr) -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetRoute(get_message(address))
}

/// [`get_request`]'s message.
fn get_message(address: IpAddr) -> RouteMessage {
    let mut message = RouteMessage::default();
    let (family, len, destination) = match address {
        IpAddr::V4(a) => (AddressFamily::Inet, 32, RouteAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(a)),
    };
    message.header.address_family = family;
    message.header.destination_prefix_length = len;
    message
        .attributes
        .push(RouteAttribute::Destination(destination));
    message
}

/// The destination, its prefix length and the output interface of a route
/// that is not a default route nor in the `local` table.
fn destination(route: &RouteMessage) -> Option<(IpAddr, u8, Option<u32>)> {
    let header = &route.header;
    if header.destination_prefix_length == 0 || header.table == RT_TABLE_LOCAL {
        return None;
    }
    let (destination, oif) = destination_and_oif(route);
    Some((destination?, header.destination_prefix_length, oif))
}

/// A route's destination address and output link, as far as it has them.
pub(crate) fn destination_and_oif(route: &RouteMessage) -> (Option<IpAddr>, Option<u32>) {
    let mut destination = None;
    let mut oif = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(addr)) => {
                destination = Some(IpAddr::V4(*addr))
            }
            RouteAttribute::Destination(RouteAddress::Inet6(addr)) => {
                destination = Some(IpAddr::V6(*addr))
            }
            RouteAttribute::Oif(index) => oif = Some(*index),
            _ => {}
        }
    }
    (destination, oif)
}

fn overlap(route: &RouteMessage, subnet: Subnet, except: Option<u32>) -> Option<Overlap> {
    if is_routed_container(route, subnet) {
        return None;
    }
    overlap_where(route, except, |destination, prefix_len| match destination {
        IpAddr::V4(addr) => subnet.overlaps(addr, prefix_len),
        IpAddr::V6(_) => false,
    })
}

fn overlap6(route: &RouteMessage, subnet: Subnet6, except: Option<u32>) -> Option<Overlap> {
    overlap_where(route, except, |destination, prefix_len| match destination {
        IpAddr::V6(addr) => subnet.overlaps(addr, prefix_len),
        IpAddr::V4(_) => false,
    })
}

/// Whether `route` is a routed container's of `subnet` (see
/// `super::routed::host_route`): a `/32` of the subnet, scope link, from
/// the subnet's gateway, static. The subnet is its network's, on the same
/// bridge: no overlap.
pub(crate) fn is_routed_container(route: &RouteMessage, subnet: Subnet) -> bool {
    let header = &route.header;
    let from_gateway = route.attributes.iter().any(
        |a| matches!(a, RouteAttribute::PrefSource(RouteAddress::Inet(src)) if *src == subnet.gateway()),
    );
    let in_subnet = route.attributes.iter().any(
        |a| matches!(a, RouteAttribute::Destination(RouteAddress::Inet(dst)) if subnet.overlaps(*dst, 32)),
    );
    header.destination_prefix_length == 32
        && header.scope == RouteScope::Link
        && header.protocol == RouteProtocol::Static
        && from_gateway
        && in_subnet
}

/// The route as an overlap when `overlaps` says its destination is one
/// and it does not go out of link `except`.
fn overlap_where(
    route: &RouteMessage,
    except: Option<u32>,
    overlaps: impl Fn(IpAddr, u8) -> bool,
) -> Option<Overlap> {
    let (destination, prefix_len, oif) = destination(route)?;
    (!(oif.is_some() && oif == except) && overlaps(destination, prefix_len)).then_some(Overlap {
        destination,
        prefix_len,
        oif,
    })
}

#[cfg(test)]
mod tests {
    use rtnetlink::RouteMessageBuilder;
    use rtnetlink::packet_route::route::RouteHeader;

    use super::*;

    /// A route to `dst` (IPv4 or IPv6) in `table`, on link `oif`.
    fn route(dst: impl Into<IpAddr>, len: u8, table: u8, oif: Option<u32>) -> RouteMessage {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.into(), len)
            .unwrap()
            .table_id(u32::from(table));
        if let Some(oif) = oif {
            builder = builder.output_interface(oif);
        }
        builder.build()
    }

    #[test]
    fn overlapping_routes_on_other_links_are_found() {
        let subnet: Subnet = "172.16.0.0/24".parse().unwrap();
        let main = RouteHeader::RT_TABLE_MAIN;
        let found = overlap(&route([172, 16, 0, 0], 16, main, Some(7)), subnet, Some(3)).unwrap();
        assert_eq!(
            (found.destination, found.prefix_len, found.oif),
            (IpAddr::from([172, 16, 0, 0]), 16, Some(7))
        );
        assert!(overlap(&route([172, 16, 0, 128], 25, main, None), subnet, Some(3)).is_some());
        // The bridge's own route, other subnets, local-table and default routes are fine.
        assert!(overlap(&route([172, 16, 0, 0], 24, main, Some(3)), subnet, Some(3)).is_none());
        assert!(overlap(&route([172, 16, 1, 0], 24, main, Some(7)), subnet, Some(3)).is_none());
        assert!(
            overlap(
                &route([172, 16, 0, 1], 32, RT_TABLE_LOCAL, Some(7)),
                subnet,
                None
            )
            .is_none()
        );
        assert!(overlap(&route([0, 0, 0, 0], 0, main, Some(7)), subnet, None).is_none());
    }

    #[test]
    fn a_host_address_in_the_subnet_on_another_link_is_found() {
        let subnet: Subnet = "172.16.0.0/24".parse().unwrap();
        let contains = |address: IpAddr, prefix_len| match address {
            IpAddr::V4(address) => subnet.overlaps(address, prefix_len),
            IpAddr::V6(_) => false,
        };
        let local_range = |dst: [u8; 4], len, oif| {
            let mut route = route(dst, len, RT_TABLE_LOCAL, Some(oif));
            route.header.kind = RouteType::Local;
            route
        };
        let local = |dst: [u8; 4], oif| local_range(dst, 32, oif);
        let mut broadcast = local([172, 16, 0, 255], 7);
        broadcast.header.kind = RouteType::Broadcast;
        // The bridge's own gateway, a broadcast route, another subnet's.
        let fine = [
            local([172, 16, 0, 1], 3),
            broadcast,
            local([10, 0, 0, 2], 7),
        ];
        assert_eq!(first_host_address(&fine, contains, Some(3)), None);
        let vip = [local([172, 16, 0, 2], 7)];
        let found = first_host_address(&vip, contains, Some(3)).unwrap();
        assert_eq!(
            (found.address, found.prefix_len, found.oif),
            (IpAddr::from([172, 16, 0, 2]), 32, Some(7))
        );
        assert!(found.is_single());
        // Before the bridge exists, any link's.
        assert!(first_host_address(&fine[..1], contains, None).is_some());
        // A range of the host's holding the subnet, its first address
        // outside it (AnyIP on lo), and one inside the subnet.
        for (dst, len) in [
            ([172, 16, 0, 0], 16),
            ([172, 0, 0, 0], 8),
            ([172, 16, 0, 128], 25),
        ] {
            let found = first_host_address(&[local_range(dst, len, 1)], contains, Some(3));
            let found = found.unwrap_or_else(|| panic!("{dst:?}/{len}"));
            assert_eq!((found.prefix_len, found.oif), (len, Some(1)));
            assert!(!found.is_single());
        }
        let beside = [local_range([172, 17, 0, 0], 16, 1)];
        assert_eq!(first_host_address(&beside, contains, Some(3)), None);
    }

    fn route6(dst: &str, len: u8, table: u8, oif: Option<u32>) -> RouteMessage {
        route(dst.parse::<std::net::Ipv6Addr>().unwrap(), len, table, oif)
    }

    #[test]
    fn overlapping_ipv6_routes_on_other_links_are_found_and_ipv4_ones_ignored() {
        let subnet: Subnet6 = "fd53:7570:6572::/64".parse().unwrap();
        let main = RouteHeader::RT_TABLE_MAIN;
        let routes = [
            route6("fd53:7570:6572::", 64, main, Some(3)),
            route6("fd53:7570:6573::", 64, main, Some(7)),
            route6("fd53:7570:6572::1", 128, RT_TABLE_LOCAL, Some(7)),
            route6("::", 0, main, Some(7)),
            route([172, 16, 0, 0], 16, main, Some(7)),
        ];
        assert_eq!(first_overlap6(&routes, subnet, Some(3)), None);
        let found =
            first_overlap6(&[route6("fd53:7570::", 32, main, Some(7))], subnet, Some(3)).unwrap();
        assert_eq!(found.destination.to_string(), "fd53:7570::");
        assert_eq!((found.prefix_len, found.oif), (32, Some(7)));
    }
}
