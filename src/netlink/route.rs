//! IPv4 routes: the container's default route, and the host routes a new
//! subnet must not overlap.

use std::net::Ipv4Addr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::Error;
use crate::values::Subnet;

/// The kernel's table of local and broadcast addresses: routes to the host's
/// own addresses, never a reason to refuse a subnet.
const RT_TABLE_LOCAL: u8 = 255;

/// Adds `default via gateway`. The link towards the gateway must be up and
/// hold an address in the gateway's subnet, else the kernel answers
/// ENETUNREACH.
pub(crate) async fn add_default(handle: &Handle, gateway: Ipv4Addr) -> Result<(), Error> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .build();
    handle
        .route()
        .add(route)
        .execute()
        .await
        .map_err(Error::request(
            "adding default route via",
            gateway.to_string(),
        ))
}

/// A route whose destination shares addresses with a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Overlap {
    pub destination: Ipv4Addr,
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

/// Every IPv4 route of every table.
pub(crate) async fn ipv4_routes(handle: &Handle) -> Result<Vec<RouteMessage>, Error> {
    handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(Error::request("listing", "IPv4 routes"))
}

fn overlap(route: &RouteMessage, subnet: Subnet, except: Option<u32>) -> Option<Overlap> {
    let header = &route.header;
    if header.destination_prefix_length == 0 || header.table == RT_TABLE_LOCAL {
        return None;
    }
    let mut destination = None;
    let mut oif = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(addr)) => destination = Some(*addr),
            RouteAttribute::Oif(index) => oif = Some(*index),
            _ => {}
        }
    }
    let destination = destination?;
    if oif.is_some() && oif == except {
        return None;
    }
    subnet
        .overlaps(destination, header.destination_prefix_length)
        .then_some(Overlap {
            destination,
            prefix_len: header.destination_prefix_length,
            oif,
        })
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_route::route::RouteHeader;

    use super::*;

    fn route(dst: [u8; 4], len: u8, table: u8, oif: Option<u32>) -> RouteMessage {
        let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::from(dst), len)
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
            (Ipv4Addr::new(172, 16, 0, 0), 16, Some(7))
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
}
