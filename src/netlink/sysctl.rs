//! The sysctls container networking needs, through /proc/sys. Net sysctls
//! belong to the network namespace of the thread that opens the file.
//!
//! - `net.ipv4.ip_forward=1`: the host routes between the bridge and its
//!   other interfaces (outbound NAT, published ports).
//! - `net.ipv4.conf.BRIDGE.route_localnet=1`, on the bridge only: lets
//!   connections to ports published on 127.0.0.1 be DNATed out of the bridge.
//!   The firewall's raw-priority guard drops 127.0.0.0/8 arriving from
//!   anywhere but `lo` (CVE-2020-8558).

use std::fs;
use std::io::{self, Write};

use super::{Error, link};

/// `net.ipv4.ip_forward=1`.
pub fn enable_ip_forward() -> Result<bool, Error> {
    write_if_differs("/proc/sys/net/ipv4/ip_forward", "1")
}

/// `net.ipv4.conf.BRIDGE.route_localnet=1`.
pub fn enable_route_localnet(bridge: &str) -> Result<bool, Error> {
    link::check_ifname(bridge)?;
    write_if_differs(
        &format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
        "1",
    )
}

/// Writes `value` to the sysctl file `path` unless it already reads so.
/// Returns whether it wrote.
pub fn write_if_differs(path: &str, value: &str) -> Result<bool, Error> {
    let err = |source: io::Error| Error::Sysctl {
        path: path.to_string(),
        source,
    };
    let current = fs::read_to_string(path).map_err(err)?;
    if current.trim_end() == value {
        return Ok(false);
    }
    // One write() with the whole value: procfs parses each write on its own.
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(err)?;
    Ok(true)
}
