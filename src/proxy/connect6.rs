//! `[::1]:PORT` without a relay: a cgroup-bpf `connect6` hook, the way
//! Cilium makes services reachable from the host.
//!
//! A program of type BPF_PROG_TYPE_CGROUP_SOCK_ADDR runs in every
//! `connect()` of an IPv6 socket made by a process of the hooked cgroup
//! (and of the cgroups below it), before the socket connects. When the
//! socket is TCP, the destination exactly `[::1]:PORT` with PORT in its map,
//! the socket bound to no address, and the socket's network namespace the
//! supervisor's own, it rewrites the destination to the container's
//! `[addr]:port`: the client's connection goes straight to the container,
//! no relay, no second TCP hop. It allows every connect, rewritten or not.
//!
//! **Sockets of any other network namespace are never touched**: cgroups
//! cross namespaces (a container's processes and the machine's own are in
//! the hierarchy the hook is attached to), so the program compares
//! `bpf_get_netns_cookie(ctx)` with the cookie of the supervisor's
//! namespace, baked in as an immediate. A container connecting to its own
//! `[::1]:8080` reaches its own loopback, as everywhere else.
//!
//! A socket bound to an address before `connect()` keeps the relay: bound
//! to `::1`, its packets could not leave by the bridge.
//!
//! What differs from the relay: the container sees the client's own
//! source port (its address is the host's address on the bridge, as
//! through the relay), and the client sees the container's `[addr]:port`
//! as its peer (`getpeername`), not `[::1]:PORT`: unlike DNAT, the rewrite
//! is the socket's own destination.
//!
//! The program, its map (host port -> container address and port) and the
//! link attaching it (BPF_LINK_CREATE, never BPF_PROG_ATTACH) live as long
//! as the [`Hook`]'s descriptors: dropping it, or the supervisor's end by
//! any means, crash included, detaches and frees all three. Nothing is
//! pinned; nothing outlives the process.

use std::ffi::CStr;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::ebpf::insn::{Insn, Program, R0, R1, R2, R3, R6, R10};
use crate::ebpf::sys;

/// `struct bpf_sock_addr`'s fields the program reads and writes.
mod ctx {
    pub const USER_FAMILY: i16 = 0;
    pub const USER_IP6: i16 = 8;
    pub const USER_PORT: i16 = 24;
    pub const PROTOCOL: i16 = 36;
    /// A pointer to the socket's `struct bpf_sock`.
    pub const SK: i16 = 64;
}

/// `struct bpf_sock`'s bound device and address.
const SOCK_BOUND_DEV_IF: i16 = 0;
const SOCK_SRC_IP6: i16 = 28;

const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_GET_NETNS_COOKIE: i32 = 122;

/// The map's key: the host port as the context holds it, network byte
/// order in the low two bytes of a u32.
const KEY_SIZE: u32 = 4;
/// The map's value: the container's address (16 bytes, network order),
/// then its port as the key holds one.
const VALUE_SIZE: u32 = 20;

/// The program's license, the project's: it calls no GPL-only helper.
const LICENSE: &CStr = c"MIT OR Apache-2.0";

/// The verifier's account of a refusal, its last lines kept.
const LOG_SIZE: usize = 64 * 1024;

/// One host port to rewrite, and where to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub host_port: u16,
    pub target: SocketAddrV6,
}

impl Entry {
    fn key(&self) -> [u8; KEY_SIZE as usize] {
        port_word(self.host_port)
    }

    fn value(&self) -> [u8; VALUE_SIZE as usize] {
        let mut value = [0u8; VALUE_SIZE as usize];
        value[..16].copy_from_slice(&self.target.ip().octets());
        value[16..].copy_from_slice(&port_word(self.target.port()));
        value
    }
}

/// A port as `struct bpf_sock_addr` holds one: its two bytes in network
/// order, then two zero bytes.
fn port_word(port: u16) -> [u8; 4] {
    let [high, low] = port.to_be_bytes();
    [high, low, 0, 0]
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no cgroup2 hierarchy is mounted (/proc/self/mountinfo)")]
    NoCgroup2,
    #[error("reading /proc/self/mountinfo")]
    Mountinfo(#[source] io::Error),
    #[error("opening cgroup {}", path.display())]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the supervisor's network namespace cookie (SO_NETNS_COOKIE)")]
    Cookie(#[source] io::Error),
    #[error("creating the [::1] connect hook's map")]
    Map(#[source] io::Error),
    #[error("setting [::1]:{port} in the [::1] connect hook's map")]
    Entry {
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("loading the [::1] connect hook{}", verifier(log))]
    Load {
        log: String,
        #[source]
        source: io::Error,
    },
    #[error("attaching the [::1] connect hook to cgroup {}", path.display())]
    Attach {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cgroup {} has the most connect programs the kernel takes (64: one per running \
         container with IPv6 ports, and any of others)",
        path.display()
    )]
    Full { path: PathBuf },
}

impl Error {
    /// Whether the hook could not be had for the cgroup being full, which
    /// users would otherwise meet only as another peer address.
    pub fn is_full(&self) -> bool {
        matches!(self, Error::Full { .. })
    }
}

fn verifier(log: &str) -> String {
    match log.lines().rev().find(|line| !line.trim().is_empty()) {
        Some(last) => format!(" (verifier: {last})"),
        None => String::new(),
    }
}

/// The hook, attached: dropping it detaches it and frees it all. The link
/// alone would keep the program, and the program the map; all three are
/// held so that the supervisor's fdinfo names each (tests/ipv6.rs checks
/// each is gone after the end).
#[derive(Debug)]
pub struct Hook {
    _map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl Hook {
    /// Rewrites `[::1]:PORT` for each of `entries` in the connects of
    /// `cgroup`'s processes whose socket is in the namespace of cookie
    /// `netns_cookie` (see [`netns_cookie`]).
    pub fn attach(cgroup: &Path, netns_cookie: u64, entries: &[Entry]) -> Result<Hook, Error> {
        // A directory or nothing: a FIFO given as the option would block
        // the open, and with it the supervisor, for good.
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(cgroup)
            .map_err(|source| Error::Cgroup {
                path: cgroup.to_path_buf(),
                source,
            })?;
        let max_entries = u32::try_from(entries.len().max(1)).unwrap_or(u32::MAX);
        let map =
            sys::hash_map("sv_loopback6", KEY_SIZE, VALUE_SIZE, max_entries).map_err(Error::Map)?;
        for entry in entries {
            // SAFETY: `key` and `value` are arrays of the map's KEY_SIZE and
            // VALUE_SIZE, with which `hash_map` made it.
            unsafe { sys::map_update(map.as_fd(), &entry.key(), &entry.value()) }.map_err(
                |source| Error::Entry {
                    port: entry.host_port,
                    source,
                },
            )?;
        }
        let prog = load(&program(map.as_raw_fd(), netns_cookie))?;
        let link = sys::link_create(prog.as_fd(), dir.as_fd(), sys::CGROUP_INET6_CONNECT).map_err(
            |source| match source.raw_os_error() {
                // BPF_CGROUP_MAX_PROGS
                Some(libc::E2BIG) => Error::Full {
                    path: cgroup.to_path_buf(),
                },
                _ => Error::Attach {
                    path: cgroup.to_path_buf(),
                    source,
                },
            },
        )?;
        Ok(Hook {
            _map: map,
            _prog: prog,
            _link: link,
        })
    }
}

/// The cgroup2 hierarchy's root, where the hook goes by default.
pub fn cgroup2_root() -> Result<PathBuf, Error> {
    crate::cgroup::cgroup2_mount()
        .map_err(Error::Mountinfo)?
        .ok_or(Error::NoCgroup2)
}

/// The cookie of the network namespace `socket` is in.
pub fn netns_cookie(socket: BorrowedFd) -> Result<u64, Error> {
    crate::netns_cookie::of_socket(socket).map_err(Error::Cookie)
}

/// Loads the program; on a refusal, loads it again with the verifier's
/// log for the error (kept off the common path: a log slows the load).
fn load(insns: &[Insn]) -> Result<OwnedFd, Error> {
    let attempt = |log: &mut [u8]| {
        sys::prog_load(
            "sv_loopback6",
            sys::PROG_TYPE_CGROUP_SOCK_ADDR,
            sys::CGROUP_INET6_CONNECT,
            insns,
            LICENSE,
            log,
        )
    };
    attempt(&mut []).or_else(|_| {
        let mut log = vec![0u8; LOG_SIZE];
        attempt(&mut log).map_err(|source| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Error::Load {
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
                source,
            }
        })
    })
}

/// The program. Registers: r6 the context throughout; r2, r3 scratch.
fn program(map_fd: i32, netns_cookie: u64) -> Vec<Insn> {
    let mut p = Program::default();
    let allow = p.label();
    p.mov(R6, R1);
    // An IPv6 TCP socket connecting to exactly ::1.
    p.load32(R2, R6, ctx::USER_FAMILY)
        .jne_imm(R2, libc::AF_INET6, allow);
    p.load32(R2, R6, ctx::PROTOCOL)
        .jne_imm(R2, libc::IPPROTO_TCP, allow);
    let loopback = Ipv6Addr::LOCALHOST.octets();
    for (word, bytes) in loopback.chunks_exact(4).enumerate() {
        let expected = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        p.load32(R2, R6, ctx::USER_IP6 + 4 * word as i16)
            .jne_imm(R2, expected as i32, allow);
    }
    // Bound to no device (SO_BINDTODEVICE "lo", a VRF: the rewritten
    // connection could not leave by the bridge, where the relay's can) and
    // to no address.
    p.load64(R2, R6, ctx::SK);
    p.load32(R3, R2, SOCK_BOUND_DEV_IF).jne_imm(R3, 0, allow);
    for word in 0..4 {
        p.load32(R3, R2, SOCK_SRC_IP6 + 4 * word)
            .jne_imm(R3, 0, allow);
    }
    // In the supervisor's network namespace.
    p.mov(R1, R6).call(BPF_FUNC_GET_NETNS_COOKIE);
    p.mov_imm64(R2, netns_cookie).jne(R0, R2, allow);
    // Its port in the map: the key on the stack.
    p.load32(R2, R6, ctx::USER_PORT).store32(R10, -4, R2);
    p.map(R1, map_fd)
        .mov(R2, R10)
        .add_imm(R2, -4)
        .call(BPF_FUNC_MAP_LOOKUP_ELEM)
        .jeq_imm(R0, 0, allow);
    // The container's address and port instead.
    for word in 0..4 {
        p.load32(R2, R0, 4 * word)
            .store32(R6, ctx::USER_IP6 + 4 * word, R2);
    }
    p.load32(R2, R0, 16).store32(R6, ctx::USER_PORT, R2);
    p.bind(allow);
    p.mov_imm(R0, 1).exit();
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_keyed_and_stored_as_the_context_holds_it() {
        let entry = Entry {
            host_port: 8080,
            target: SocketAddrV6::new("fd53:7570:6572::2".parse().unwrap(), 8000, 0, 0),
        };
        assert_eq!(entry.key(), [0x1f, 0x90, 0, 0]);
        let value = entry.value();
        assert_eq!(&value[..2], &[0xfd, 0x53]);
        assert_eq!(value[15], 2);
        assert_eq!(&value[16..], &[0x1f, 0x40, 0, 0]);
    }

    #[test]
    fn the_program_stays_a_few_dozen_instructions() {
        let insns = program(3, 42);
        assert!(insns.len() < 64, "{} instructions", insns.len());
    }

    #[test]
    fn a_refusal_names_the_verifiers_last_line() {
        assert_eq!(
            verifier("0: (bf) r6 = r1\ninvalid bpf_context access off=68 size=4\n\n"),
            " (verifier: invalid bpf_context access off=68 size=4)"
        );
        assert_eq!(verifier(""), "");
    }
}
