//! IPv4 addresses on links, and the MAC address that goes with a container's.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;

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
    request.message_mut().header.family = match ipv6 {
        true => AddressFamily::Unspec,
        false => AddressFamily::Inet,
    };
    let messages: Vec<_> = request
        .execute()
        .try_collect()
        .await
        .map_err(Error::request("listing", "addresses"))?;
    Ok(messages
        .into_iter()
        .filter_map(|msg| {
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
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_docker_style_from_the_address() {
        assert_eq!(
            mac_for(Ipv4Addr::new(172, 16, 0, 30)),
            [0x02, 0x42, 172, 16, 0, 30]
        );
    }
}
