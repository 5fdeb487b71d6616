//! Forgetting a published port's connections: conntrack entries over
//! ctnetlink.
//!
//! NAT is decided when a connection's entry is created, and map changes do
//! not touch entries already tracked: a UDP client that keeps sending keeps
//! its entry, and with it its old destination, for as long as it sends. So
//! at teardown we delete every entry DNATed from one of the container's host
//! ports to its address, and when publishing a UDP port we delete the
//! entries of that port that were made before it was published. Both
//! families: the dump asks for every entry, each is deleted in its own.
//!
//! An address given back loses every entry it took part in (see
//! `forget_addresses_with`): its own connections out too, whose masquerade
//! mapping would otherwise carry a peer's packets to the address's next
//! holder for as long as the peer sends.

use std::io;
use std::net::IpAddr;
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
/// anywhere, or nowhere, when None). Returns how many it deleted.
pub fn forget(ports: &[(Transport, u16)], container: Option<&[IpAddr]>) -> Result<usize, Error> {
    if ports.is_empty() {
        return Ok(0);
    }
    forget_on(open().map_err(Error::Socket)?, ports, container)
}

/// `forget` on a netfilter netlink socket the caller already has.
pub fn forget_with(
    socket: OwnedFd,
    ports: &[(Transport, u16)],
    container: Option<&[IpAddr]>,
) -> Result<usize, Error> {
    if ports.is_empty() {
        return Ok(0);
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
/// of their entries may lead to their next holder. Returns how many it
/// deleted.
pub fn forget_addresses_with(socket: OwnedFd, addresses: &[IpAddr]) -> Result<usize, Error> {
    if addresses.is_empty() {
        return Ok(0);
    }
    // SAFETY: as in `forget_with`.
    let socket = unsafe { Socket::from_raw_fd(socket.into_raw_fd()) };
    forget_matching(
        &socket,
        |entry| {
            addresses
                .iter()
                .copied()
                .find(|a| entry.original_source == Some(*a) || entry.reply_source == Some(*a))
        },
        |address, source| Error::DeleteOf { address, source },
    )
}

fn forget_on(
    socket: Socket,
    ports: &[(Transport, u16)],
    container: Option<&[IpAddr]>,
) -> Result<usize, Error> {
    forget_matching(
        &socket,
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
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
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
