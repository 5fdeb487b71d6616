//! The bpf(2) commands the project uses, through libc's `syscall`: each
//! command's part of `union bpf_attr` as a `#[repr(C)]` struct of its own
//! (the kernel takes a prefix of the union, the rest read as zero).
//!
//! Every descriptor bpf(2) returns is close-on-exec, and the object it
//! refers to (map, program, link) lives until its last reference goes:
//! nothing here pins anything in bpffs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::insn::Insn;

const MAP_CREATE: libc::c_int = 0;
const MAP_UPDATE_ELEM: libc::c_int = 2;
const PROG_LOAD: libc::c_int = 5;
const PROG_GET_FD_BY_ID: libc::c_int = 13;
const MAP_GET_FD_BY_ID: libc::c_int = 14;
const PROG_QUERY: libc::c_int = 16;
const LINK_CREATE: libc::c_int = 28;
const LINK_GET_FD_BY_ID: libc::c_int = 30;

pub const MAP_TYPE_HASH: u32 = 1;
pub const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
pub const CGROUP_INET6_CONNECT: u32 = 11;

/// Names are at most 15 bytes and a NUL (BPF_OBJ_NAME_LEN).
type Name = [u8; 16];

fn name(text: &str) -> Name {
    let mut name = [0u8; 16];
    let len = text.len().min(15);
    name[..len].copy_from_slice(&text.as_bytes()[..len]);
    name
}

#[repr(C)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: Name,
}

#[repr(C)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: Name,
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

#[repr(C)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
struct ById {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(`cmd`, `attr`): the kernel's non-negative answer (an fd or 0).
///
/// # Safety
/// `T` must be the layout of `cmd`'s part of `union bpf_attr`, and every
/// address in it valid for what `cmd` does with it for the call's length.
unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller vouches for `attr`'s layout and addresses; the
    // size passed is its own.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `ret`, an fd bpf(2) returned, owned.
fn owned(ret: libc::c_long) -> OwnedFd {
    // SAFETY: a command that creates an object returns a new descriptor
    // that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) }
}

/// A hash map of `max_entries` entries.
pub fn hash_map(
    map_name: &str,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreate {
        map_type: MAP_TYPE_HASH,
        key_size,
        value_size,
        max_entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: name(map_name),
    };
    // SAFETY: BPF_MAP_CREATE's layout; no addresses.
    unsafe { bpf(MAP_CREATE, &mut attr) }.map(owned)
}

/// Sets `key` to `value` in `map`.
///
/// # Safety
/// `key` and `value` must be exactly the map's key and value sizes: the
/// kernel reads that many bytes from each.
pub unsafe fn map_update(map: BorrowedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapElem {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags: 0,
    };
    // SAFETY: BPF_MAP_UPDATE_ELEM's layout; the kernel reads the map's key
    // and value sizes from `key` and `value`, which the caller guarantees
    // (this function's contract).
    unsafe { bpf(MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

/// Loads `insns` as a program of `prog_type` for `expected_attach_type`.
/// On a refusal, `log` (when not empty) holds the verifier's account.
pub fn prog_load(
    prog_name: &str,
    prog_type: u32,
    expected_attach_type: u32,
    insns: &[Insn],
    license: &CStr,
    log: &mut [u8],
) -> io::Result<OwnedFd> {
    let mut attr = ProgLoad {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        // Null when there is no log: an empty slice's dangling pointer
        // with a size of 0 is refused (EINVAL), which made every load a
        // second one, with a log.
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        kern_version: 0,
        prog_flags: 0,
        prog_name: name(prog_name),
        prog_ifindex: 0,
        expected_attach_type,
    };
    // SAFETY: BPF_PROG_LOAD's layout; `insns`, `license` and `log` outlive
    // the call, and the kernel writes at most `log.len()` bytes to `log`.
    unsafe { bpf(PROG_LOAD, &mut attr) }.map(owned)
}

/// Attaches `prog` to `target` (a cgroup's directory, for cgroup
/// programs) as a link: detached when the link's last fd closes.
pub fn link_create(prog: BorrowedFd, target: BorrowedFd, attach_type: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: target.as_raw_fd() as u32,
        attach_type,
        flags: 0,
    };
    // SAFETY: BPF_LINK_CREATE's layout; no addresses.
    unsafe { bpf(LINK_CREATE, &mut attr) }.map(owned)
}

/// The ids of the programs attached to `target` (a cgroup's directory) at
/// `attach_type`, that cgroup's own (not those it inherits).
pub fn prog_query(target: BorrowedFd, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut attr = ProgQuery {
        target_fd: target.as_raw_fd() as u32,
        attach_type,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        _pad: 0,
    };
    // SAFETY: BPF_PROG_QUERY's layout; the kernel writes at most
    // `prog_cnt` ids to `ids`, which outlives the call.
    unsafe { bpf(PROG_QUERY, &mut attr) }?;
    Ok(ids[..(attr.prog_cnt as usize).min(ids.len())].to_vec())
}

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Prog,
    Map,
    Link,
}

/// An fd of the object `id` names, or ENOENT once it is gone.
pub fn fd_by_id(object: Object, id: u32) -> io::Result<OwnedFd> {
    let cmd = match object {
        Object::Prog => PROG_GET_FD_BY_ID,
        Object::Map => MAP_GET_FD_BY_ID,
        Object::Link => LINK_GET_FD_BY_ID,
    };
    let mut attr = ById {
        id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: the GET_FD_BY_ID commands' layout; no addresses.
    unsafe { bpf(cmd, &mut attr) }.map(owned)
}
