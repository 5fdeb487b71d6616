//! The addresses of an ADD that the kernel's routes must judge: a
//! `hostIP` that is a subnet's directed broadcast address binds (the
//! port check passes) but no connection reaches it, and a chained
//! plugin's container address that is one of the host's own would make
//! an element forwarding a host port to the host itself. The route type
//! tells both, where a bind test is fooled by `ip_nonlocal_bind`. A
//! container address the kernel routes through a bridge of ours (one with
//! a lease directory here, or bearing the mark of one we made) is not the previous plugin's either: it is, or
//! will be, a `run` container's or an attachment's, whose ports its
//! element would publish behind its back.
//!
//! One netlink message for all of them, answered on the spot (a socket,
//! one `sendmsg`, one `recv`: tens of microseconds), and none when the
//! ADD has no such address.

use std::net::IpAddr;

use super::attachment::system;
use super::config::Config;
use super::protocol::{CniError, code};
use crate::ipam::LeaseDir;
use crate::netlink::{AddressKind, RoutedTo, address_routes};

/// Refuses (code 7, naming the field) a `hostIP` the kernel routes as a
/// broadcast address, and any of `previous`, the chained plugin's
/// container addresses with their places in `prevResult.ips`, that is
/// one of the host's own.
pub fn check(config: &Config, previous: &[(usize, IpAddr)]) -> Result<(), CniError> {
    let addresses: Vec<IpAddr> = previous
        .iter()
        .chain(&config.host_ips)
        .map(|&(_, address)| address)
        .collect();
    let routes = address_routes(&addresses).map_err(|e| system("routes", &e))?;
    let (previous_routes, host_ip_routes) = routes.split_at(previous.len());
    for (&(at, address), route) in previous.iter().zip(previous_routes) {
        if let Some(bridge) = ours(config, route)? {
            return Err(CniError::new(
                code::CONFIG,
                format!(
                    "prevResult.ips[{at}]: {address} is on bridge {bridge}, whose addresses \
                     this plugin hands out{}: not the previous plugin's container's, its \
                     ports would be published to another",
                    holder(config, bridge, address)
                ),
            ));
        }
        if route.kind == AddressKind::Local {
            return Err(CniError::new(
                code::CONFIG,
                format!(
                    "prevResult.ips[{at}]: {address} is an address of this host, not of a \
                     container: its ports would be forwarded to the host itself"
                ),
            ));
        }
    }
    for (&(at, address), route) in config.host_ips.iter().zip(host_ip_routes) {
        if route.kind == AddressKind::Broadcast {
            return Err(CniError::new(
                code::CONFIG,
                format!(
                    "runtimeConfig.portMappings[{at}].hostIP: \"{address}\" is a broadcast \
                     address, not an address of this host a connection can reach"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `bridge` is one of ours: a bridge whose addresses `run` and
/// the main plugin lease from `config`'s state directory, or from any
/// other: the tables are every state directory's, so a chained network
/// naming a state directory of its own must not take another's bridge for
/// the previous plugin's. The link tells (see `made_as_ours`).
pub fn is_ours(config: &Config, bridge: &str) -> Result<bool, CniError> {
    if LeaseDir::new(&config.state_dir, bridge).is_ok_and(|leases| leases.dir().is_dir()) {
        return Ok(true);
    }
    crate::netlink::made_as_ours(bridge).map_err(|e| system("links", &e))
}

/// The bridge of ours `route` goes out of, if it does.
fn ours<'a>(config: &Config, route: &'a RoutedTo) -> Result<Option<&'a str>, CniError> {
    match route.link.as_deref() {
        Some(bridge) if is_ours(config, bridge)? => Ok(Some(bridge)),
        _ => Ok(None),
    }
}

/// ` (leased to NAME ID)` when `address` is an IPv4 address leased on
/// `bridge`, for the message.
fn holder(config: &Config, bridge: &str, address: IpAddr) -> String {
    let IpAddr::V4(address) = address else {
        return String::new();
    };
    let leases = LeaseDir::new(&config.state_dir, bridge).and_then(|dir| dir.leases());
    leases
        .ok()
        .into_iter()
        .flatten()
        .find(|(leased, _)| *leased == address)
        .and_then(|(_, holder)| holder)
        .map(|holder| format!(" (leased to {} {})", holder.name, holder.id))
        .unwrap_or_default()
}
