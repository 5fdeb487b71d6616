//! IPv4 addresses on links, and the MAC address that goes with a container's.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use super::direct::Direct;
use super::{Error, is_errno};

/// The container's MAC address: 02:42 and the four bytes of its IPv4
/// address, as docker does. A reused address keeps its MAC, so neighbours'
/// ARP entries from the previous owner stay right.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Adds `addr/prefix_len` to link `index` (`ifname` is for errors). With
/// `existing_ok`, an address already present counts as added.
pub(crate) async fn add(
    handle: &Handle,
    index: u32,
    ifname: &str,
    addr: Ipv4Addr,
    prefix_len: u8,
    existing_ok: bool,
) -> Result<(), Error> {
    match handle
        .address()
        .add(index, IpAddr::V4(addr), prefix_len)
        .execute()
        .await
    {
        Err(err) if existing_ok && is_errno(&err, libc::EEXIST) => Ok(()),
        other => other.map_err(Error::request(
            "adding address",
            format!("{addr}/{prefix_len} to {ifname}"),
        )),
    }
}

/// An address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkAddress {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// Every IPv4 address of every link, and with `ipv6` every IPv6 one too,
/// in the same request.
pub(crate) async fn all(handle: &Handle, ipv6: bool) -> Result<Vec<LinkAddress>, Error> {
    let mut request = handle.address().get();
    request.message_mut().header.family = family(ipv6);
    let messages: Vec<_> = request
        .execute()
        .try_collect()
        .await
        .map_err(Error::request("listing", "addresses"))?;
    Ok(messages.into_iter().filter_map(link_address).collect())
}

/// The IPv4 addresses of link `index`, and with `ipv6` its IPv6 ones too,
/// answered on the spot (see `direct`): the kernel dumps that link alone,
/// however many others there are.
pub(crate) fn on_link(
    direct: &mut Direct,
    index: u32,
    ipv6: bool,
) -> Result<Vec<LinkAddress>, Error> {
    let mut message = AddressMessage::default();
    message.header.family = family(ipv6);
    message.header.index = index;
    let answers = direct
        .ask(RouteNetlinkMessage::GetAddress(message), true)
        .map_err(Error::direct("listing", "addresses"))?;
    Ok(answers
        .into_iter()
        .filter_map(|answer| match answer {
            RouteNetlinkMessage::NewAddress(msg) => link_address(msg),
            _ => None,
        })
        .collect())
}

fn family(ipv6: bool) -> AddressFamily {
    match ipv6 {
        true => AddressFamily::Unspec,
        false => AddressFamily::Inet,
    }
}

fn link_address(msg: AddressMessage) -> Option<LinkAddress> {
    // IPv4 names its own address IFA_LOCAL, IPv6 only IFA_ADDRESS.
    let local = msg.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Local(addr) => Some(*addr),
        _ => None,
    });
    let addr = local.or_else(|| {
        msg.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Address(addr) => Some(*addr),
            _ => None,
        })
    })?;
    Some(LinkAddress {
        index: msg.header.index,
        addr,
        prefix_len: msg.header.prefix_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_dumps_the_addresses_of_the_one_link_asked_for() {
        // A network namespace of this thread's own, which `ip` inherits.
        crate::scratch::in_own_netns(
            "the_kernel_dumps_the_addresses_of_the_one_link_asked_for",
            || {
                let script = "ip link set lo up && ip link add d0 type veth peer name d1 && \
                ip addr add 10.9.0.1/24 dev d0 && ip addr add 10.9.1.1/24 dev d1";
                let status = std::process::Command::new("sh")
                    .args(["-ec", script])
                    .status()
                    .unwrap();
                assert!(status.success());
                let index = nix::net::if_::if_nametoindex("d0").unwrap();
                let mut direct = Direct::open().unwrap();
                let found = on_link(&mut direct, index, true).unwrap();
                let want = LinkAddress {
                    index,
                    addr: IpAddr::from([10, 9, 0, 1]),
                    prefix_len: 24,
                };
                assert!(found.contains(&want), "{found:?}");
                assert!(found.iter().all(|a| a.index == index), "{found:?}");
            },
        );
    }

    #[test]
    fn mac_is_docker_style_from_the_address() {
        assert_eq!(
            mac_for(Ipv4Addr::new(172, 16, 0, 30)),
            [0x02, 0x42, 172, 16, 0, 30]
        );
    }
}
