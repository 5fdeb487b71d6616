//! Deleting a link without waiting for it. The kernel deletes a veth pair
//! in the requester's own time: 25-35 ms waiting for RCU (measured), which
//! a CNI DEL whose namespace outlives it would otherwise spend. A forked
//! child sends the request and waits instead; the caller goes on (and may
//! exit) at once. The child holds nothing of the caller's: every inherited
//! descriptor is closed first, so an engine reading the caller's stdout
//! sees its end.

use std::io;

use super::link::{IFLA_IFNAME, IFLA_LINK_NETNSID, IFLA_MASTER, RTM_NEWLINK, ifname_problem};

const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// The type bits of an attribute's type (linux/netlink.h: NLA_TYPE_MASK).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The requests removing link `name`, as the kernel reads them (see
/// [`removal`]).
fn request(name: &str) -> Vec<u8> {
    removal(0, Some(name))
}

/// The requests removing the link with index `index`: for a link that
/// must go later, once its name may have gone to another (see
/// `nftables::AfterExit`). A host's interface indexes are not reused
/// until its counter wraps, so it never names another link.
pub fn removal_request(index: u32) -> Vec<u8> {
    removal(index, None)
}

/// The length of [`removal_request`]'s requests: the release, its
/// IFLA_MASTER, and the deletion.
const REMOVAL_BY_INDEX_LEN: usize = 32 + 8 + 32;

/// A link's removal: out of its bridge first (RTM_NEWLINK, IFLA_MASTER 0,
/// acknowledged only when it fails), then deleted (RTM_DELLINK). Both name
/// the link by `index`, or by `name` when it is 0.
///
/// The release saves the bridge a walk of every port. Deleted while on
/// the bridge, a port is disabled twice: once as the link goes down,
/// once as it leaves the bridge, and each time the bridge walks all its
/// ports (`br_stp_disable_port` → `br_port_state_selection`, which
/// re-arms two multicast query timers on every port), under RTNL. A
/// port released first leaves once, and the link then goes down
/// outside the bridge. With 900 ports (perf, removals with and without
/// the release alternated, load 7-8): 1.65-1.74 ms of kernel CPU per
/// removal against 1.97-2.17, under the lock the next container's
/// plumbing waits for.
fn removal(index: u32, name: Option<&str>) -> Vec<u8> {
    let mut msg = Vec::with_capacity(2 * (32 + 24));
    let mut release = link_message(RTM_NEWLINK, NLM_F_REQUEST, 1, index, name);
    put_attribute(&mut release, IFLA_MASTER, &0u32.to_ne_bytes());
    msg.extend_from_slice(&release);
    msg.extend_from_slice(&link_message(
        RTM_DELLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        2,
        index,
        name,
    ));
    msg
}

/// A link request of type `kind` naming the link by `index`, or by `name`
/// (IFLA_IFNAME) when it is 0; its length set, attributes to follow
/// ([`put_attribute`]).
fn link_message(kind: u16, flags: u16, seq: u32, index: u32, name: Option<&str>) -> Vec<u8> {
    let mut msg = Vec::with_capacity(32 + 24);
    msg.extend_from_slice(&32u32.to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    // ifinfomsg: family and padding, type, index, flags, change mask.
    msg.extend_from_slice(&[0u8; 4]);
    msg.extend_from_slice(&index.to_ne_bytes());
    msg.extend_from_slice(&[0u8; 8]);
    if let Some(name) = name {
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        put_attribute(&mut msg, IFLA_IFNAME, &value);
    }
    msg
}

/// Appends attribute `kind` with `value` to `msg`, padded to four bytes,
/// and updates the message's length.
fn put_attribute(msg: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(value);
    msg.resize(msg.len() + ((len + 3) & !3) - len, 0);
    let total = msg.len() as u32;
    msg[..4].copy_from_slice(&total.to_ne_bytes());
}

/// The RTM_GETLINK request for the link that the requests `removal` (see
/// [`removal_request`]) name by index; None for ones that name it
/// otherwise. On the stack: the holder allocates nothing.
fn lookup_request(removal: &[u8]) -> Option<[u8; 32]> {
    let index: [u8; 4] = removal.get(20..24)?.try_into().ok()?;
    if removal.len() != REMOVAL_BY_INDEX_LEN || index == [0; 4] {
        return None;
    }
    let mut msg = [0u8; 32];
    msg[..4].copy_from_slice(&32u32.to_ne_bytes());
    msg[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    msg[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    msg[20..24].copy_from_slice(&index);
    Some(msg)
}

/// Whether `answer` to an RTM_GETLINK request is a link whose peer lives
/// in a namespace something still holds: the kernel gives the peer's
/// namespace an id (IFLA_LINK_NETNSID) only while it is alive, -1 once
/// nothing holds it (peernet2id_alloc), when its own teardown takes the
/// pair away. An answer cut short counts as alive: deleting is never
/// wrong, only slower.
fn peer_lives(answer: &[u8], cut_short: bool) -> bool {
    let Some(header) = answer.get(..32) else {
        return cut_short;
    };
    if u16::from_ne_bytes([header[4], header[5]]) != RTM_NEWLINK {
        return false; // Gone already (ENODEV), or no answer.
    }
    let mut attrs = &answer[32..];
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return cut_short;
        }
        if kind == IFLA_LINK_NETNSID && len >= 8 {
            return i32::from_ne_bytes([attrs[4], attrs[5], attrs[6], attrs[7]]) >= 0;
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    cut_short
}

/// Sends the RTM_DELLINK request `removal` (see [`removal_request`]) when
/// the link's peer lives in a namespace something still holds (see
/// [`peer_lives`]): the pair would stay with it. Otherwise the namespace's
/// teardown removes the pair anyway, and a removal of our own would only
/// make the kernel do it in a batch of its own, holding RTNL, which the
/// next container's plumbing waits for. The lookup needs no RTNL.
///
/// # Safety
/// As [`send`]: async-signal-safe syscalls only, no allocation.
pub unsafe fn remove_if_peer_lives(removal: &[u8]) {
    let Some(lookup) = lookup_request(removal) else {
        return;
    };
    let mut answer = [0u8; 4096];
    // SAFETY: as `send`.
    let len = unsafe { exchange(&lookup, &mut answer) };
    let cut_short = len > answer.len();
    if peer_lives(&answer[..len.min(answer.len())], cut_short) {
        // SAFETY: as `send`.
        unsafe { send(removal) };
    }
}

/// Deletes link `name` from a forked child; returns once the child runs.
/// A link that is gone already is no error (the child's answer is not
/// read by anyone). Only for a process with one thread, or whose other
/// threads hold no lock the child could need: the child allocates nothing.
pub fn remove_link_detached(name: &str) -> io::Result<()> {
    if let Some(why) = ifname_problem(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: {why}"),
        ));
    }
    let msg = request(name);
    // SAFETY: fork; the child below uses only async-signal-safe syscalls
    // (close_range, socket, sendto, recv, _exit) on memory prepared before
    // the fork, and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        child(&msg);
    }
    Ok(())
}

/// The child: nothing inherited, the requests, their answer, exit.
fn child(msg: &[u8]) -> ! {
    // SAFETY: closes descriptors this child owns; `send` below makes only
    // raw syscalls on memory copied at the fork; _exit never returns.
    unsafe {
        libc::close_range(0, libc::c_uint::MAX, 0);
        send(msg);
        libc::_exit(0)
    }
}

/// Deletes link `name` and waits for the kernel's answer: for a process
/// nobody waits for (see `cni::forget`), which gives the link's address
/// back only once it is gone. A link that is gone already is no error.
pub fn remove_link_now(name: &str) -> io::Result<()> {
    if let Some(why) = ifname_problem(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?}: {why}"),
        ));
    }
    let mut answer = [0u8; 256];
    // SAFETY: raw syscalls on a socket `exchange` opens and closes itself,
    // on memory that outlives the call.
    let len = unsafe { exchange(&request(name), &mut answer) };
    match acknowledged(&answer[..len.min(answer.len())]) {
        Ok(()) => Ok(()),
        Err(err) if err.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        Err(err) => Err(err),
    }
}

/// The kernel's answer to a request sent with NLM_F_ACK: Ok for an
/// acknowledgement, the errno it carries otherwise (EIO when there is no
/// readable answer, as when the socket could not be made).
fn acknowledged(answer: &[u8]) -> io::Result<()> {
    const NLMSG_ERROR: u16 = 2;
    let Some(header) = answer.get(..20) else {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    };
    if u16::from_ne_bytes([header[4], header[5]]) != NLMSG_ERROR {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    match i32::from_ne_bytes([header[16], header[17], header[18], header[19]]) {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(-errno)),
    }
}

/// Sends `msg` to the kernel over a netlink route socket of its own and
/// waits for the answer, which it does not read. No allocation: a stack
/// buffer for the answer. A request the kernel refuses (a link gone
/// already) fails no syscall: its error is in the answer.
///
/// # Safety
/// Async-signal-safe syscalls only, so a forked child or a socket's
/// holder (see `nftables::AfterExit`) may call it.
unsafe fn send(msg: &[u8]) {
    let mut answer = [0u8; 256];
    // SAFETY: as this function's own contract.
    unsafe { exchange(msg, &mut answer) };
}

/// Sends the requests `msg` to the kernel over a netlink route socket of
/// its own and reads the answer to the last one into `answer` (an earlier
/// one's failure, the only answer it gets, is passed over); returns the
/// answer's whole length (more than `answer` holds when it was cut short),
/// 0 when none came.
///
/// # Safety
/// As [`send`].
unsafe fn exchange(msg: &[u8], answer: &mut [u8]) -> usize {
    // SAFETY: the socket is this function's; `msg`, `answer` and `kernel`
    // outlive the calls that use them.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return 0;
        }
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        let last = last_sequence(msg);
        let mut got = 0;
        if sent > 0 {
            // Each request is answered once at most: the loop ends.
            for _ in 0..requests(msg) {
                got = libc::recv(
                    fd,
                    answer.as_mut_ptr().cast(),
                    answer.len(),
                    libc::MSG_TRUNC,
                );
                if got < 16 || answer.get(8..12) == Some(&last.to_ne_bytes()[..]) {
                    break;
                }
            }
        }
        libc::close(fd);
        usize::try_from(got).unwrap_or(0)
    }
}

/// The sequence numbers of the requests in `msg`, in order. No
/// allocation.
fn headers(mut msg: &[u8]) -> impl Iterator<Item = u32> + '_ {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(msg.get(..4)?.try_into().ok()?) as usize;
        let seq = u32::from_ne_bytes(msg.get(8..12)?.try_into().ok()?);
        msg = msg.get(len.max(16)..)?;
        Some(seq)
    })
}

/// How many requests `msg` holds.
fn requests(msg: &[u8]) -> usize {
    headers(msg).count()
}

/// The sequence number of the last request in `msg`.
fn last_sequence(msg: &[u8]) -> u32 {
    headers(msg).last().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_link_and_is_padded_to_four_bytes() {
        let msg = request("sv-0123456789ab");
        assert_eq!(msg.len(), (32 + 20 + 8) + (32 + 20));
        assert_eq!(
            u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize,
            32 + 20 + 8
        );
        assert_eq!(&msg[36..51], b"sv-0123456789ab");
        assert_eq!(msg[51], 0);
        assert_eq!(requests(&msg), 2);
        assert_eq!(last_sequence(&msg), 2);
        assert!(remove_link_detached("a/b").is_err());
    }

    /// One request of a removal, as the kernel reads it.
    #[derive(Debug, PartialEq, Eq)]
    struct Request {
        kind: u16,
        flags: u16,
        seq: u32,
        index: u32,
        name: Option<String>,
        master: Option<u32>,
    }

    /// The requests of a removal, in order.
    fn decode(mut msg: &[u8]) -> Vec<Request> {
        let mut out = Vec::new();
        while msg.len() >= 32 {
            let len = u32::from_ne_bytes(msg[..4].try_into().unwrap()) as usize;
            let mut request = Request {
                kind: u16::from_ne_bytes([msg[4], msg[5]]),
                flags: u16::from_ne_bytes([msg[6], msg[7]]),
                seq: u32::from_ne_bytes(msg[8..12].try_into().unwrap()),
                index: u32::from_ne_bytes(msg[20..24].try_into().unwrap()),
                name: None,
                master: None,
            };
            let mut attrs = &msg[32..len];
            while attrs.len() >= 4 {
                let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
                let akind = u16::from_ne_bytes([attrs[2], attrs[3]]);
                let value = &attrs[4..alen];
                if akind == IFLA_IFNAME {
                    let text = value.split(|b| *b == 0).next().unwrap();
                    request.name = Some(String::from_utf8(text.to_vec()).unwrap());
                } else if akind == IFLA_MASTER {
                    request.master = Some(u32::from_ne_bytes(value.try_into().unwrap()));
                }
                attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
            }
            out.push(request);
            msg = &msg[len..];
        }
        out
    }

    /// The release and the deletion of the link `index` or `name`.
    fn release_then_delete(index: u32, name: Option<&str>) -> [Request; 2] {
        let name = name.map(str::to_string);
        [
            Request {
                kind: RTM_NEWLINK,
                flags: NLM_F_REQUEST,
                seq: 1,
                index,
                name: name.clone(),
                master: Some(0),
            },
            Request {
                kind: RTM_DELLINK,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                seq: 2,
                index,
                name,
                master: None,
            },
        ]
    }

    #[test]
    fn a_removal_takes_the_port_off_its_bridge_before_deleting_it() {
        assert_eq!(
            decode(&request("sv-0123456789ab")),
            release_then_delete(0, Some("sv-0123456789ab"))
        );
        assert_eq!(decode(&removal_request(7)), release_then_delete(7, None));
    }

    #[test]
    fn an_acknowledgement_is_ok_and_an_error_answer_its_errno() {
        let answer = |errno: i32| {
            let mut msg = vec![0u8; 36];
            msg[..4].copy_from_slice(&36u32.to_ne_bytes());
            msg[4..6].copy_from_slice(&2u16.to_ne_bytes());
            msg[16..20].copy_from_slice(&(-errno).to_ne_bytes());
            msg
        };
        assert!(acknowledged(&answer(0)).is_ok());
        let busy = acknowledged(&answer(libc::EBUSY)).unwrap_err();
        assert_eq!(busy.raw_os_error(), Some(libc::EBUSY));
        assert_eq!(
            acknowledged(&[]).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
    }

    /// An RTM_NEWLINK answer with IFLA_LINK_NETNSID `nsid` after another
    /// attribute, or without it.
    fn answer(nsid: Option<i32>) -> Vec<u8> {
        let mut msg = vec![0u8; 32];
        msg[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
        msg.extend_from_slice(&9u16.to_ne_bytes());
        msg.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        msg.extend_from_slice(b"sv-x\0\0\0\0");
        if let Some(nsid) = nsid {
            msg.extend_from_slice(&8u16.to_ne_bytes());
            msg.extend_from_slice(&IFLA_LINK_NETNSID.to_ne_bytes());
            msg.extend_from_slice(&nsid.to_ne_bytes());
        }
        msg
    }

    #[test]
    fn a_peer_lives_while_its_namespace_has_an_id() {
        assert!(peer_lives(&answer(Some(0)), false));
        assert!(peer_lives(&answer(Some(3)), false));
        assert!(!peer_lives(&answer(Some(-1)), false), "its namespace dying");
        assert!(!peer_lives(&answer(None), false), "in the same namespace");
        assert!(peer_lives(&answer(None), true), "cut short: deleted");
        let mut gone = answer(None);
        gone[4..6].copy_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        assert!(!peer_lives(&gone, false));
        assert!(!peer_lives(&[], false));
    }

    #[test]
    fn the_lookup_asks_for_the_index_the_removal_names() {
        let lookup = lookup_request(&removal_request(7)).expect("by index");
        assert_eq!(u16::from_ne_bytes([lookup[4], lookup[5]]), RTM_GETLINK);
        assert_eq!(&lookup[20..24], &7u32.to_ne_bytes());
        assert_eq!(lookup_request(&request("sv-x")), None);
    }

    #[test]
    fn the_request_by_index_names_the_index_and_nothing_else() {
        let msg = removal_request(0x0102_0304);
        assert_eq!(msg.len(), REMOVAL_BY_INDEX_LEN);
        assert_eq!(u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]), 40);
        let index = 0x0102_0304u32.to_ne_bytes();
        assert_eq!(&msg[20..24], &index);
        assert_eq!(u16::from_ne_bytes([msg[44], msg[45]]), RTM_DELLINK);
        assert_eq!(&msg[60..64], &index);
    }
}
