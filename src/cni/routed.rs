//! The addresses of an ADD that the kernel's routes must judge: a
//! `hostIP` that is a subnet's directed broadcast address binds (the
//! port check passes) but no connection reaches it, and a chained
//! plugin's container address that is one of the host's own would make
//! an element forwarding a host port to the host itself. The route type
//! tells both, where a bind test is fooled by `ip_nonlocal_bind`.
//!
//! One netlink message for all of them, answered on the spot (a socket,
//! one `sendmsg`, one `recv`: tens of microseconds), and none when the
//! ADD has no such address.

use std::net::IpAddr;

use super::attachment::system;
use super::config::Config;
use super::protocol::{CniError, code};
use crate::netlink::{AddressKind, address_kinds};

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
    let kinds = address_kinds(&addresses).map_err(|e| system("routes", &e))?;
    let (previous_kinds, host_ip_kinds) = kinds.split_at(previous.len());
    for (&(at, address), kind) in previous.iter().zip(previous_kinds) {
        if *kind == AddressKind::Local {
            return Err(CniError::new(
                code::CONFIG,
                format!(
                    "prevResult.ips[{at}]: {address} is an address of this host, not of a \
                     container: its ports would be forwarded to the host itself"
                ),
            ));
        }
    }
    for (&(at, address), kind) in config.host_ips.iter().zip(host_ip_kinds) {
        if *kind == AddressKind::Broadcast {
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
