//! IPv6 on a link, usable at once: an address added with IFA_F_NODAD (no
//! duplicate address detection, which otherwise keeps it `tentative`, and
//! unbindable, for about a second; its local route still comes a little
//! after, see [`is_local_route_of`]), a default route via a gateway, in the
//! host namespace or in a container's. The per-interface IPv6 sysctls
//! (`disable_ipv6`, `accept_ra`, `autoconf`, `accept_dad`) are in
//! [`super::sysctl`]. The run path adds these through `bridge` (the
//! gateway's address) and `plumb` (the container's address and route).

use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::BorrowedFd;

use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::{AddressMessageBuilder, Handle, RouteMessageBuilder};

use super::netns::{socket_in, with_connection};
use super::{Error, Netlink, is_errno, link};

/// The request adding `addr/prefix_len` to link `index` without DAD. The
/// header holds the old 8-bit flags, IFA_FLAGS all 32; the kernel reads
/// IFA_FLAGS when present. Both say the same.
pub(crate) fn address_message(index: u32, addr: Ipv6Addr, prefix_len: u8) -> AddressMessage {
    let mut message = AddressMessageBuilder::<Ipv6Addr>::new()
        .index(index)
        .address(addr, prefix_len)
        .build();
    message.header.flags = AddressHeaderFlags::Nodad;
    message
        .attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
    message
}

/// Whether `message` (a notification of the IPv6 route group) is the
/// local route of `addr`: the one that
/// makes packets for `addr` delivered here rather than forwarded.
///
/// An address added without DAD does not have it yet when the request
/// adding it is answered: the kernel inserts it from its
/// address-configuration work item, which runs after, when it gets RTNL
/// (inet6_addr_add leaves the IFA_F_NODAD address to addrconf_dad_start,
/// whose work item completes it). Until then, a packet for the address is
/// forwarded, and dropped as the container does not forward
/// (`ip6_forward`, IP_INADDRERRORS).
pub fn is_local_route_of(message: &RouteNetlinkMessage, addr: Ipv6Addr) -> bool {
    let RouteNetlinkMessage::NewRoute(route) = message else {
        return false;
    };
    route.header.kind == RouteType::Local
        && route.header.destination_prefix_length == 128
        && route
            .attributes
            .contains(&RouteAttribute::Destination(RouteAddress::Inet6(addr)))
}

/// The request adding `default via gateway` for IPv6, through `oif` when
/// given.
pub(crate) fn default_route_message(gateway: Ipv6Addr, oif: Option<u32>) -> RouteMessage {
    let mut builder = RouteMessageBuilder::<Ipv6Addr>::new().gateway(gateway);
    if let Some(oif) = oif {
        builder = builder.output_interface(oif);
    }
    builder.build()
}

/// The request deleting the IPv6 multicast route (ff00::/8 in table local)
/// of link `oif`, which the kernel adds to every link with IPv6 on as its
/// carrier comes, addresses or not.
pub(crate) fn multicast_route_message(oif: u32) -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = AddressFamily::Inet6;
    message.header.destination_prefix_length = 8;
    message.header.table = RT_TABLE_LOCAL;
    message.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet6(Ipv6Addr::new(
            0xff00, 0, 0, 0, 0, 0, 0, 0,
        ))),
        RouteAttribute::Oif(oif),
    ];
    message
}

/// The kernel's table of local, broadcast and multicast routes.
const RT_TABLE_LOCAL: u8 = 255;

/// Adds `addr/prefix_len` to link `index` (`ifname` is for errors) without
/// DAD. With `existing_ok`, an address already present counts as added.
pub(crate) async fn add_address(
    handle: &Handle,
    index: u32,
    ifname: &str,
    addr: Ipv6Addr,
    prefix_len: u8,
    existing_ok: bool,
) -> Result<(), Error> {
    let mut request = handle.address().add(index, IpAddr::V6(addr), prefix_len);
    *request.message_mut() = address_message(index, addr, prefix_len);
    match request.execute().await {
        Err(err) if existing_ok && is_errno(&err, libc::EEXIST) => Ok(()),
        other => other.map_err(Error::request(
            "adding address",
            format!("{addr}/{prefix_len} to {ifname}"),
        )),
    }
}

/// Adds `default via gateway` for IPv6. The gateway must be reachable on a
/// link that is up (an address in its prefix, or link-local with `oif`).
pub(crate) async fn add_default_route(
    handle: &Handle,
    gateway: Ipv6Addr,
    oif: Option<u32>,
) -> Result<(), Error> {
    handle
        .route()
        .add(default_route_message(gateway, oif))
        .execute()
        .await
        .map_err(Error::request(
            "adding IPv6 default route via",
            gateway.to_string(),
        ))
}

async fn index_of(handle: &Handle, ifname: &str) -> Result<u32, Error> {
    link::check_ifname(ifname)?;
    link::by_name(handle, ifname)
        .await?
        .map(|l| l.index)
        .ok_or_else(|| Error::Request {
            action: "finding",
            object: ifname.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })
}

/// Adds `addr/prefix_len` to `ifname` in the supervisor's namespace (the
/// bridge's gateway address), usable as soon as this returns.
pub async fn add_ipv6_address(
    nl: &Netlink,
    ifname: &str,
    addr: Ipv6Addr,
    prefix_len: u8,
) -> Result<(), Error> {
    let index = index_of(nl.handle()?, ifname).await?;
    add_address(nl.handle()?, index, ifname, addr, prefix_len, false).await
}

/// Adds `addr/prefix_len` to `ifname` in the network namespace `netns`,
/// usable as soon as this returns. Must be called on a tokio runtime.
pub async fn add_ipv6_address_in(
    netns: BorrowedFd<'_>,
    ifname: &str,
    addr: Ipv6Addr,
    prefix_len: u8,
) -> Result<(), Error> {
    let socket = socket_in(netns).await?;
    with_connection(socket, |handle| async move {
        let index = index_of(&handle, ifname).await?;
        add_address(&handle, index, ifname, addr, prefix_len, false).await
    })
    .await
}

/// Adds the IPv6 default route via `gateway` out of `ifname` in the network
/// namespace `netns`. Must be called on a tokio runtime.
pub async fn add_ipv6_default_route_in(
    netns: BorrowedFd<'_>,
    ifname: &str,
    gateway: Ipv6Addr,
) -> Result<(), Error> {
    let socket = socket_in(netns).await?;
    with_connection(socket, |handle| async move {
        let index = index_of(&handle, ifname).await?;
        add_default_route(&handle, gateway, Some(index)).await
    })
    .await
}

/// The link-local address the kernel gives an interface with `mac`
/// (addr_gen_mode eui64, the default): fe80:: and the modified EUI-64 of
/// the MAC, its universal/local bit flipped and ff:fe in the middle. The
/// firewall's IPv6 spoof guard lets a container send from it.
pub fn link_local_for(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The notification may come among the answers of a later pipeline,
    /// before them: kept, it is still found.
    #[test]
    fn the_local_route_of_an_address_added_without_dad_is_found_even_when_it_came_among_answers() {
        use super::super::direct::{Change, Direct};
        crate::scratch::in_own_netns(
            "the_local_route_of_an_address_added_without_dad_...",
            || {
                let addr: Ipv6Addr = "2001:db8::5".parse().unwrap();
                let mut direct = Direct::open().unwrap();
                let lo = direct.index_of("lo").unwrap();
                direct.join(libc::RTNLGRP_IPV6_ROUTE).unwrap();
                let up = rtnetlink::LinkUnspec::new_with_index(lo).up().build();
                let added = direct
                    .pipeline(vec![
                        (RouteNetlinkMessage::NewLink(up), Some(Change::Modify)),
                        (
                            RouteNetlinkMessage::NewAddress(address_message(lo, addr, 64)),
                            Some(Change::Create),
                        ),
                    ])
                    .unwrap();
                assert!(added.iter().all(Result::is_ok), "{added:?}");
                // The kernel's work item inserts the route meanwhile; its
                // notification waits in the socket, before the next answer.
                std::thread::sleep(std::time::Duration::from_millis(100));
                let again = rtnetlink::LinkUnspec::new_with_index(lo).up().build();
                let answered = direct
                    .pipeline(vec![(
                        RouteNetlinkMessage::NewLink(again),
                        Some(Change::Modify),
                    )])
                    .unwrap();
                assert!(answered.iter().all(Result::is_ok), "{answered:?}");
                let found = direct
                    .await_notification(std::time::Duration::from_millis(500), |message| {
                        is_local_route_of(message, addr)
                    })
                    .unwrap();
                assert!(found, "the local route of {addr} was not seen");
            },
        );
    }

    #[test]
    fn the_link_local_address_is_the_eui_64_of_the_mac() {
        assert_eq!(
            link_local_for([0x02, 0x42, 0xac, 0x10, 0x00, 0x05]),
            "fe80::42:acff:fe10:5".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            link_local_for([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
            "fe80::211:22ff:fe33:4455".parse::<Ipv6Addr>().unwrap()
        );
    }
}
