//! The host bridge containers attach to: created when absent, given the
//! subnet's gateway address, up. Idempotent, and safe when several
//! supervisors ensure it at the same moment: the kernel's EEXIST decides who
//! created it, and everyone then configures it the same way.

use std::net::Ipv4Addr;

use rtnetlink::LinkBridge;
use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::packet_route::route::RouteMessage;

use super::{Error, Netlink, address, is_errno, link, route};
use crate::values::Subnet;

/// A bridge and the subnet it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub subnet: Subnet,
}

/// Makes sure `bridge` exists, holds the gateway address and is up; returns
/// its interface index. A subnet overlapping a route on another interface is
/// refused with that interface's name, and so is a bridge already serving
/// another subnet.
pub async fn ensure_bridge(nl: &Netlink, bridge: &Bridge) -> Result<u32, Error> {
    link::check_ifname(&bridge.name)?;
    let handle = nl.handle();
    // One round: the kernel answers the three reads in turn.
    let (existing, routes, all_addresses) = tokio::try_join!(
        link::by_name(handle, &bridge.name),
        route::ipv4_routes(handle),
        address::ipv4_all(handle),
    )?;
    check_overlap(nl, bridge, &routes, existing.as_ref().map(|l| l.index)).await?;
    let br = match existing {
        Some(br) => br,
        None => create(nl, &bridge.name, bridge.subnet.gateway()).await?,
    };
    if br.kind != Some(InfoKind::Bridge) {
        return Err(Error::NotABridge {
            name: bridge.name.clone(),
            kind: br
                .kind
                .map_or_else(|| "kindless".to_string(), |k| k.to_string()),
        });
    }
    let subnet = bridge.subnet;
    let gateway = subnet.gateway();
    let addresses: Vec<(Ipv4Addr, u8)> = all_addresses
        .iter()
        .filter(|a| a.index == br.index)
        .map(|a| (a.addr, a.prefix_len))
        .collect();
    if let Some((addr, len)) = addresses
        .iter()
        .find(|a| **a != (gateway, subnet.prefix_len()))
    {
        return Err(Error::BridgeAddress {
            bridge: bridge.name.clone(),
            existing: format!("{addr}/{len}"),
            wanted: format!("{gateway}/{}", subnet.prefix_len()),
        });
    }
    let add_address = async {
        if addresses.is_empty() {
            // A concurrent supervisor may add it first: EEXIST is fine.
            address::add(
                handle,
                br.index,
                &bridge.name,
                gateway,
                subnet.prefix_len(),
                true,
            )
            .await?;
        }
        Ok(())
    };
    let set_up = async {
        if !br.up {
            link::set_up(handle, br.index, &bridge.name).await?;
        }
        Ok(())
    };
    tokio::try_join!(add_address, set_up)?;
    Ok(br.index)
}

/// Creates the bridge with a fixed MAC (the gateway's, docker-style): left
/// alone, a bridge takes the lowest MAC of its ports, which changes as
/// containers come and go, and containers' ARP entries for the gateway go
/// stale.
async fn create(nl: &Netlink, name: &str, gateway: Ipv4Addr) -> Result<link::Link, Error> {
    let handle = nl.handle();
    let message = LinkBridge::new(name)
        .address(address::mac_for(gateway).to_vec())
        .build();
    match handle.link().add(message).execute().await {
        Err(err) if is_errno(&err, libc::EEXIST) => {}
        other => other.map_err(Error::request("creating bridge", name))?,
    }
    // Created by us or by a concurrent supervisor; deleted in between only
    // by someone deleting it on purpose.
    link::by_name(handle, name)
        .await?
        .ok_or_else(|| Error::Request {
            action: "creating bridge",
            object: name.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })
}

async fn check_overlap(
    nl: &Netlink,
    bridge: &Bridge,
    routes: &[RouteMessage],
    bridge_index: Option<u32>,
) -> Result<(), Error> {
    let handle = nl.handle();
    let Some(found) = route::first_overlap(routes, bridge.subnet, bridge_index) else {
        return Ok(());
    };
    let interface = match found.oif {
        Some(index) => match link::by_index(handle, index).await? {
            Some(l) => l.name,
            None => format!("interface #{index}"),
        },
        None => "no interface (blackhole or multipath route)".to_string(),
    };
    Err(Error::SubnetOverlap {
        subnet: bridge.subnet,
        route: format!("{}/{}", found.destination, found.prefix_len),
        interface,
    })
}
