//! Reads answered on the spot over a plain, blocking rtnetlink socket: the
//! bridge check every `run` makes. Through rtnetlink's connection task each
//! request costs a turn of the runtime (the task sends one request per poll,
//! then waits for epoll to wake it), and on the supervisor's single-threaded
//! runtime those turns queue behind clone3: they cost more than the
//! kernel's work, a few microseconds for a lookup or a small dump.
//!
//! The socket asks for strict checking (NETLINK_GET_STRICT_CHK): the kernel
//! then honours the filters in a dump request's header (an address dump of
//! one interface rather than of all of them) and refuses a malformed
//! request instead of ignoring what it does not understand; every field a
//! request does not mean to filter on must be zero.
//!
//! Changes go the same way ([`Direct::pipeline`]): the kernel carries out
//! a netlink request inside the `sendmsg` that brings it, whatever the
//! socket's mode, so an async socket saves nothing there, and the plumbing
//! of a container sends its requests in one message and reads their acks.

use std::io;
use std::os::fd::AsRawFd;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkBuffer,
    NetlinkHeader, NetlinkMessage, NetlinkPayload, Parseable,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

/// How a change request treats what is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Changes an object that exists (a link's flags or port settings).
    Modify,
    /// Creates the object; one already there is an error (EEXIST).
    Create,
    /// Creates the object, or replaces the one already there.
    Replace,
}

impl Change {
    fn flags(self) -> u16 {
        NLM_F_REQUEST
            | NLM_F_ACK
            | match self {
                Change::Modify => 0,
                Change::Create => NLM_F_CREATE | NLM_F_EXCL,
                Change::Replace => NLM_F_CREATE | NLM_F_REPLACE,
            }
    }
}

/// Whether a request's answers run until DONE. NLM_F_DUMP is two bits
/// (ROOT | MATCH), which a change's REPLACE and EXCL share: a dump has both.
fn is_dump(flags: u16) -> bool {
    flags & NLM_F_DUMP == NLM_F_DUMP
}

/// One request of a [`Direct::pipeline`]: a change, acknowledged, or a
/// lookup (`Change` None), answered with one message.
pub(crate) type Request = (RouteNetlinkMessage, Option<Change>);

/// A netlink socket in the calling thread's network namespace, asking the
/// kernel one thing at a time.
pub(crate) struct Direct {
    socket: Socket,
    seq: u32,
    /// Room for one datagram (a dump's parts are at most 32 KiB), kept
    /// between answers and never zeroed: `recv` writes into its spare
    /// capacity.
    buf: Vec<u8>,
    /// Once the socket has joined a multicast group ([`Direct::join`]),
    /// the notifications that came among the answers to requests, for
    /// [`Direct::await_notification`]: the kernel queues a notification
    /// when it happens, which may be before an answer it wrote later.
    notifications: Option<Vec<RouteNetlinkMessage>>,
    /// Whether link answers are decoded for `link::Link` alone (see
    /// `link::brief_message`): what every caller reads of them.
    brief_links: bool,
}

impl Direct {
    /// The socket, for a socket option.
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.socket.as_fd()
    }

    pub(crate) fn open() -> io::Result<Direct> {
        let socket = Socket::new(NETLINK_ROUTE)?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Kernels before 4.20 lack it and dump every link's addresses:
        // callers keep filtering what they read, so it is only slower.
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(Direct {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
            notifications: None,
            brief_links: true,
        })
    }

    /// Decodes link answers whole, for a test that reads what else the
    /// kernel sent.
    #[cfg(test)]
    pub(crate) fn with_whole_links(mut self) -> Direct {
        self.brief_links = false;
        self
    }

    /// Sends every request in one message, in order, and returns each
    /// one's outcome in the same order: the answer of a lookup (None when
    /// the kernel found nothing to answer with), nothing for a change. The
    /// kernel carries out every request whatever the outcome of the ones
    /// before it, so a request that needs an earlier one to have succeeded
    /// fails too when that one did; the caller reports the first failure.
    pub(crate) fn pipeline(
        &mut self,
        requests: Vec<Request>,
    ) -> io::Result<Vec<io::Result<Option<RouteNetlinkMessage>>>> {
        let outcomes = self.exchange(
            requests
                .into_iter()
                .map(|(message, change)| (message, change.map_or(NLM_F_REQUEST, Change::flags))),
        )?;
        // A lookup's answer is one message; a change's, none.
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.map(|answers| answers.into_iter().next()))
            .collect())
    }

    /// Sends every message, with its flags, in one datagram, and reads
    /// until each has its outcome: its answers (of a dump, every one
    /// until DONE) or the kernel's error, in the order sent.
    fn exchange(
        &mut self,
        requests: impl ExactSizeIterator<Item = (RouteNetlinkMessage, u16)>,
    ) -> io::Result<Vec<io::Result<Vec<RouteNetlinkMessage>>>> {
        let first = self.seq + 1;
        let mut dumps = Vec::with_capacity(requests.len());
        self.send_all(requests.map(|(message, flags)| {
            dumps.push(is_dump(flags));
            (message, flags)
        }))?;
        let mut answers: Vec<Vec<RouteNetlinkMessage>> = dumps.iter().map(|_| Vec::new()).collect();
        let mut outcomes: Vec<Option<io::Result<()>>> = dumps.iter().map(|_| None).collect();
        let mut pending = dumps.len();
        let mut notifications = self.notifications.take();
        let received = self.receive(|msg| {
            if msg.header.sequence_number == 0
                && let Some(kept) = notifications.as_mut()
                && let NetlinkPayload::InnerMessage(inner) = msg.payload
            {
                kept.push(inner);
                return false;
            }
            // Anything else is a stale answer to an earlier request, cut
            // short by an error.
            let Some(i) = msg
                .header
                .sequence_number
                .checked_sub(first)
                .map(|i| i as usize)
                .filter(|&i| outcomes.get(i).is_some_and(Option::is_none))
            else {
                return false;
            };
            let outcome = match msg.payload {
                NetlinkPayload::Done(_) => Some(Ok(())),
                NetlinkPayload::Error(err) => Some(match err.code {
                    None => Ok(()),
                    Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                }),
                NetlinkPayload::InnerMessage(inner) => {
                    answers[i].push(inner);
                    (!dumps[i]).then_some(Ok(()))
                }
                _ => None,
            };
            if outcome.is_some() {
                outcomes[i] = outcome;
                pending -= 1;
            }
            pending == 0
        });
        self.notifications = notifications;
        received?;
        Ok(outcomes
            .into_iter()
            .zip(answers)
            .map(|(outcome, answers)| outcome.unwrap_or(Ok(())).map(|()| answers))
            .collect())
    }

    /// Sends every message, with its flags and the next sequence numbers,
    /// in one datagram.
    fn send_all(
        &mut self,
        messages: impl Iterator<Item = (RouteNetlinkMessage, u16)>,
    ) -> io::Result<()> {
        let mut out = Vec::new();
        for (message, flags) in messages {
            self.seq += 1;
            let mut request = NetlinkMessage::from(message);
            request.header.flags = flags;
            request.header.sequence_number = self.seq;
            request.finalize();
            let start = out.len();
            out.resize(start + request.buffer_len(), 0);
            request.serialize(&mut out[start..]);
        }
        self.socket.send(&out, 0)?;
        Ok(())
    }

    /// Has the kernel send this socket its notifications of multicast
    /// group `group` (an RTNLGRP_*) from now on, besides the answers, for
    /// [`Direct::await_notification`].
    pub(crate) fn join(&mut self, group: u32) -> io::Result<()> {
        self.socket.add_membership(group)?;
        self.notifications.get_or_insert_default();
        Ok(())
    }

    /// Reads notifications until `wanted` accepts one; false when none
    /// did within `timeout`.
    pub(crate) fn await_notification(
        &mut self,
        timeout: std::time::Duration,
        mut wanted: impl FnMut(&RouteNetlinkMessage) -> bool,
    ) -> io::Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        if let Some(kept) = self.notifications.as_mut()
            && let Some(i) = kept.iter().position(&mut wanted)
        {
            kept.drain(..=i);
            return Ok(true);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let millis = u16::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
            let mut found = false;
            self.receive_one(|msg| {
                if let NetlinkPayload::InnerMessage(inner) = &msg.payload {
                    found = wanted(inner);
                }
                found
            })?;
            if found {
                return Ok(true);
            }
        }
    }

    /// Reads messages and hands each to `take` until it says it has had
    /// enough.
    fn receive(
        &mut self,
        mut take: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> bool,
    ) -> io::Result<()> {
        while !self.receive_one(&mut take)? {}
        Ok(())
    }

    /// Reads one datagram and hands its messages to `take` until it says it
    /// has had enough; whether it did.
    fn receive_one(
        &mut self,
        mut take: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> bool,
    ) -> io::Result<bool> {
        self.buf.clear();
        self.socket.recv(&mut self.buf, 0)?;
        let n = self.buf.len();
        let mut offset = 0;
        while offset < n {
            let bytes = &self.buf[offset..n];
            let buffer = NetlinkBuffer::new_checked(bytes).map_err(invalid)?;
            let len = buffer.length() as usize;
            let msg = if self.brief_links && buffer.message_type() == super::link::RTM_NEWLINK {
                brief_link(&bytes[..len])?
            } else {
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len])
                    .map_err(invalid)?
            };
            if take(msg) {
                return Ok(true);
            }
            if len == 0 {
                break;
            }
            offset += (len + 3) & !3;
        }
        Ok(false)
    }

    /// The index of link `name` in the socket's namespace (SIOCGIFINDEX:
    /// a lookup under RCU, without RTNL or a message to build).
    pub(crate) fn index_of(&self, name: &str) -> io::Result<u32> {
        let req = ask_device(&self.socket, libc::SIOCGIFINDEX, name)?;
        // SAFETY: SIOCGIFINDEX filled the union's index.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
    }

    /// The name of link `index` in the socket's namespace (SIOCGIFNAME,
    /// as [`Direct::index_of`]).
    pub(crate) fn name_of(&self, index: u32) -> io::Result<String> {
        // SAFETY: ifreq is plain data, valid zeroed.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_ifru.ifru_ifindex = index as libc::c_int;
        // SAFETY: the socket is open for the call and `req` a valid ifreq
        // holding the index, which the kernel answers with the name
        // (NUL-terminated, within ifr_name), as in ask_device.
        let ret = unsafe { libc::ioctl(self.socket.as_raw_fd(), libc::SIOCGIFNAME, &mut req) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        let name: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(name).map_err(invalid)
    }

    /// The hardware address of link `name` in the calling thread's
    /// namespace (SIOCGIFHWADDR, as [`Direct::index_of`]: no RTNL, no
    /// message, no connection), on a socket of its own.
    pub(crate) fn hardware_address_of(name: &str) -> io::Result<Vec<u8>> {
        let socket = Socket::new(NETLINK_ROUTE)?;
        let req = ask_device(&socket, libc::SIOCGIFHWADDR, name)?;
        // SAFETY: SIOCGIFHWADDR filled the union's address.
        let address = unsafe { req.ifr_ifru.ifru_hwaddr };
        Ok(address.sa_data[..6].iter().map(|&b| b as u8).collect())
    }

    /// Sends `message` and collects every answer to it: one for a request,
    /// all of them until DONE with `dump`.
    pub(crate) fn ask(
        &mut self,
        message: RouteNetlinkMessage,
        dump: bool,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let [answers] = self.ask_all([(message, dump)])?;
        answers
    }

    /// [`Direct::ask`] for several requests in one message, one round trip:
    /// each one's answers, in order. Only the last may be a dump: a dump
    /// whose answer takes more than one datagram is still running when the
    /// next request is read, and the kernel refuses a dump behind it
    /// (EBUSY).
    pub(crate) fn ask_all<const N: usize>(
        &mut self,
        requests: [(RouteNetlinkMessage, bool); N],
    ) -> io::Result<[io::Result<Vec<RouteNetlinkMessage>>; N]> {
        let mut outcomes = self
            .exchange(requests.into_iter().map(|(message, dump)| {
                (message, NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 })
            }))?
            .into_iter();
        // `exchange` gives one outcome a request.
        Ok(std::array::from_fn(|_| {
            outcomes.next().unwrap_or(Ok(Vec::new()))
        }))
    }
}

/// Device ioctl `request` about link `name`: the ifreq the kernel filled.
fn ask_device(socket: &Socket, request: libc::c_ulong, name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain data, valid zeroed.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() || name.as_bytes().contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: the socket is open for the call and `req` is a valid,
    // NUL-terminated ifreq the kernel writes its answer into. A netlink
    // socket has no ioctls of its own: the kernel hands the request to the
    // device layer of the socket's namespace.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), request, &mut req) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

/// A link answer decoded for `link::Link` alone (see
/// `link::brief_message`).
fn brief_link(bytes: &[u8]) -> io::Result<NetlinkMessage<RouteNetlinkMessage>> {
    let buffer = NetlinkBuffer::new_checked(bytes).map_err(invalid)?;
    let header = NetlinkHeader::parse(&buffer).map_err(invalid)?;
    let link = super::link::brief_message(buffer.payload()).map_err(invalid)?;
    Ok(NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)),
    ))
}

fn invalid(err: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_that_creates_or_replaces_is_not_a_dump() {
        assert!(!is_dump(Change::Create.flags()));
        assert!(!is_dump(Change::Replace.flags()));
        assert!(!is_dump(Change::Modify.flags()));
    }

    #[test]
    fn a_lookup_with_dump_is_a_dump() {
        assert!(is_dump(NLM_F_REQUEST | NLM_F_DUMP));
        assert!(!is_dump(NLM_F_REQUEST));
    }
}
