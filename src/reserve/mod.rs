//! Host port reservations: each published host port is held by a bound
//! socket for the container's life, as docker-proxy and podman's port
//! reservation do.
//!
//! The DNAT elements alone take a port from under any host program: one
//! already listening on it is silently bypassed, one that binds it later
//! succeeds and never sees a packet. A socket bound to the port (TCP and/or
//! UDP as published, on the given host address or 0.0.0.0, without
//! SO_REUSEADDR, never listening) makes the kernel arbitrate instead: our
//! bind fails with EADDRINUSE when a host program or another container
//! holds the port (its holder is then named, see `holder`), and a program
//! that binds it later gets EADDRINUSE. The kernel also refuses 0.0.0.0:P
//! against 127.0.0.1:P either way round, atomically. A port we pick is the
//! kernel's choice (bind to port 0), so racing supervisors never pick the
//! same one.
//!
//! IPv6 is a family of its own: `[::]:P` is bound with IPV6_V6ONLY, so it
//! takes IPv6's port and never IPv4's; `-p 8080:80` on a dual-stack network
//! is two reservations, `0.0.0.0:8080` and `[::]:8080`, and a port we pick
//! for both is the same on both (picked on IPv4, then bound on IPv6; picked
//! again while IPv6 has it taken). A reservation on `[::]` or `[::1]` is
//! also the `[::1]` proxy's socket (`proxied`, `proxy::start_all`): the
//! firewall DNATs every other address before the socket is looked up, so
//! only connections to `::1` reach it. Its TCP socket listens from the
//! start and has SO_REUSEADDR: the proxy's closed connections leave
//! TIME_WAIT on the port, which would keep a restarted supervisor from
//! binding it for a minute, and a listening socket still refuses every
//! other bind of the port, SO_REUSEADDR or not.
//!
//! The sockets are CLOEXEC and are opened after the container is cloned,
//! so the container never has them (its init does not exec); a check
//! before anything is created refuses a clash early. They close when the
//! supervisor exits, however it exits: a crashed supervisor's reservations
//! die with it.

mod holder;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, getsockname, listen,
    setsockopt, socket, sockopt,
};

pub use holder::{Bound, Holder, find as find_holder, sockets};

use crate::values::{Bracketed, HostIp, PortMapping, Protocol};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot publish {mapping}: host port {port} is in use by {holder}")]
    InUse {
        /// As the user asked for it.
        mapping: PortMapping,
        /// `ADDR:PORT/PROTO` or `PORT/PROTO`.
        port: String,
        holder: String,
    },
    #[error("cannot publish {mapping}: every host port of {range} is in use: {holders}")]
    RangeInUse {
        /// As the user asked for it.
        mapping: PortMapping,
        /// `[ADDR:]FIRST-LAST/PROTO`.
        range: String,
        /// The first few ports with their holders, and how many more.
        holders: String,
    },
    #[error(
        "cannot publish {mapping}: {addr} is not an address of this host (publish on one of its addresses, or on all of them without an address)"
    )]
    NotLocal { mapping: PortMapping, addr: IpAddr },
    #[error("no free host port left for {0}")]
    NoFreePort(Protocol),
    #[error("no host port left for {0} that is free on both IPv4 and IPv6")]
    NoFreePortPair(Protocol),
    #[error(
        "publishing {ports} host ports holds a socket each: {wanted} open files with the supervisor's own, and the limit is {limit} (raise it with `ulimit -n`)"
    )]
    TooManyFiles {
        ports: usize,
        wanted: u64,
        limit: u64,
    },
    #[error("reserving host port {port}")]
    Socket {
        port: String,
        #[source]
        source: io::Error,
    },
}

/// The families a mapping without a host address is published on: IPv4
/// alone, or (a network with IPv6) both, on the same host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    Ipv4,
    DualStack,
}

/// One host port held, with the mapping it serves (host port decided).
#[derive(Debug)]
struct Held {
    /// Its `host_ip` is always given: one family, every address or one.
    mapping: PortMapping,
    /// True when the user left the host port to us.
    picked: bool,
    /// The index of the mapping asked for: both families of one mapping
    /// share it.
    asked: usize,
    socket: OwnedFd,
}

impl Held {
    fn host_ip(&self) -> HostIp {
        self.mapping.host_ip.unwrap_or(HostIp::AnyV4)
    }
}

/// A reservation whose socket the `[::1]` proxy serves: listening (TCP)
/// or bound (UDP) on every IPv6 address or on `::1`.
#[derive(Debug)]
pub struct Proxied<'a> {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    pub socket: BorrowedFd<'a>,
}

/// The host ports of one container, held until dropped.
#[derive(Debug, Default)]
pub struct Reservations {
    held: Vec<Held>,
}

/// Names the process `pid` holding a port, when the caller knows it better
/// than by its command (e.g. as a container's supervisor).
pub type NameOf<'a> = &'a dyn Fn(u32) -> Option<String>;

impl Reservations {
    /// Reserves the host port of every mapping, picking a free one (the
    /// kernel's choice) for those without; a mapping without a host address
    /// is reserved on every family of `families`, on the same port.
    /// Nothing stays reserved on error.
    pub fn take(
        mappings: &[PortMapping],
        families: Families,
        name_of: NameOf,
    ) -> Result<Reservations, Error> {
        raise_file_limit(sockets_for(mappings, families))?;
        let mut groups = Vec::new();
        let mut index = 0;
        while let Some(asked) = mappings.get(index) {
            // An unqualified port already split per family (as
            // `plan::per_family` gives it) is one pick for both too.
            let (one, families, step) = match mappings.get(index + 1) {
                Some(next) if asked.is_split_pair(next) => {
                    let one = PortMapping {
                        host_ip: None,
                        ..*asked
                    };
                    (one, Families::DualStack, 2)
                }
                _ => (*asked, families, 1),
            };
            groups.push((index, one, families));
            index += step;
        }
        // Given ports before ranges: `-p 8000-8001:80 -p 8000:81` is 8001
        // and 8000, not 8000 and a refusal naming ourselves.
        groups.sort_by_key(|(_, one, _)| one.host_port.is_none() && one.host_range.is_some());
        let mut reservations = Reservations::default();
        for (index, one, families) in groups {
            for (mapping, socket) in reserve(&one, families, Use::Keep, Some(name_of))? {
                reservations.held.push(Held {
                    mapping,
                    picked: one.host_port.is_none(),
                    asked: index,
                    socket,
                });
            }
        }
        reservations.held.sort_by_key(|h| h.asked);
        Ok(reservations)
    }

    /// Whether every given host port could be reserved now, without
    /// keeping any: for refusing a clash before anything is created. The
    /// reservation itself is taken later (see `take`), once the container
    /// is cloned, and the kernel decides again then.
    pub fn check(
        mappings: &[PortMapping],
        families: Families,
        name_of: NameOf,
    ) -> Result<(), Error> {
        let given: Vec<&PortMapping> = mappings
            .iter()
            .filter(|m| m.host_port.is_some() || m.host_range.is_some())
            .collect();
        raise_file_limit(given.iter().map(|m| sockets_for(&[**m], families)).sum())?;
        for mapping in given {
            // Once more after a refusal: the holder may have been another
            // supervisor's check, whose socket lives for microseconds.
            if reserve(mapping, families, Use::Check, Some(name_of)).is_err() {
                reserve(mapping, families, Use::Check, Some(name_of))?;
            }
        }
        Ok(())
    }

    /// The reservations the `[::1]` proxy serves from their own socket:
    /// those on every IPv6 address and on `::1` (see `proxy::start_all`).
    pub fn proxied(&self) -> Vec<Proxied<'_>> {
        self.held
            .iter()
            .filter(|h| serves_loopback6(h.host_ip()))
            .filter_map(|h| {
                Some(Proxied {
                    host_port: h.mapping.host_port?,
                    container_port: h.mapping.container_port,
                    protocol: h.mapping.protocol,
                    socket: h.socket.as_fd(),
                })
            })
            .collect()
    }

    /// Descriptors the `[::1]` relays of these reservations may hold
    /// between them (see `proxy::Limits::within`): the soft limit, raised
    /// to the hard one first when it can be (the relays are what needs
    /// room, and nothing of ours uses select(2)), less a socket per
    /// reservation and the supervisor's own spare.
    pub fn room_for_relays(&self) -> u64 {
        let (soft, hard) = file_limit();
        let soft = if soft < hard && set_file_limit(hard, hard).is_ok() {
            hard
        } else {
            soft
        };
        soft.saturating_sub(SPARE + self.held.len() as u64)
    }

    /// Whether each mapping, in the order of `mappings`, had its host port
    /// picked rather than given (`run` announces those).
    pub fn picked(&self) -> Vec<bool> {
        self.held.iter().map(|h| h.picked).collect()
    }

    /// The mappings, every host port and host address decided (one
    /// mapping per family), in the order given.
    pub fn mappings(&self) -> Vec<PortMapping> {
        self.held.iter().map(|h| h.mapping).collect()
    }

    /// Picks another host port for the picked mapping now on `port` and
    /// `protocol` (the firewall already has an element there that no socket
    /// holds); false when no picked mapping has it. A port picked for both
    /// families is picked again for both. The old sockets are kept until
    /// the new ones are bound, so the kernel cannot hand the port back.
    pub fn repick(&mut self, protocol: Protocol, port: u16) -> Result<bool, Error> {
        let Some(found) = self.held.iter().find(|h| {
            h.picked && h.mapping.protocol == protocol && h.mapping.host_port == Some(port)
        }) else {
            return Ok(false);
        };
        let group = found.asked;
        let same: Vec<usize> = (0..self.held.len())
            .filter(|&i| self.held[i].asked == group)
            .collect();
        // A range goes on after the rejected port: every port before it
        // was held when it was picked, and the sockets of ports rejected
        // earlier are gone, so starting over would pick one of them again.
        let range = found.mapping.host_range;
        let after = match range {
            Some((_, last)) if port < last => Some((port + 1, last)),
            Some(_) => return Ok(false),
            None => None,
        };
        let asked = PortMapping {
            host_port: None,
            // Both families from one mapping: a pair again.
            host_ip: if same.len() > 1 {
                None
            } else {
                found.mapping.host_ip
            },
            host_range: after,
            ..found.mapping
        };
        let new = reserve(&asked, Families::DualStack, Use::Keep, Some(&|_| None))?;
        for (i, (mapping, socket)) in same.into_iter().zip(new) {
            self.held[i].mapping = PortMapping {
                host_range: range,
                ..mapping
            };
            self.held[i].socket = socket;
        }
        Ok(true)
    }
}

/// Whether a reservation on `host_ip` is the `[::1]` proxy's socket: every
/// IPv6 address (the firewall DNATs every other address before the socket
/// is looked up, so only `::1` reaches it) or `::1` itself.
fn serves_loopback6(host_ip: HostIp) -> bool {
    matches!(host_ip, HostIp::AnyV6 | HostIp::V6(Ipv6Addr::LOCALHOST))
}

/// Sockets `mappings` take.
fn sockets_for(mappings: &[PortMapping], families: Families) -> usize {
    mappings
        .iter()
        .map(|m| match (m.host_ip, families) {
            (None, Families::DualStack) => 2,
            _ => 1,
        })
        .sum()
}

/// Whether a bound socket is kept (and the proxy's ones listen) or only
/// tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Keep,
    Check,
}

/// How many times a port picked on IPv4 but taken on IPv6 is picked again.
const PAIR_TRIES: usize = 64;

/// How many taken ports of a range have their holder named: each is a
/// sock_diag dump and a walk of `/proc`.
const NAMED: usize = 3;

/// The sockets `asked` takes: one for a host address, one per family of
/// `families` without one (then on one port: a picked one is picked on
/// IPv4, then bound on IPv6, and picked again if IPv6 has it taken). A
/// port taken is named by its holder unless `name_of` is None.
fn reserve(
    asked: &PortMapping,
    families: Families,
    how: Use,
    name_of: Option<NameOf>,
) -> Result<Vec<(PortMapping, OwnedFd)>, Error> {
    if let (None, Some(range)) = (asked.host_port, asked.host_range) {
        return reserve_in(range, asked, families, how, name_of);
    }
    let on = |host_ip| PortMapping {
        host_ip: Some(host_ip),
        ..*asked
    };
    match (asked.host_ip, families) {
        (Some(host_ip), _) => Ok(vec![bind_port(&on(host_ip), asked, how, name_of)?]),
        (None, Families::Ipv4) => Ok(vec![bind_port(&on(HostIp::AnyV4), asked, how, name_of)?]),
        (None, Families::DualStack) if asked.host_port.is_some() => Ok(vec![
            bind_port(&on(HostIp::AnyV4), asked, how, name_of)?,
            bind_port(&on(HostIp::AnyV6), asked, how, name_of)?,
        ]),
        (None, Families::DualStack) => {
            // The ports IPv6 has taken stay held until a pair is found, so
            // the kernel picks another one each time: its picks are not
            // uniform (bind tries odd ports first), and one free on IPv6
            // might never come up otherwise.
            let mut rejected = Vec::new();
            while rejected.len() < PAIR_TRIES {
                let v4 = match bind_port(&on(HostIp::AnyV4), asked, how, name_of) {
                    Err(Error::NoFreePort(_)) if !rejected.is_empty() => break,
                    picked => picked?,
                };
                let v6 = PortMapping {
                    host_port: v4.0.host_port,
                    ..on(HostIp::AnyV6)
                };
                let port = v4.0.host_port.unwrap_or(0);
                // Bound here, not by bind_port: a port taken is no error
                // yet, and not worth naming its holder.
                match bind_socket(HostIp::AnyV6, port, asked.protocol, how) {
                    Ok((_, socket)) => return Ok(vec![v4, (v6, socket)]),
                    Err(Errno::EADDRINUSE) => rejected.push(v4),
                    Err(errno) => return Err(bind_error(errno, &v6, asked, name_of)),
                }
            }
            Err(Error::NoFreePortPair(asked.protocol))
        }
    }
}

/// The sockets of the first port of `range`, first to last, that is free
/// on every family `asked` takes (docker's `-p 8000-8010:80`): the kernel
/// arbitrates each bind, so racing supervisors get different ports. Every
/// port taken: the range is the error, with the holders of the first few.
fn reserve_in(
    (first, last): (u16, u16),
    asked: &PortMapping,
    families: Families,
    how: Use,
    name_of: Option<NameOf>,
) -> Result<Vec<(PortMapping, OwnedFd)>, Error> {
    let mut named = Vec::new();
    let mut unnamed = 0;
    for port in first..=last {
        let given = PortMapping {
            host_port: Some(port),
            ..*asked
        };
        let naming = name_of.filter(|_| named.len() < NAMED);
        match reserve(&given, families, how, naming) {
            Err(Error::InUse { port, holder, .. }) if naming.is_some() => {
                named.push(format!("{port} by {holder}"));
            }
            Err(Error::InUse { .. }) => unnamed += 1,
            held => return held,
        }
    }
    let mut holders = named.join(", ");
    if unnamed > 0 {
        holders.push_str(&format!(", and {unnamed} more"));
    }
    Err(Error::RangeInUse {
        mapping: *asked,
        range: port_label(
            asked.host_ip.unwrap_or(HostIp::AnyV4),
            format_args!("{first}-{last}"),
            asked.protocol,
        ),
        holders,
    })
}

/// Binds a socket for `mapping`'s host port on its host address (port 0:
/// the kernel picks); returns the mapping with its host port and the
/// socket. `asked` is the mapping as the user gave it, for errors.
fn bind_port(
    mapping: &PortMapping,
    asked: &PortMapping,
    how: Use,
    name_of: Option<NameOf>,
) -> Result<(PortMapping, OwnedFd), Error> {
    let host_ip = mapping.host_ip.unwrap_or(HostIp::AnyV4);
    let port = mapping.host_port.unwrap_or(0);
    let (bound, socket) = bind_socket(host_ip, port, mapping.protocol, how)
        .map_err(|errno| bind_error(errno, mapping, asked, name_of))?;
    let mapping = PortMapping {
        host_port: Some(bound),
        ..*mapping
    };
    Ok((mapping, socket))
}

/// Why `mapping` could not be bound, its holder named when it is taken.
fn bind_error(
    errno: Errno,
    mapping: &PortMapping,
    asked: &PortMapping,
    name_of: Option<NameOf>,
) -> Error {
    let host_ip = mapping.host_ip.unwrap_or(HostIp::AnyV4);
    let port = mapping.host_port.unwrap_or(0);
    let label = || port_label(host_ip, port, mapping.protocol);
    match errno {
        Errno::EADDRINUSE if port == 0 => Error::NoFreePort(mapping.protocol),
        Errno::EADDRINUSE => {
            let holder = match name_of {
                // Only a range's ports past its first few: never shown.
                None => String::new(),
                Some(name_of) => match holder::find(host_ip, port, mapping.protocol) {
                    Some(holder) => name_of(holder.pid).unwrap_or_else(|| holder.to_string()),
                    None => "another socket (its process was not found)".to_string(),
                },
            };
            Error::InUse {
                mapping: *asked,
                port: label(),
                holder,
            }
        }
        Errno::EADDRNOTAVAIL => Error::NotLocal {
            mapping: *asked,
            addr: host_ip.ip(),
        },
        errno => Error::Socket {
            port: label(),
            source: errno.into(),
        },
    }
}

/// A socket bound to `port` (0: the kernel picks) on `host_ip`, and the
/// port it got.
fn bind_socket(
    host_ip: HostIp,
    port: u16,
    protocol: Protocol,
    how: Use,
) -> Result<(u16, OwnedFd), Errno> {
    // The kernel binds a socket to a multicast or broadcast address (a
    // receiver's), but no connection to one is local to the host's `fib`:
    // the published port would never be reached. Not an address of this
    // host to publish on.
    let unreachable = |ip: IpAddr| ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST);
    if host_ip.specific().is_some_and(unreachable) {
        return Err(Errno::EADDRNOTAVAIL);
    }
    let kind = match protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let family = match host_ip.ip() {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let socket = socket(family, kind, SockFlag::SOCK_CLOEXEC, None)?;
    if family == AddressFamily::Inet6 {
        // `[::]:P` is IPv6's port only: IPv4's is published, or not, on its
        // own.
        setsockopt(&socket, sockopt::Ipv6V6Only, &true)?;
    }
    let listens = serves_loopback6(host_ip) && protocol == Protocol::Tcp;
    if listens {
        // The proxy listens on this socket: connections it closes first
        // leave TIME_WAIT on the port, and a supervisor started again
        // within a minute could not bind it without SO_REUSEADDR. A
        // listening socket with it still refuses every other bind, with
        // SO_REUSEADDR or without (the kernel shares a port only between
        // sockets none of which listens).
        setsockopt(&socket, sockopt::ReuseAddr, &true)?;
    }
    // No SO_REUSEADDR otherwise: with it, a later bind by a program that
    // sets it too would succeed beside ours.
    bind(
        socket.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(host_ip.ip(), port)),
    )?;
    if listens && how == Use::Keep {
        // Listening now, not when the proxy starts: until then a program
        // binding with SO_REUSEADDR could share the port.
        listen(&socket, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))?;
    }
    let bound: SockaddrStorage = getsockname(socket.as_raw_fd())?;
    let bound = bound
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| bound.as_sockaddr_in6().map(|a| a.port()))
        .unwrap_or(port);
    Ok((bound, socket))
}

/// `8080/tcp` on every IPv4 address, `[::]:8080/tcp` on every IPv6
/// address, `127.0.0.1:8080/tcp`, `[::1]:8080/tcp`.
fn port_label(host_ip: HostIp, port: impl fmt::Display, protocol: Protocol) -> String {
    match host_ip {
        HostIp::AnyV4 => format!("{port}/{protocol}"),
        ip => format!("{}:{port}/{protocol}", Bracketed(ip)),
    }
}

/// Descriptors the supervisor keeps for itself beside its ports' sockets.
const SPARE: u64 = 256;

/// Makes room for one descriptor per port, and some to spare: the soft
/// limit goes up to the hard one when needed. Only the supervisor's: the
/// container was cloned before and keeps its own.
fn raise_file_limit(ports: usize) -> Result<(), Error> {
    let wanted = ports as u64 + SPARE;
    let (soft, hard) = file_limit();
    if wanted <= soft {
        return Ok(());
    }
    if wanted > hard || set_file_limit(hard, hard).is_err() {
        return Err(Error::TooManyFiles {
            ports,
            wanted,
            limit: hard.max(soft),
        });
    }
    Ok(())
}

fn file_limit() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => (limit.rlim_cur, limit.rlim_max),
        _ => (1024, 1024),
    }
}

fn set_file_limit(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct it is given, nothing else.
    match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {} ({})", self.pid, self.command)
    }
}
