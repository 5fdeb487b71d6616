//! Who holds a host port: the sockets bound to it, from the kernel's
//! sock_diag netlink (NETLINK_SOCK_DIAG, an inet_diag dump per family),
//! then the process that has one of them open, through the socket's inode
//! in `/proc/*/fd`. Only for an error message: a failure here just leaves
//! the holder unnamed. The dump itself is public (`sockets`): unlike
//! `/proc/net/tcp`, which lists only listening and connected sockets, it
//! has a TCP socket that is only bound (a reservation), and tests wait on
//! it for a port to be let go.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use crate::values::{HostIp, Protocol};

/// The process holding a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its `comm`, as `ps` shows it.
    pub command: String,
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// struct inet_diag_req_v2.
const REQ_LEN: usize = 56;
/// struct inet_diag_msg, up to and with idiag_inode.
const MSG_LEN: usize = 72;
/// The attribute the kernel adds to every IPv6 socket of a dump.
const INET_DIAG_SKV6ONLY: u16 = 11;

/// One socket of the dump: its local address and port, its inode and
/// its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// IPv4, or IPv6 (then `::` and v4-mapped addresses matter to IPv4).
    pub local: IpAddr,
    pub port: u16,
    /// 0 for a socket no descriptor has (TIME_WAIT).
    pub inode: u32,
    /// IPV6_V6ONLY: an IPv6 socket on `::` that takes no IPv4 port.
    pub v6only: bool,
    /// The kernel's state number (include/net/tcp_states.h): 6 TIME_WAIT,
    /// 10 LISTEN, 13 a TCP socket only bound; 7 an unconnected UDP one.
    pub state: u8,
}

/// Whether a bind of `port` on `host_ip` conflicts with `bound`, as the
/// kernel decides it: the same family (an IPv6 socket on `::` without
/// IPV6_V6ONLY, or on a v4-mapped address, is IPv4's too), and the same
/// address or every address on either side.
fn conflicts(host_ip: HostIp, port: u16, bound: &Bound) -> bool {
    if bound.port != port || bound.inode == 0 {
        return false;
    }
    let overlaps = |mine: Option<IpAddr>, theirs: IpAddr| {
        theirs.is_unspecified() || mine.is_none_or(|ip| ip == theirs)
    };
    let mine = host_ip.specific();
    match (host_ip.is_ipv6(), bound.local) {
        (false, IpAddr::V4(theirs)) => overlaps(mine, IpAddr::V4(theirs)),
        (false, IpAddr::V6(theirs)) => match theirs.to_ipv4_mapped() {
            Some(theirs) => overlaps(mine, IpAddr::V4(theirs)),
            None => theirs.is_unspecified() && !bound.v6only,
        },
        (true, IpAddr::V4(_)) => false,
        (true, IpAddr::V6(theirs)) => {
            theirs.to_ipv4_mapped().is_none() && overlaps(mine, IpAddr::V6(theirs))
        }
    }
}

/// The process holding a socket that a bind of `port` on `host_ip`
/// conflicts with (see `conflicts`).
pub fn find(host_ip: HostIp, port: u16, protocol: Protocol) -> Option<Holder> {
    let mut inodes = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        match dump(family as u8, protocol) {
            Ok(sockets) => inodes.extend(
                sockets
                    .iter()
                    .filter(|b| conflicts(host_ip, port, b))
                    .map(|b| b.inode),
            ),
            Err(err) => tracing::debug!(%err, "sock_diag dump"),
        }
    }
    inodes.into_iter().find_map(owner_of)
}

/// Every socket of `protocol`, both families, in the calling thread's
/// network namespace, whatever its state: a TCP socket only bound too
/// (Linux 6.8 and later; before, the kernel leaves those out).
pub fn sockets(protocol: Protocol) -> std::io::Result<Vec<Bound>> {
    let mut sockets = dump(libc::AF_INET as u8, protocol)?;
    sockets.extend(dump(libc::AF_INET6 as u8, protocol)?);
    Ok(sockets)
}

/// Every socket of `family` and `protocol` in this network namespace.
fn dump(family: u8, protocol: Protocol) -> std::io::Result<Vec<Bound>> {
    let socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&request(family, protocol), 0)?;
    let mut sockets = Vec::new();
    loop {
        let (bytes, _) = socket.recv_from_full()?;
        if bytes.is_empty() {
            return Ok(sockets);
        }
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + NLMSG_HDRLEN) {
            let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let kind = u16::from_ne_bytes([header[4], header[5]]);
            if len < NLMSG_HDRLEN || at + len > bytes.len() {
                return Ok(sockets);
            }
            match kind {
                NLMSG_DONE => return Ok(sockets),
                NLMSG_ERROR => {
                    let errno = bytes
                        .get(at + NLMSG_HDRLEN..at + NLMSG_HDRLEN + 4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0);
                    return Err(std::io::Error::from_raw_os_error(-errno));
                }
                SOCK_DIAG_BY_FAMILY => {
                    if let Some(bound) = parse(&bytes[at + NLMSG_HDRLEN..at + len]) {
                        sockets.push(bound);
                    }
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
    }
}

/// A dump of every socket, whatever its state, of `family` and `protocol`.
fn request(family: u8, protocol: Protocol) -> Vec<u8> {
    let len = NLMSG_HDRLEN + REQ_LEN;
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    let proto = match protocol {
        Protocol::Tcp => libc::IPPROTO_TCP,
        Protocol::Udp => libc::IPPROTO_UDP,
    };
    msg.extend_from_slice(&[family, proto as u8, 0, 0]);
    msg.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    msg.resize(len, 0); // inet_diag_sockid: no filter
    msg
}

/// The local address, port and inode of one struct inet_diag_msg, and
/// whether it is IPv6-only (its INET_DIAG_SKV6ONLY attribute).
fn parse(msg: &[u8]) -> Option<Bound> {
    let header = msg.get(..MSG_LEN)?;
    let family = i32::from(header[0]);
    let port = u16::from_be_bytes([header[4], header[5]]);
    let src: [u8; 16] = header[8..24].try_into().ok()?;
    let local = if family == libc::AF_INET {
        IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(src))
    };
    let inode = u32::from_ne_bytes(header[68..72].try_into().ok()?);
    Some(Bound {
        local,
        port,
        inode,
        v6only: attribute(&msg[MSG_LEN..], INET_DIAG_SKV6ONLY)
            .is_some_and(|v| v.first() == Some(&1)),
        state: header[1],
    })
}

/// The payload of the netlink attribute `kind` in `attrs`.
fn attribute(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let this = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if this == kind {
            return Some(&attrs[4..len]);
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// The first process with socket `inode` open.
fn owner_of(inode: u32) -> Option<Holder> {
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str())
        });
        if holds {
            let command = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(Holder {
                pid,
                command: command.trim().to_string(),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_asks_for_every_socket_of_the_family_and_protocol() {
        let msg = request(libc::AF_INET as u8, Protocol::Udp);
        assert_eq!(msg.len(), 72);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), SOCK_DIAG_BY_FAMILY);
        assert_eq!(
            &msg[16..20],
            &[libc::AF_INET as u8, libc::IPPROTO_UDP as u8, 0, 0]
        );
        assert_eq!(&msg[20..24], &[0xff; 4]);
    }

    #[test]
    fn a_socket_of_this_process_is_found_with_its_holder() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let local4 = HostIp::V4(Ipv4Addr::LOCALHOST);
        let holder = find(local4, port, Protocol::Tcp).expect("a holder");
        assert_eq!(holder.pid, std::process::id());
        // Every address conflicts with 127.0.0.1; another address does not,
        // nor does IPv6.
        assert!(find(HostIp::AnyV4, port, Protocol::Tcp).is_some());
        assert_eq!(
            find(HostIp::V4(Ipv4Addr::new(127, 0, 0, 2)), port, Protocol::Tcp),
            None
        );
        assert_eq!(find(HostIp::AnyV6, port, Protocol::Tcp), None);
        assert_eq!(find(local4, port, Protocol::Udp), None);
    }

    fn bound(local: &str, v6only: bool) -> Bound {
        Bound {
            local: local.parse().unwrap(),
            port: 8080,
            inode: 7,
            v6only,
            state: 0,
        }
    }

    #[test]
    fn ipv6_holders_conflict_as_the_kernel_decides() {
        let any6 = HostIp::AnyV6;
        let local6 = HostIp::V6(Ipv6Addr::LOCALHOST);
        let doc6 = HostIp::V6("2001:db8::1".parse().unwrap());
        // `[::]` without IPV6_V6ONLY is both families' port.
        assert!(conflicts(HostIp::AnyV4, 8080, &bound("::", false)));
        assert!(conflicts(any6, 8080, &bound("::", false)));
        // With it, IPv6's only.
        assert!(!conflicts(HostIp::AnyV4, 8080, &bound("::", true)));
        assert!(conflicts(any6, 8080, &bound("::", true)));
        // One IPv6 address: every IPv6 address and itself, not another.
        assert!(conflicts(any6, 8080, &bound("::1", true)));
        assert!(conflicts(local6, 8080, &bound("::1", false)));
        assert!(conflicts(local6, 8080, &bound("::", true)));
        assert!(!conflicts(doc6, 8080, &bound("::1", false)));
        // IPv4 sockets, and IPv6 ones on v4-mapped addresses, are IPv4's.
        assert!(!conflicts(any6, 8080, &bound("0.0.0.0", false)));
        assert!(!conflicts(any6, 8080, &bound("::ffff:127.0.0.1", false)));
        assert!(conflicts(
            HostIp::V4(Ipv4Addr::LOCALHOST),
            8080,
            &bound("::ffff:127.0.0.1", false)
        ));
        // Another port, or a socket no process holds.
        assert!(!conflicts(any6, 8081, &bound("::", true)));
        assert!(!conflicts(
            any6,
            8080,
            &Bound {
                inode: 0,
                ..bound("::", true)
            }
        ));
    }

    #[test]
    fn the_v6only_attribute_is_read_after_the_message() {
        let mut msg = vec![0u8; MSG_LEN];
        msg[0] = libc::AF_INET6 as u8;
        msg[4..6].copy_from_slice(&8080u16.to_be_bytes());
        msg[68..72].copy_from_slice(&7u32.to_ne_bytes());
        // An attribute of another kind first (len 8), then SKV6ONLY (len 5,
        // padded to 8).
        msg.extend_from_slice(&8u16.to_ne_bytes());
        msg.extend_from_slice(&3u16.to_ne_bytes());
        msg.extend_from_slice(&[0; 4]);
        msg.extend_from_slice(&5u16.to_ne_bytes());
        msg.extend_from_slice(&INET_DIAG_SKV6ONLY.to_ne_bytes());
        msg.extend_from_slice(&[1, 0, 0, 0]);
        let parsed = parse(&msg).unwrap();
        assert_eq!(parsed, bound("::", true));
        assert!(!parse(&msg[..MSG_LEN]).unwrap().v6only);
    }
}
