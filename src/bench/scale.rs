//! Ports already published, for `supervisor bench --scale` and the publish
//! benchmark: fillers that look like containers to the firewall (an owner
//! comment, a host veth name, an address, one published port each), all
//! added in one batch through the firewall's own API. Measuring setup with
//! 0 and with 10,000 of them shows whether publishing stays flat.

use std::net::Ipv4Addr;
use std::ops::Range;

use supervisor::firewall::{self, Firewall, Publication};
use supervisor::network::host_ifname;
use supervisor::values::{HostIp, Owner, Port, Protocol, Subnet};

/// Filler `i` publishes host port `PORT_BASE + i`.
pub const PORT_BASE: usize = 30_000;
/// As many fillers as there are ports above `PORT_BASE`.
pub const MAX: usize = 65_535 - PORT_BASE;

/// Filler `index`: container `bench-filler-INDEX`, publishing
/// `PORT_BASE + index` to port 8000 of an address in the upper half of
/// `subnet`'s first /16 (addresses may repeat; owners and ports do not).
pub fn filler(index: usize, subnet: &Subnet) -> Publication {
    let id = format!("f{index:011x}");
    let host = 0x8000 + (index as u32 % 0x7ffe);
    Publication {
        owner: Owner {
            name: format!("bench-filler-{index}"),
            id: id.clone(),
        },
        address: Ipv4Addr::from(u32::from(subnet.network()) | host),
        address6: None,
        veth: host_ifname(&id),
        ports: vec![Port {
            host_ip: HostIp::AnyV4,
            host_port: (PORT_BASE + index) as u16,
            container_port: 8000,
            protocol: Protocol::Tcp,
        }],
        // Addresses repeat: none, or they would collide.
        generation: None,
        routed: false,
    }
}

/// Publishes fillers `range` in one batch.
pub fn prepublish(
    firewall: &Firewall,
    range: Range<usize>,
    subnet: &Subnet,
) -> Result<(), firewall::Error> {
    let fillers: Vec<Publication> = range.map(|i| filler(i, subnet)).collect();
    if fillers.is_empty() {
        return Ok(());
    }
    firewall.publish_all(&fillers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fillers_look_like_containers_and_never_share_a_port() {
        let subnet: Subnet = "172.16.0.0/16".parse().unwrap();
        let first = filler(0, &subnet);
        assert_eq!(first.owner.comment(), "bench-filler-0 f00000000000");
        assert_eq!(first.veth, "sv-f00000000000");
        assert_eq!(first.address, Ipv4Addr::new(172, 16, 128, 0));
        assert_eq!(first.ports[0].host_port, 30_000);
        let last = filler(MAX - 1, &subnet);
        assert_eq!(last.ports[0].host_port, 65_534);
        assert!(subnet.contains(last.address));
    }
}
