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
//! The sockets are CLOEXEC and are opened after the container is cloned,
//! so the container never has them (its init does not exec); a check
//! before anything is created refuses a clash early. They close when the supervisor exits,
//! however it exits: a crashed supervisor's reservations die with it.

mod holder;

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket};

pub use holder::{Holder, find as find_holder};

use crate::values::{HostIp, PortMapping, Protocol};

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
    #[error(
        "cannot publish {mapping}: {addr} is not an address of this host (publish on one of its addresses, or on all of them without an address)"
    )]
    NotLocal {
        mapping: PortMapping,
        addr: Ipv4Addr,
    },
    #[error("cannot publish {mapping}: IPv6 host ports are not reserved yet")]
    Ipv6NotYet { mapping: PortMapping },
    #[error("no free host port left for {0}")]
    NoFreePort(Protocol),
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

/// One host port held, with the mapping it serves (host port decided).
#[derive(Debug)]
struct Held {
    mapping: PortMapping,
    /// True when the user left the host port to us.
    picked: bool,
    _socket: OwnedFd,
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
    /// kernel's choice) for those without. Nothing stays reserved on error.
    pub fn take(mappings: &[PortMapping], name_of: NameOf) -> Result<Reservations, Error> {
        raise_file_limit(mappings.len())?;
        let mut reservations = Reservations::default();
        for asked in mappings {
            let (mapping, socket) = bind_port(asked, name_of)?;
            reservations.held.push(Held {
                mapping,
                picked: asked.host_port.is_none(),
                _socket: socket,
            });
        }
        Ok(reservations)
    }

    /// Whether every given host port could be reserved now, without
    /// keeping any: for refusing a clash before anything is created. The
    /// reservation itself is taken later (see `take`), once the container
    /// is cloned, and the kernel decides again then.
    pub fn check(mappings: &[PortMapping], name_of: NameOf) -> Result<(), Error> {
        let given: Vec<&PortMapping> = mappings.iter().filter(|m| m.host_port.is_some()).collect();
        raise_file_limit(given.len())?;
        for mapping in given {
            // Once more after a refusal: the holder may have been another
            // supervisor's check, whose socket lives for microseconds.
            if bind_port(mapping, name_of).is_err() {
                bind_port(mapping, name_of)?;
            }
        }
        Ok(())
    }

    /// The mappings, every host port decided, in the order given.
    pub fn mappings(&self) -> Vec<PortMapping> {
        self.held.iter().map(|h| h.mapping).collect()
    }

    /// Picks another host port for the picked mapping now on `port` and
    /// `protocol` (the firewall already has an element there that no socket
    /// holds); false when no picked mapping has it. The old socket is kept
    /// until the new one is bound, so the kernel cannot hand it back.
    pub fn repick(&mut self, protocol: Protocol, port: u16) -> Result<bool, Error> {
        let Some(held) = self.held.iter_mut().find(|h| {
            h.picked && h.mapping.protocol == protocol && h.mapping.host_port == Some(port)
        }) else {
            return Ok(false);
        };
        let asked = PortMapping {
            host_port: None,
            ..held.mapping
        };
        let (mapping, socket) = bind_port(&asked, &|_| None)?;
        held.mapping = mapping;
        held._socket = socket;
        Ok(true)
    }
}

/// Binds a socket for `mapping`'s host port (port 0: the kernel picks);
/// returns the mapping with its host port and the socket.
fn bind_port(mapping: &PortMapping, name_of: NameOf) -> Result<(PortMapping, OwnedFd), Error> {
    let port = mapping.host_port.unwrap_or(0);
    let host_ip = match mapping.host_ip {
        None | Some(HostIp::AnyV4) => None,
        Some(HostIp::V4(ip)) => Some(ip),
        Some(HostIp::AnyV6 | HostIp::V6(_)) => {
            return Err(Error::Ipv6NotYet { mapping: *mapping });
        }
    };
    let addr = host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let label = || port_label(host_ip, port, mapping.protocol);
    let fail = |errno: Errno| Error::Socket {
        port: label(),
        source: errno.into(),
    };
    let kind = match mapping.protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    // No SO_REUSEADDR: with it, a later bind by a program that sets it too
    // would succeed beside ours.
    let socket = socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None).map_err(fail)?;
    match bind(
        socket.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(addr, port)),
    ) {
        Ok(()) => {}
        Err(Errno::EADDRINUSE) if port == 0 => return Err(Error::NoFreePort(mapping.protocol)),
        Err(Errno::EADDRINUSE) => {
            let holder = match holder::find(host_ip, port, mapping.protocol) {
                Some(holder) => name_of(holder.pid).unwrap_or_else(|| holder.to_string()),
                None => "another socket (its process was not found)".to_string(),
            };
            return Err(Error::InUse {
                mapping: *mapping,
                port: label(),
                holder,
            });
        }
        Err(Errno::EADDRNOTAVAIL) => {
            return Err(Error::NotLocal {
                mapping: *mapping,
                addr,
            });
        }
        Err(errno) => return Err(fail(errno)),
    }
    let bound: SockaddrIn = getsockname(socket.as_raw_fd()).map_err(fail)?;
    let mapping = PortMapping {
        host_port: Some(bound.port()),
        ..*mapping
    };
    Ok((mapping, socket))
}

/// `127.0.0.1:8080/tcp`, or `8080/tcp` on every address.
fn port_label(host_ip: Option<Ipv4Addr>, port: u16, protocol: Protocol) -> String {
    match host_ip {
        Some(ip) => format!("{ip}:{port}/{protocol}"),
        None => format!("{port}/{protocol}"),
    }
}

/// Makes room for one descriptor per port, and some to spare: the soft
/// limit goes up to the hard one when needed. Only the supervisor's: the
/// container was cloned before and keeps its own.
fn raise_file_limit(ports: usize) -> Result<(), Error> {
    const SPARE: u64 = 256;
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
