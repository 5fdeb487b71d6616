//! Forgetting a published port's connections: conntrack entries over
//! ctnetlink.
//!
//! NAT is decided when a connection's entry is created, and map changes do
//! not touch entries already tracked: a UDP client that keeps sending keeps
//! its entry, and with it its old destination, for as long as it sends. So
//! at teardown we delete every entry DNATed from one of the container's host
//! ports to its address, and when publishing a UDP port we delete the
//! entries of that port that were made before it was published. An IPv4
//! container's entries the kernel deletes itself, by flushes it filters
//! (kernel 6.11 and later); otherwise a dump asks for every entry of both
//! families, and each is deleted in its own.
//!
//! An address given back loses every entry it took part in (see
//! `forget_addresses_with`): its own connections out too, whose masquerade
//! mapping would otherwise carry a peer's packets to the address's next
//! holder for as long as the peer sends.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::values::Protocol as Transport;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("conntrack netlink socket")]
    Socket(#[source] io::Error),
    #[error("listing conntrack entries")]
    Dump(#[source] io::Error),
    #[error("deleting the conntrack entry of {proto} port {port}")]
    Delete {
        proto: &'static str,
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("deleting a conntrack entry of {address}")]
    DeleteOf {
        address: IpAddr,
        #[source]
        source: io::Error,
    },
}

fn ct_protocol(protocol: Transport) -> Protocol {
    match protocol {
        Transport::Tcp => Protocol::Tcp,
        Transport::Udp => Protocol::Udp,
    }
}

/// How entries were forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgotten {
    /// With no walk of the conntrack table: the kernel deleted them itself
    /// (a flush it filtered; it says not how many), or there was nothing
    /// to ask for.
    WithoutWalk,
    /// One by one, after a dump walked the whole table: how many.
    Walked(usize),
}

/// One tracked connection's original direction and where replies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    original: Vec<Tuple>,
    /// IPv4 or IPv6: a delete must name its family.
    family: NetfilterProtoFamily,
    protocol: Option<Protocol>,
    original_dport: Option<u16>,
    original_source: Option<IpAddr>,
    reply_source: Option<IpAddr>,
}

/// Deletes the entries of connections to `ports` (host side) that were
/// translated to one of `container`'s addresses (its IPv4 and IPv6 ones; to
/// anywhere, or nowhere, when None). With IPv4 addresses alone, no walk of
/// the table: see `forget_addresses_with` for what a walk costs.
pub fn forget(
    ports: &[(Transport, u16)],
    container: Option<&[IpAddr]>,
) -> Result<Forgotten, Error> {
    if ports.is_empty() {
        return Ok(Forgotten::WithoutWalk);
    }
    forget_on(open().map_err(Error::Socket)?, ports, container)
}

/// `forget` on a netfilter netlink socket the caller already has.
pub fn forget_with(
    socket: OwnedFd,
    ports: &[(Transport, u16)],
    container: Option<&[IpAddr]>,
) -> Result<Forgotten, Error> {
    if ports.is_empty() {
        return Ok(Forgotten::WithoutWalk);
    }
    // SAFETY: the descriptor is ours (moved in), a netlink socket, and the
    // netlink_sys Socket takes over closing it.
    let socket = unsafe { Socket::from_raw_fd(socket.into_raw_fd()) };
    forget_on(socket, ports, container)
}

/// Deletes the entries of every connection one of `addresses` took part
/// in, on a netfilter netlink socket the caller already has: as the
/// original source (its own connections out, masqueraded or not) or as
/// where replies come from (connections to it, through a published port
/// or routed straight to it). For addresses about to be given back: none
/// of their entries may lead to their next holder.
///
/// The kernel deletes IPv4 addresses' entries itself (a flush filtered by
/// address, one per address and direction; kernel 6.11 and later), which
/// costs nothing when the namespace tracks no connection. A dump (the
/// fallback) walks every bucket of the hash, 262,144 here, with bottom
/// halves off: 9-11 ms in which its CPU runs nothing else and no RCU grace
/// period ends, so the RTNL holders that wait for one (a veth's removal, a
/// namespace's teardown) held it that much longer, and the next ADD waited
/// for them. With an IPv6 address among them the dump serves all: the
/// kernel's filter inverts IPv6 source addresses (6.18: a flush for
/// fd00::2 deleted fd00::3's entries and kept its own).
pub fn forget_addresses_with(socket: OwnedFd, addresses: &[IpAddr]) -> Result<Forgotten, Error> {
    if addresses.is_empty() {
        return Ok(Forgotten::WithoutWalk);
    }
    // SAFETY: as in `forget_with`.
    let socket = unsafe { Socket::from_raw_fd(socket.into_raw_fd()) };
    let flushed = only_ipv4(addresses)
        .map(|ipv4| flush_addresses(&socket, &ipv4).map_err(|(a, e)| (IpAddr::from(a), e)));
    flush_or_walk(
        &socket,
        flushed,
        |entry| {
            addresses
                .iter()
                .copied()
                .find(|a| entry.original_source == Some(*a) || entry.reply_source == Some(*a))
        },
        |address, source| Error::DeleteOf { address, source },
    )
}

/// `addresses` when every one is IPv4: the kernel's filter serves them.
fn only_ipv4(addresses: &[IpAddr]) -> Option<Vec<Ipv4Addr>> {
    addresses
        .iter()
        .map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// Whether the kernel refused a filtered flush as such: before 6.11 a
/// flush takes no `CTA_FILTER` (EOPNOTSUPP), and a delete with a tuple
/// but no filter support reads the tuple as one entry's, incomplete
/// (EINVAL), or not found (ENOENT), which a flush never answers.
fn filter_refused(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOENT)
    )
}

/// The kernel's own deletion of every entry with one of `addresses` as
/// its original source, then as its reply source: the first refusal,
/// naming its address.
fn flush_addresses(socket: &Socket, addresses: &[Ipv4Addr]) -> Result<(), (Ipv4Addr, io::Error)> {
    for &address in addresses {
        let source = TupleFilter::source(address);
        for request in [
            flush_request(Some(&source), None),
            flush_request(None, Some(&source)),
        ] {
            flush(socket, &request).map_err(|e| (address, e))?;
        }
    }
    Ok(())
}

/// The kernel's own deletion of the entries a walk for `ports` and
/// `container` deletes (see `forget_on`): for each port and address, those
/// of the port's protocol and port in the original direction (where the
/// client sent) and the address as the reply's source (the DNAT's
/// target). The first refusal, naming its port.
fn flush_ports(
    socket: &Socket,
    ports: &[(Transport, u16)],
    container: &[Ipv4Addr],
) -> Result<(), ((Transport, u16), io::Error)> {
    for &(transport, port) in ports {
        let destination = TupleFilter::destination_port(transport, port);
        for &address in container {
            let request = flush_request(Some(&destination), Some(&TupleFilter::source(address)));
            flush(socket, &request).map_err(|e| ((transport, port), e))?;
        }
    }
    Ok(())
}

/// Sends a flush and reads its acknowledgement.
fn flush(socket: &Socket, request: &[u8]) -> io::Result<()> {
    socket.send(request, 0)?;
    receive(socket, |_| {}, false)
}

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLA_F_NESTED: u16 = 1 << 15;
/// enum ctattr_type, ctattr_tuple, ctattr_ip, ctattr_filter
/// (linux/netfilter/nfnetlink_conntrack.h).
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
/// The filter's bits (CTA_FILTER_F_*): what of a tuple it compares.
const FILTER_IP_SRC: u32 = 1 << 0;
const FILTER_PROTO_NUM: u32 = 1 << 3;
const FILTER_PROTO_DST_PORT: u32 = 1 << 5;

/// One netlink attribute: its header, `value`, padding to 4 bytes.
fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut attr = Vec::with_capacity((len + 3) & !3);
    attr.extend_from_slice(&(len as u16).to_ne_bytes());
    attr.extend_from_slice(&kind.to_ne_bytes());
    attr.extend_from_slice(value);
    attr.resize((len + 3) & !3, 0);
    attr
}

/// What a filtered flush compares of one direction's tuple: the filter's
/// bits, and the tuple's attributes that hold the values (nested in
/// CTA_TUPLE_ORIG or CTA_TUPLE_REPLY).
struct TupleFilter {
    flags: u32,
    attributes: Vec<u8>,
}

impl TupleFilter {
    /// The tuple's source address is `address`.
    fn source(address: Ipv4Addr) -> TupleFilter {
        TupleFilter {
            flags: FILTER_IP_SRC,
            attributes: attribute(
                CTA_TUPLE_IP | NLA_F_NESTED,
                &attribute(CTA_IP_V4_SRC, &address.octets()),
            ),
        }
    }

    /// The tuple is `transport`'s, to port `port`.
    fn destination_port(transport: Transport, port: u16) -> TupleFilter {
        let number = match transport {
            Transport::Tcp => libc::IPPROTO_TCP,
            Transport::Udp => libc::IPPROTO_UDP,
        };
        let proto = [
            attribute(CTA_PROTO_NUM, &[number as u8]),
            attribute(CTA_PROTO_DST_PORT, &port.to_be_bytes()),
        ]
        .concat();
        TupleFilter {
            flags: FILTER_PROTO_NUM | FILTER_PROTO_DST_PORT,
            attributes: attribute(CTA_TUPLE_PROTO | NLA_F_NESTED, &proto),
        }
    }
}

/// IPCTNL_MSG_CT_DELETE with no entry's tuple but a filter: the kernel
/// deletes every IPv4 entry whose original tuple matches `original` and
/// whose reply tuple matches `reply` (None: anything).
///
/// Written by hand rather than with `request`: the kernel parses CTA_FILTER
/// strictly (NLA_F_NESTED required), and the netlink crate's only way to
/// carry an attribute it does not name, `DefaultNla`, masks that flag off:
/// built that way the flush is refused and the dump runs instead (seen:
/// `forgetting_an_ipv4_addresss_connections_walks_no_table_…` failed).
fn flush_request(original: Option<&TupleFilter>, reply: Option<&TupleFilter>) -> Vec<u8> {
    let tuple = |kind: u16, filter: Option<&TupleFilter>| {
        filter.map_or_else(Vec::new, |f| attribute(kind | NLA_F_NESTED, &f.attributes))
    };
    let tuples = [
        tuple(CTA_TUPLE_ORIG, original),
        tuple(CTA_TUPLE_REPLY, reply),
    ]
    .concat();
    let flags = |filter: Option<&TupleFilter>| filter.map_or(0, |f| f.flags).to_ne_bytes();
    let flags = [
        attribute(CTA_FILTER_ORIG_FLAGS, &flags(original)),
        attribute(CTA_FILTER_REPLY_FLAGS, &flags(reply)),
    ]
    .concat();
    let filter = attribute(CTA_FILTER | NLA_F_NESTED, &flags);
    let len = 16 + 4 + tuples.len() + filter.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&(NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    // nfgenmsg: the family, NFNETLINK_V0, resource id 0.
    msg.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    msg.extend_from_slice(&tuples);
    msg.extend_from_slice(&filter);
    msg
}

/// The kernel's filtered flushes serve an IPv4 container (see
/// `flush_ports`); another (an IPv6 address among its, whose filter the
/// kernel inverts, or none: every family's entries of the ports), or a
/// kernel that refuses the filter, gets the walk.
fn forget_on(
    socket: Socket,
    ports: &[(Transport, u16)],
    container: Option<&[IpAddr]>,
) -> Result<Forgotten, Error> {
    let flushed = container
        .and_then(only_ipv4)
        .map(|ipv4| flush_ports(&socket, ports, &ipv4));
    flush_or_walk(
        &socket,
        flushed,
        |entry| {
            ports.iter().copied().find(|(t, p)| {
                entry.protocol == Some(ct_protocol(*t))
                    && entry.original_dport == Some(*p)
                    && container.is_none_or(|c| entry.reply_source.is_some_and(|s| c.contains(&s)))
            })
        },
        |(transport, port), source| Error::Delete {
            proto: transport.name(),
            port,
            source,
        },
    )
}

/// What `flushed` (the kernel's filtered flush, when one was sent) did, or
/// when there was none or the kernel refused its filter, the walk deleting
/// what `which` names. A flush failing otherwise is `failed` of its reason.
fn flush_or_walk<K>(
    socket: &Socket,
    flushed: Option<Result<(), (K, io::Error)>>,
    which: impl Fn(&Entry) -> Option<K>,
    failed: impl Fn(K, io::Error) -> Error,
) -> Result<Forgotten, Error> {
    match flushed {
        Some(Ok(())) => return Ok(Forgotten::WithoutWalk),
        Some(Err((reason, source))) if !filter_refused(&source) => {
            return Err(failed(reason, source));
        }
        _ => {}
    }
    forget_matching(socket, which, failed).map(Forgotten::Walked)
}

/// Deletes every entry `which` names a reason for (the port or address it
/// was taken for); a failure is `failed` of that reason. An entry gone
/// already (timed out, or taken by another teardown) is no failure.
fn forget_matching<K>(
    socket: &Socket,
    which: impl Fn(&Entry) -> Option<K>,
    failed: impl Fn(K, io::Error) -> Error,
) -> Result<usize, Error> {
    let entries = dump(socket).map_err(Error::Dump)?;
    let mut deleted = 0;
    for entry in entries {
        let Some(reason) = which(&entry) else {
            continue;
        };
        match delete(socket, entry.family, entry.original) {
            Ok(()) => deleted += 1,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(source) => return Err(failed(reason, source)),
        }
    }
    Ok(deleted)
}

fn open() -> io::Result<Socket> {
    let socket = Socket::new(NETLINK_NETFILTER)?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

fn request(message: ConntrackMessage, flags: u16, family: NetfilterProtoFamily) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    let inner = NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), message);
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// Calls `each` for every message of a reply until DONE or an error.
fn receive(
    socket: &Socket,
    mut each: impl FnMut(NetfilterMessage),
    until_done: bool,
) -> io::Result<()> {
    // Never zeroed: `recv` writes into the spare capacity and sets the
    // length to what it wrote (as `netlink::direct` reads), where
    // `vec![0; 64 KiB]` cost a zeroing of all of it per reply.
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        socket.recv(&mut buf, 0)?;
        let n = buf.len();
        let mut offset = 0;
        while offset < n {
            let bytes = &buf[offset..n];
            let len = NetlinkBuffer::new_checked(bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
                .length() as usize;
            let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&bytes[..len])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(err) => match err.code {
                    None => return Ok(()),
                    Some(code) => return Err(io::Error::from_raw_os_error(-code.get())),
                },
                NetlinkPayload::InnerMessage(inner) => each(inner),
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += (len + 3) & !3;
        }
        if !until_done {
            return Ok(());
        }
    }
}

fn dump(socket: &Socket) -> io::Result<Vec<Entry>> {
    // Unspec: every family's entries (IPv4 alone would leave IPv6 out).
    let get = request(
        ConntrackMessage::Get(vec![]),
        NLM_F_DUMP,
        NetfilterProtoFamily::Unspec,
    );
    socket.send(&get, 0)?;
    let mut entries = Vec::new();
    receive(
        socket,
        |msg| {
            if let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = msg.inner {
                entries.push(entry(msg.header.family, attrs));
            }
        },
        true,
    )?;
    Ok(entries)
}

fn entry(family: NetfilterProtoFamily, attrs: Vec<ConntrackAttribute>) -> Entry {
    let mut e = Entry {
        original: Vec::new(),
        family,
        protocol: None,
        original_dport: None,
        original_source: None,
        reply_source: None,
    };
    for attr in attrs {
        match attr {
            ConntrackAttribute::CtaTupleOrig(tuples) => {
                for t in &tuples {
                    match t {
                        Tuple::Proto(parts) => {
                            for p in parts {
                                match p {
                                    ProtoTuple::Protocol(proto) => e.protocol = Some(*proto),
                                    ProtoTuple::DestinationPort(port) => {
                                        e.original_dport = Some(*port);
                                    }
                                    _ => {}
                                }
                            }
                        }
                        Tuple::Ip(parts) => {
                            for p in parts {
                                if let IPTuple::SourceAddress(addr) = p {
                                    e.original_source = Some(*addr);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                e.original = tuples;
            }
            ConntrackAttribute::CtaTupleReply(tuples) => {
                for t in tuples {
                    if let Tuple::Ip(parts) = t {
                        for p in parts {
                            if let IPTuple::SourceAddress(addr) = p {
                                e.reply_source = Some(addr);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    e
}

fn delete(socket: &Socket, family: NetfilterProtoFamily, original: Vec<Tuple>) -> io::Result<()> {
    let msg = ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(original)]);
    socket.send(&request(msg, NLM_F_ACK, family), 0)?;
    receive(socket, |_| {}, false)
}
