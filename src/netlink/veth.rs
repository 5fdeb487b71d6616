//! The veth pair of one container: the host end on the bridge, the peer
//! created directly inside the container's network namespace.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
    LinkMessage, LinkProtoInfoBridge,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{Error, Netlink, is_errno, link};

/// The request creating the pair `host` ↔ `peer`, with `host` attached to
/// bridge `bridge_index` (and down: see `plumb`), and `peer` (MAC
/// `peer_mac`) created inside the network namespace `netns`.
///
/// Creating the peer in place costs a fraction of moving it afterwards
/// (~30 ms). The kernel wants a namespace fd here (a pidfd is refused), and
/// cannot bring the peer up yet (ENOTCONN): that is done from inside.
///
/// Each end is made with one transmit and one receive queue. Asked for
/// none, the kernel gives a veth end a queue per possible CPU, then cuts
/// the real number back to one, and cutting waits for an expedited RCU
/// grace period (`veth_init_queues` → `netif_set_real_num_tx_queues` →
/// `synchronize_net`), under RTNL, once per end: two of them in every
/// creation, 0.05-3.5 ms each on this 2-core machine (perf, `bench
/// --pause 50`), while every other RTNL taker waits. Made with one, there
/// is nothing to cut, and the pair works as before (one queue is what the
/// kernel left it with).
pub(crate) fn create_message(
    host: &str,
    bridge_index: u32,
    peer: &str,
    peer_mac: [u8; 6],
    netns: BorrowedFd<'_>,
) -> LinkMessage {
    create_message_on(host, Some(bridge_index), None, peer, peer_mac, netns)
}

/// [`create_message`] with the host end on bridge `bridge_index` or on
/// none, and with the MAC `host_mac` or one the kernel picks.
pub(crate) fn create_message_on(
    host: &str,
    bridge_index: Option<u32>,
    host_mac: Option<[u8; 6]>,
    peer: &str,
    peer_mac: [u8; 6],
    netns: BorrowedFd<'_>,
) -> LinkMessage {
    let peer_message = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer)
        .address(peer_mac.to_vec())
        .append_extra_attribute(LinkAttribute::NetNsFd(netns.as_raw_fd()))
        .append_extra_attribute(LinkAttribute::NumTxQueues(QUEUES))
        .append_extra_attribute(LinkAttribute::NumRxQueues(QUEUES))
        .build();
    let mut builder = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth).name(host);
    if let Some(bridge_index) = bridge_index {
        builder = builder.controller(bridge_index);
    }
    if let Some(mac) = host_mac {
        builder = builder.address(mac.to_vec());
    }
    builder
        .append_extra_attribute(LinkAttribute::NumTxQueues(QUEUES))
        .append_extra_attribute(LinkAttribute::NumRxQueues(QUEUES))
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
        .build()
}

/// The request giving link `name` no IPv6 address of its own (address
/// generation mode none): when its carrier comes, no link-local address,
/// nor its routes, is made. The kernel refuses it in the request creating
/// the link (EAFNOSUPPORT). Sent while the link is down, it announces no
/// change of the link: on a link that is up without a carrier, that
/// announcement makes IPv6 walk every route of the host
/// (`rt6_sync_down_dev`).
pub(crate) fn no_ipv6_addresses_message(name: &str) -> LinkMessage {
    let mut message = LinkUnspec::new_with_name(name).build();
    message
        .attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )]));
    message
}

/// The request bringing link `name` up.
pub(crate) fn up_message(name: &str) -> LinkMessage {
    LinkUnspec::new_with_name(name).up().build()
}
/// The transmit and receive queues of each end of a container's veth pair
/// (see [`create_message`]).
const QUEUES: u32 = 1;

/// IFLA_BRPORT_MODE: the hairpin flag of a bridge port.
const IFLA_BRPORT_MODE: u16 = 4;

/// The request turning on hairpin mode for bridge port `port`, so a
/// container can reach its own published ports through the host's
/// addresses (br_netfilter sends such packets back out of the port they
/// came in by).
///
/// Asked as `bridge link set hairpin on` asks (RTM_SETLINK in the bridge
/// family, IFLA_PROTINFO): the bridge alone handles it. The bridge_slave
/// form (`ip link set type bridge_slave`) goes through the generic
/// do_setlink, which announces a state change of the link; a port without
/// its carrier yet then makes IPv6 walk its whole routing table
/// (`rt6_sync_down_dev`), which holds an entry or three per port: a third
/// of CNI ADD's CPU time with 1,000 ports on the bridge.
/// RTM_SETLINK, not RTM_NEWLINK: rtnl_newlink ignores the family and the
/// IFLA_PROTINFO with it, and acks a request that changed nothing.
pub(crate) fn hairpin_message(port: u32) -> RouteNetlinkMessage {
    let mut message = LinkMessage::default();
    message.header.interface_family = AddressFamily::Bridge;
    message.header.index = port;
    message.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
        LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_MODE, vec![1])),
    ]));
    RouteNetlinkMessage::SetLink(message)
}

/// Deletes link `name`; a link already gone counts as deleted. Costs tens of
/// milliseconds for a veth (the kernel waits for RCU): only for the cases
/// where the container's namespace outlives the container.
pub async fn remove_link(nl: &Netlink, name: &str) -> Result<(), Error> {
    let message = LinkUnspec::new_with_name(name).build();
    match nl
        .handle()?
        .link()
        .del_with_message(message)
        .execute()
        .await
    {
        Err(err) if is_errno(&err, libc::ENODEV) => Ok(()),
        other => other.map_err(Error::request("deleting link", name)),
    }
}

/// The request pointing the host's neighbour entry for `address` on bridge
/// `bridge_index` at `mac`, the container's eth0, whatever state it was
/// in (sent with [`super::direct::Change::Replace`]).
///
/// A restarted container often gets its predecessor's address. A packet
/// routed there while no port carried it (the old port gone, the new one
/// not yet forwarding) leaves the entry INCOMPLETE, and the kernel asks
/// again only a second later: until then every SYN to the new container
/// is queued and lost. Setting the entry (STALE: used at once, confirmed
/// by the traffic) also sends what was queued.
///
/// Flagged as learned externally, so it does not count toward the
/// kernel's limit of neighbour entries, which every namespace shares: see
/// `neighbours`, which takes it out at teardown. The traffic still
/// confirms or corrects it as it does an unflagged one (measured: STALE,
/// DELAY, REACHABLE; a wrong MAC FAILED, then the right one); a PERMANENT
/// entry, the other kind exempt, the traffic never updates.
pub fn neighbour_message(bridge_index: u32, address: IpAddr, mac: [u8; 6]) -> NeighbourMessage {
    let mut message = super::neighbours::entry_message(bridge_index, address);
    message.header.state = NeighbourState::Stale;
    message.header.flags = NeighbourFlags::ExtLearned;
    message.header.kind = RouteType::Unspec;
    message
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    message
}

/// The request pointing the bridge's forwarding entry for `mac` at bridge
/// port `port` (sent with [`super::direct::Change::Replace`]).
///
/// A container's MAC follows from its address, so a restarted container
/// often has its predecessor's MAC, and the bridge learned that MAC on the
/// old port, which lives on while the kernel tears the old namespace down.
/// Until the new container sends a frame, the bridge sends its traffic to
/// the old port, where it vanishes. The entry is a dynamic one, as if
/// learned: it ages and moves like any other.
pub fn forwarding_message(port: u32, mac: [u8; 6]) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = port;
    message.header.state = NeighbourState::Reachable;
    message.header.flags = NeighbourFlags::Controller;
    message.header.kind = RouteType::Unspec;
    message.attributes = vec![NeighbourAttribute::LinkLayerAddress(mac.to_vec())];
    message
}

/// How long [`wait_forwarding`] waits for the link watcher before it gives
/// up waiting (a safeguard: it takes microseconds to milliseconds).
const LINK_WATCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until the bridge port `host` forwards.
///
/// A veth end has its carrier once its peer (eth0) is up, but its bridge
/// port stays disabled until the kernel's link watcher, a work item that
/// needs RTNL, has seen the carrier. A container released before then sends
/// its first ARP request into a port that drops it, and waits a second for
/// the retransmit. The watcher marks the link running (IFF_RUNNING) as it
/// enables the port.
pub async fn wait_forwarding(nl: &Netlink, host: &str) -> Result<(), Error> {
    let started = std::time::Instant::now();
    loop {
        let port = link::by_name(nl.handle()?, host).await?;
        let port = port.ok_or_else(|| Error::Request {
            action: "finding",
            object: host.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        if port.running {
            return Ok(());
        }
        if started.elapsed() > LINK_WATCH_LIMIT {
            tracing::warn!(
                "{host} is not running {} ms after its peer came up: going on",
                LINK_WATCH_LIMIT.as_millis()
            );
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hairpin_is_asked_of_the_bridge_itself_not_as_a_link_change() {
        let RouteNetlinkMessage::SetLink(message) = hairpin_message(42) else {
            panic!("not RTM_SETLINK");
        };
        assert_eq!(message.header.interface_family, AddressFamily::Bridge);
        assert_eq!(message.header.index, 42);
        let [LinkAttribute::ProtoInfoBridge(info)] = message.attributes.as_slice() else {
            panic!("{:?}", message.attributes);
        };
        assert_eq!(
            info.as_slice(),
            [LinkProtoInfoBridge::Other(DefaultNla::new(
                IFLA_BRPORT_MODE,
                vec![1]
            ))]
        );
    }
}
