//! The netfilter netlink socket: sends a batch and checks every ack, and
//! reads back what little the firewall needs (does a table exist, which
//! elements does a set hold).

use std::ffi::{CStr, CString};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, sockopt,
};

use super::Family;
use super::batch::{self, Batch};
use super::expr::Verdict;
use super::nla::{self, NLMSG_DONE, NLMSG_ERROR};
use super::object::{ElemData, Element, SetRef, Udata};
use super::sys::{max_message_size, request};
use super::uapi::*;

/// Kernel memory one queued ack costs against the receive buffer (its skb's
/// truesize, rounded up), as nft budgets it.
const ACK_BUDGET: usize = 1024;

/// Why the kernel (or the way to it) failed us.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{what}")]
    Io { what: &'static str, source: Errno },
    #[error("{0}: too large for one netlink message")]
    TooLarge(String),
    /// The encoder refused an object: a name, value or message longer than
    /// the kernel takes. Nothing was sent.
    #[error("{what}: {reason}")]
    Encode { what: String, reason: String },
    #[error("{}", refusals_text(.0))]
    Refused(Vec<Refusal>),
    #[error(
        "the kernel acknowledged {got} of {expected} messages; the transaction's outcome is unknown"
    )]
    MissingAcks { got: usize, expected: usize },
}

fn refusals_text(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(Refusal::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One message the kernel refused. A refused batch changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The batch item refused (see [`Batch`]), or `None` when the kernel
    /// refused the transaction as a whole (at commit).
    pub item: Option<usize>,
    /// Whether the kernel named the item itself. Not so when it refused a
    /// message of many elements without saying which: `item` is then the
    /// first of them.
    pub exact: bool,
    /// What the item does to which object.
    pub what: String,
    pub errno: Errno,
    /// The kernel's extended error message, when it sent one.
    pub message: Option<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, errno_text(self.errno))?;
        if let Some(message) = &self.message {
            write!(f, " ({message})")?;
        }
        Ok(())
    }
}

/// The C library's text for an errno, as nft prints it ("Operation not
/// supported", where nix would say "... on transport endpoint").
fn errno_text(errno: Errno) -> String {
    let text = std::io::Error::from_raw_os_error(errno as i32).to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// A chain as listed by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    pub family: Family,
    pub table: String,
    pub name: String,
    /// The hook number (NF_INET_*; forward is 2) of a base chain.
    pub hook: Option<u32>,
    /// A base chain's policy: 0 drop, 1 accept.
    pub policy: Option<u32>,
}

/// A netfilter netlink socket, close-on-exec from birth.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    /// Sequence number of the last request (batches number their own).
    seq: std::cell::Cell<u32>,
    /// The send and receive buffer sizes known to be in place: a batch
    /// that fits them asks the kernel nothing (two getsockopt a batch).
    buffers: std::cell::Cell<(usize, usize)>,
}

fn io(what: &'static str) -> impl FnOnce(Errno) -> Error {
    move |source| Error::Io { what, source }
}

impl Socket {
    pub fn open() -> Result<Socket, Error> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(io("open a netfilter netlink socket"))?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(io("bind the netfilter netlink socket"))?;
        // Acks without a copy of our message, but with the kernel's error
        // text and the offset of the attribute it refused.
        set_netlink_option(&fd, NETLINK_CAP_ACK).map_err(io("enable capped acks"))?;
        set_netlink_option(&fd, NETLINK_EXT_ACK).map_err(io("enable extended acks"))?;
        Ok(Socket {
            fd,
            seq: std::cell::Cell::new(0),
            buffers: std::cell::Cell::new((0, 0)),
        })
    }

    /// Sends the batch as one transaction and checks that the kernel
    /// committed it (its end's ack, or every message's ack where the kernel
    /// acks no batch end). On refusal nothing of the batch is applied, and
    /// the error lists every refused item.
    pub fn send(&self, batch: Batch) -> Result<(), Error> {
        let batch = batch.finalize()?;
        let pages: Vec<&[u8]> = batch.batch.iter().collect();
        let total: usize = pages.iter().map(|p| p.len()).sum();
        let seqs = batch.batch.sequence_numbers();
        let expected = seqs.len();

        // The whole batch must go in one sendmsg, and every ack must fit the
        // receive queue, since the kernel answers before sendmsg returns.
        let (mut send, mut room) = self.buffers.get();
        if send < total + 4096 {
            send = grow_buffer(
                &self.fd,
                sockopt::SndBuf,
                sockopt::SndBufForce,
                total + 4096,
            )
            .map_err(io("size the netlink send buffer"))?;
        }
        if room < expected * ACK_BUDGET {
            room = grow_buffer(
                &self.fd,
                sockopt::RcvBuf,
                sockopt::RcvBufForce,
                expected * ACK_BUDGET,
            )
            .map_err(io("size the netlink receive buffer"))?;
        }
        self.buffers.set((send, room));

        let iov: Vec<IoSlice<'_>> = pages.iter().map(|p| IoSlice::new(p)).collect();
        socket::sendmsg(
            self.fd.as_raw_fd(),
            &iov,
            &[],
            MsgFlags::empty(),
            Some(&NetlinkAddr::new(0, 0)),
        )
        .map_err(io("send the nftables batch"))?;

        // With the batch's end acked (see `batch::ends_acked`), only the
        // begin and the end ask for an ack, and the end's, queued once the
        // transaction is committed, says all is done; a refused message is
        // answered whether or not it asked. Else every message's ack. Either
        // way the queue is read until it is empty (the kernel answers a
        // batch before sendmsg returns): when it replays a batch (a module
        // loaded on the way, a check failed at commit) it may skip the
        // begin's ack, or ack the end before naming a refused message, so
        // neither a count of acks nor the end's ack alone is the answer.
        let end = batch::ends_acked().then(|| seqs.end.wrapping_sub(1));
        let wanted = if end.is_some() { 2 } else { expected };
        let mut committed = false;
        let mut acked = 0;
        let mut refusals = Vec::new();
        let mut buf = Vec::with_capacity(max_message_size());
        loop {
            let n = match receive(&self.fd, &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                // The receive queue overflowed: some acks are gone.
                Err(Errno::ENOBUFS) => {
                    return Err(Error::MissingAcks {
                        got: acked,
                        expected: wanted,
                    });
                }
                Err(e) => {
                    return Err(Error::Io {
                        what: "receive nftables acks",
                        source: e,
                    });
                }
            };
            for (header, payload) in nla::messages(&buf[..n]) {
                if header.ty != NLMSG_ERROR || !seqs.contains(&header.seq) {
                    continue;
                }
                let Some(ack) = nla::ack(header, payload) else {
                    continue;
                };
                acked += 1;
                if ack.errno != 0 {
                    let found = batch.item_for(ack.seq, ack.offset);
                    let item = found.map(|(item, _)| item);
                    refusals.push(Refusal {
                        item,
                        exact: found.is_some_and(|(_, exact)| exact),
                        what: batch.describe(item),
                        errno: Errno::from_raw(ack.errno),
                        message: ack.message,
                    });
                } else if Some(ack.seq) == end {
                    committed = true;
                }
            }
        }
        if !refusals.is_empty() {
            return Err(Error::Refused(refusals));
        }
        let answered = match end {
            Some(_) => committed,
            None => acked >= wanted,
        };
        if !answered {
            return Err(Error::MissingAcks {
                got: acked,
                expected: wanted,
            });
        }
        Ok(())
    }

    /// Another descriptor of this socket, for ctnetlink requests: closing
    /// it releases nothing while this one is open.
    pub fn duplicate(&self) -> std::io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Closes the socket without waiting for the kernel.
    ///
    /// Releasing a netfilter socket makes nf_tables flush its deferred frees
    /// of deleted objects first: an RCU grace period, about 10 ms here, that
    /// would hold up the exit of a supervisor that just removed its
    /// elements. The kernel state is final once the batch is acked; only
    /// freeing memory is left. So a child process keeps the last reference
    /// until this process has exited, then closes it: the caller goes on at
    /// once.
    ///
    /// The flush holds the namespace's commit lock for that grace period,
    /// and after any recent commit there is always something to flush: a
    /// release stalls every other supervisor's batch meanwhile. Back to
    /// back, one release per container made that stall the limit (83
    /// containers/s). So the child closes on the next [`CLOSE_TICK`] of the
    /// monotonic clock, which every supervisor shares: the releases due
    /// within one tick happen together, and only the first waits for a
    /// grace period (the next ones find the work flushed).
    ///
    /// Before its wait for the tick (and its `AfterExit` work), the child
    /// waits for a grace period of its own (membarrier), holding nothing:
    /// its release then comes at least a grace period after our last
    /// commit, whose frees are done by then. A restart runs the next
    /// supervisor's batches within a few ms of our exit; a tick in that
    /// window found our unpublish's frees pending and held the next run's
    /// batches for them (4-26 ms, 17 restarts in 360). Under churn, others'
    /// commits keep the work busy and the first release of a tick still
    /// waits for it.
    ///
    /// The child shares our memory (CLONE_VM, on a small stack of its own)
    /// rather than a copy of it: a fork cost 0.15 ms of the teardown in
    /// copying page tables, then made every page this process wrote
    /// afterwards fault, and left this process's exit to unmap its whole
    /// address space, which the holder now does later, off the exit path.
    pub fn close_detached(self) {
        self.close_detached_with(Vec::new(), None);
    }

    /// As [`Socket::close_detached`], and the holder also keeps `also`
    /// (descriptors whose last close is slow: a mount namespace, a procfs
    /// instance) until this process has exited, then closes them at once,
    /// before its wait for the tick. The first [`HELD_ALSO`] only: any more
    /// are closed here.
    ///
    /// `after_exit`, when given, is the holder's first work once this
    /// process has exited (see [`AfterExit`]); done here, at once, when no
    /// holder can be made.
    pub fn close_detached_with(self, mut also: Vec<OwnedFd>, after_exit: Option<AfterExit>) {
        let extra = also.split_off(also.len().min(HELD_ALSO));
        drop(extra);
        // SAFETY: `run` is async-signal-safe (AfterExit's contract); in
        // place, it runs on this thread like any call.
        let in_place = |after_exit: Option<AfterExit>| {
            if let Some(AfterExit { run, data }) = after_exit {
                unsafe { run(&data) }
            }
        };
        let socket = self.fd.as_raw_fd();
        // The child learns of our exit through a pidfd of ours: it turns
        // readable as our parent is told of our exit, not before. EOF on a
        // pipe whose last write end we held came earlier, in our exit's
        // close of our descriptors: the holder, woken then, took the CPU
        // from our exit to close `also` (an unmount, then a wait for an
        // expedited grace period), and whoever waited for us waited for it
        // (30-40 us on a busy CPU, perf).
        let Some(exited) = pidfd_of_this_process() else {
            in_place(after_exit);
            return; // Plain close on drop.
        };
        // Never freed either: the holder reads it after we are gone.
        let (after_exit, after_exit_data) = match after_exit {
            Some(AfterExit { run, data }) => (Some(run), &*data.leak()),
            None => (None, &[][..]),
        };
        // Never freed: the holder runs on it after we are gone, and until
        // then nothing else may get it from the allocator. Its base holds
        // the descriptors; the holder's stack grows down from its top.
        let mut stack = std::mem::ManuallyDrop::new(Vec::<Held>::with_capacity(
            HOLDER_STACK / std::mem::size_of::<Held>(),
        ));
        stack.push(Held {
            socket,
            exited: exited.as_raw_fd(),
            grace_period: global_membarrier_available(),
            also: std::array::from_fn(|i| also.get(i).map_or(-1, AsRawFd::as_raw_fd)),
            after_exit,
            after_exit_data: after_exit_data.as_ptr(),
            after_exit_len: after_exit_data.len(),
        });
        let held = stack.as_mut_ptr();
        let top = held
            .cast::<u8>()
            .wrapping_add(stack.capacity() * std::mem::size_of::<Held>());
        let top = top.wrapping_sub(top as usize % 16);
        // Its first step closes its copies of our other descriptors, our
        // stdout and stderr among them, whose readers (a shell, `bench`, a
        // container engine reading a CNI result) wait for their EOF. Left
        // to the scheduler, a busy CPU ran that step milliseconds after our
        // exit as often as not; real-time until that step is done (it then
        // makes itself ordinary again), it runs at once. Without the
        // privilege, as it was. Born real-time when we are (`run`'s
        // teardown): setting its policy after the clone cost our exit path
        // 15 us more (a call on another CPU's task, traced).
        let real_time = crate::realtime::is_real_time();
        // SAFETY: clone runs `hold` in a new process sharing our memory, on
        // the stack above, which nothing else uses or frees. `hold` makes
        // only syscalls that cannot fail (see there) on the descriptors
        // written at the stack's base before the clone and never written
        // again: it never writes errno, which it would share with this
        // thread (no TLS of its own), nor any other memory of ours.
        let clone = || unsafe {
            libc::clone(
                hold,
                top.cast(),
                libc::CLONE_VM | libc::SIGCHLD,
                held.cast(),
            )
        };
        let pid = match real_time {
            true => crate::realtime::cloning_real_time(clone),
            false => clone(),
        };
        if pid < 0 {
            if let Some(run) = after_exit {
                // SAFETY: as in `in_place`, on the data leaked above.
                unsafe { run(after_exit_data) }
            }
            return; // Plain close on drop.
        }
        if !real_time {
            let param = libc::sched_param {
                sched_priority: HOLDER_START_PRIORITY,
            };
            // SAFETY: sched_setscheduler on our own child, with stack data.
            unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &param) };
        }
        // Ours is not the last reference now, and the holder has its own
        // copy of the pidfd.
        drop(self);
        drop(also);
        drop(exited);
    }

    /// Whether a table exists.
    pub fn table_exists(&self, family: Family, name: &CStr) -> Result<bool, Error> {
        let body = |m: &mut super::sys::Message<'_>| m.put_strz(NFTA_TABLE_NAME, name);
        match self.request(NFT_MSG_GETTABLE, family, 0, body, "ask for a table", |_| {}) {
            Ok(()) => Ok(true),
            Err(Error::Io {
                source: Errno::ENOENT,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every chain of every family, as the kernel holds them (one dump).
    pub fn chains(&self) -> Result<Vec<ChainInfo>, Error> {
        const NFPROTO_UNSPEC: u16 = 0;
        let mut chains = Vec::new();
        self.request(
            NFT_MSG_GETCHAIN,
            NFPROTO_UNSPEC,
            NLM_F_DUMP,
            |_| {},
            "list chains",
            |payload| {
                let Some(family) = payload.first().copied().and_then(Family::from_nfproto) else {
                    return;
                };
                let attrs = payload.get(4..).unwrap_or(&[]);
                let text = |ty| {
                    nla::attr(attrs, ty)
                        .map(|v| String::from_utf8_lossy(nla::strz(v)).into_owned())
                        .unwrap_or_default()
                };
                chains.push(ChainInfo {
                    family,
                    table: text(NFTA_CHAIN_TABLE),
                    name: text(NFTA_CHAIN_NAME),
                    hook: nla::attr(attrs, NFTA_CHAIN_HOOK)
                        .and_then(|hook| nla::attr(hook, NFTA_HOOK_HOOKNUM))
                        .and_then(nla::be32),
                    policy: nla::attr(attrs, NFTA_CHAIN_POLICY).and_then(nla::be32),
                });
            },
        )?;
        Ok(chains)
    }

    /// The elements of a set or map, as the kernel holds them (interval sets
    /// list their end elements too, flagged `ELEM_INTERVAL_END`).
    pub fn elements(&self, set: &SetRef) -> Result<Vec<Element>, Error> {
        let body = |m: &mut super::sys::Message<'_>| {
            m.put_strz(NFTA_SET_ELEM_LIST_TABLE, &set.table);
            m.put_strz(NFTA_SET_ELEM_LIST_SET, &set.name);
        };
        let mut elements = Vec::new();
        self.request(
            NFT_MSG_GETSETELEM,
            set.family,
            NLM_F_DUMP,
            body,
            "list set elements",
            |payload| {
                // Skip the nfgenmsg header.
                let attrs = payload.get(4..).unwrap_or(&[]);
                if let Some(list) = nla::attr(attrs, NFTA_SET_ELEM_LIST_ELEMENTS) {
                    elements.extend(nla::attrs(list).map(|(_, elem)| parse_element(elem)));
                }
            },
        )?;
        Ok(elements)
    }

    /// How many of `elements` (by key), in order, `set` holds before the
    /// first it lacks; all of them when it lacks none. Asks for these keys
    /// alone (NFT_MSG_GETSETELEM without NLM_F_DUMP, one request), not for
    /// every element of the set: the kernel answers each it finds in
    /// order and stops at the first it does not (ENOENT), as it does when
    /// the set itself is missing.
    pub fn held_prefix(&self, set: &SetRef, elements: &[Element]) -> Result<usize, Error> {
        if elements.is_empty() {
            return Ok(0);
        }
        let body = |m: &mut super::sys::Message<'_>| {
            m.put_strz(NFTA_SET_ELEM_LIST_TABLE, &set.table);
            m.put_strz(NFTA_SET_ELEM_LIST_SET, &set.name);
            let list = m.nest_start(NFTA_SET_ELEM_LIST_ELEMENTS);
            for (i, element) in elements.iter().enumerate() {
                let nest = m.nest_start((i + 1) as u16);
                element.write(m);
                m.nest_end(nest);
            }
            m.nest_end(list);
        };
        let mut found = 0;
        let asked = self.request(
            NFT_MSG_GETSETELEM,
            set.family,
            0,
            body,
            "look up set elements",
            |_| found += 1,
        );
        match asked {
            Ok(()) => Ok(elements.len()),
            Err(Error::Io {
                source: Errno::ENOENT,
                ..
            }) => Ok(found),
            Err(e) => Err(e),
        }
    }

    /// Sends one request and feeds every data message of the answer to
    /// `each`, until the dump ends or the ack arrives.
    fn request(
        &self,
        ty: u16,
        family: impl Into<u16>,
        flags: u16,
        body: impl Fn(&mut super::sys::Message<'_>),
        what: &'static str,
        mut each: impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let req = request(ty, family.into(), flags | NLM_F_ACK, seq, body).map_err(|reason| {
            Error::Encode {
                what: what.to_string(),
                reason,
            }
        })?;
        socket::send(self.fd.as_raw_fd(), &req, MsgFlags::empty()).map_err(io(what))?;
        let mut buf = Vec::with_capacity(max_message_size());
        loop {
            let n = match receive(&self.fd, &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::Io { what, source: e }),
            };
            for (header, payload) in nla::messages(&buf[..n]) {
                if header.seq != seq {
                    continue;
                }
                match header.ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno = nla::ack(header, payload).map_or(libc::EPROTO, |a| a.errno);
                        if errno == 0 {
                            return Ok(());
                        }
                        return Err(Error::Io {
                            what,
                            source: Errno::from_raw(errno),
                        });
                    }
                    _ => each(payload),
                }
            }
        }
    }
}

fn parse_element(attrs: &[u8]) -> Element {
    let value = |ty| {
        nla::attr(attrs, ty)
            .and_then(|nest| nla::attr(nest, NFTA_DATA_VALUE))
            .map(<[u8]>::to_vec)
    };
    let mut element = Element::new(value(NFTA_SET_ELEM_KEY).unwrap_or_default());
    element.key_end = value(NFTA_SET_ELEM_KEY_END);
    element.flags = nla::attr(attrs, NFTA_SET_ELEM_FLAGS)
        .and_then(nla::be32)
        .unwrap_or(0);
    element.timeout_ms = nla::attr(attrs, NFTA_SET_ELEM_TIMEOUT).and_then(nla::be64);
    element.udata =
        nla::attr(attrs, NFTA_SET_ELEM_USERDATA).map(|raw| Udata::from_raw(raw.to_vec()));
    if let Some(data) = nla::attr(attrs, NFTA_SET_ELEM_DATA) {
        element.data = if let Some(value) = nla::attr(data, NFTA_DATA_VALUE) {
            Some(ElemData::Value(value.to_vec()))
        } else {
            nla::attr(data, NFTA_DATA_VERDICT)
                .and_then(parse_verdict)
                .map(ElemData::Verdict)
        };
    }
    element
}

fn parse_verdict(attrs: &[u8]) -> Option<Verdict> {
    let code = nla::attr(attrs, NFTA_VERDICT_CODE).and_then(nla::be32)? as i32;
    let chain = || {
        let name = nla::attr(attrs, NFTA_VERDICT_CHAIN)
            .map(nla::strz)
            .unwrap_or_default();
        CString::new(name).ok()
    };
    Some(match code {
        1 => Verdict::Accept,
        0 => Verdict::Drop,
        -1 => Verdict::Continue,
        -3 => Verdict::Jump(chain()?),
        -4 => Verdict::Goto(chain()?),
        -5 => Verdict::Return,
        _ => return None,
    })
}

/// Raises a socket buffer to at least `want` bytes: the forced variant
/// (CAP_NET_ADMIN) can pass the system limit, the plain one cannot.
/// Returns the size now in place.
fn grow_buffer<Get, Force>(
    fd: &OwnedFd,
    plain: Get,
    force: Force,
    want: usize,
) -> nix::Result<usize>
where
    Get: socket::GetSockOpt<Val = usize> + socket::SetSockOpt<Val = usize> + Copy,
    Force: socket::SetSockOpt<Val = usize>,
{
    // The kernel reports (and accounts) twice what was set.
    let size = socket::getsockopt(fd, plain)? / 2;
    if size >= want {
        return Ok(size);
    }
    socket::setsockopt(fd, force, &want).or_else(|_| socket::setsockopt(fd, plain, &want))?;
    // The plain variant caps it at the system limit without failing.
    Ok(socket::getsockopt(fd, plain)? / 2)
}

/// Receives one datagram into `buf`'s room (its capacity, which must hold
/// the largest, `max_message_size`), and returns its length, which is
/// `buf`'s too from then on. The room is not written before: zeroed, each
/// of its 17 pages was a page fault of its own on a start's path (the base
/// ruleset's query and the publish batch's acks), where an ack fills part
/// of one.
fn receive(fd: &OwnedFd, buf: &mut Vec<u8>, flags: MsgFlags) -> nix::Result<usize> {
    buf.clear();
    let room = buf.spare_capacity_mut();
    // SAFETY: recv writes at most `room.len()` bytes, into memory `buf`
    // owns, and returns how many; only those become `buf`'s contents.
    unsafe {
        let n = libc::recv(
            fd.as_raw_fd(),
            room.as_mut_ptr().cast(),
            room.len(),
            flags.bits(),
        );
        let n = Errno::result(n)? as usize;
        buf.set_len(n);
        Ok(n)
    }
}

/// Turns on an integer SOL_NETLINK option.
fn set_netlink_option(fd: &OwnedFd, option: i32) -> nix::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the fd is a live socket we own; the option value points to an
    // int that outlives the call, with its exact size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            SOL_NETLINK,
            option,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Errno::result(ret).map(drop)
}

/// How far apart detached sockets are released (see `close_detached`): a
/// holder lives at most this long and a grace period after its
/// supervisor, and the releases of one tick cost the others' batches one
/// grace period in all.
///
/// Every link made or deleted in the namespace takes the same commit lock
/// (nf_tables' netdev notifier), with RTNL held: a tick's flush stalls
/// every veth's creation and removal behind it, and through RTNL every
/// other link request. A flush takes 10-27 ms under churn: at 100 ms, a
/// back to back CNI run's ADDs waited for one 115 ms in all over 100 ADDs
/// (perf sched: the veth's `nf_tables_netdev_event`), about one in ten;
/// at a second, none of 100. The price: holders live longer, each keeping
/// its process's memory until then (of its own, about 0.4 MB for a CNI
/// plugin's, 1.3 MB for `run`'s): a second's worth of exits at once.
pub const CLOSE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// The holder's stack (see `close_detached`): a few small frames.
const HOLDER_STACK: usize = 16 * 1024;

/// The real-time priority a holder starts at (see `close_detached_with`):
/// the lowest, which runs before every ordinary task.
const HOLDER_START_PRIORITY: libc::c_int = 1;

/// Work for a socket's holder once this process has exited (see
/// `Socket::close_detached_with`): `run(&data)`, first thing once a grace
/// period has passed since our exit. For what must follow our exit closely
/// but would slow it down: a link's removal waits for RCU grace periods.
///
/// The grace period first, because packets still cross a container's pair
/// after its supervisor's exit: a SYN forwarded to it before its ports
/// went is answered with a reset, and a reset that was mid-way through the
/// bridge's netfilter hooks, its CPU stalled there for 4.7 ms, was freed
/// when it came out (kfree_skb in br_nf_pre_routing_finish: its input port
/// was no longer found by its index), the pair deleted by this work
/// meanwhile, 1.5 ms after the reset was sent: the client heard nothing
/// (once in about 2,000 stops of tests/churn.rs's stopping container,
/// loaded, traced). A packet's pass through the receive path is one RCU
/// read-side section, which the grace period waits for (a packet queued on
/// a CPU's backlog between two passes is not waited for); the kernel's own
/// removal of a namespace nobody holds waits for one too.
///
/// Not later, at the holder's tick: a lingering pair deleted then fell
/// into a later restart's plumbing, and
/// 4 of 16 runs of tests/churn.rs had a restart go dark for a second (3
/// of 16 with the pair set down first thing and deleted at the tick),
/// against none of 14 with main's supervisor and none of 14 with the
/// removal done first thing. (The pair's timing only made it likelier:
/// the dark second was the new container's first ARP request dropped by
/// its anti-spoofing guard, see `netlink::plumb`'s `inside`.)
pub struct AfterExit {
    /// Runs in the holder, which shares our memory but neither our stack
    /// nor our thread-local storage: only async-signal-safe calls, no
    /// allocation, no lock. A failing call writes errno, which is then our
    /// main thread's (the holder's creator, on the current-thread
    /// runtime), gone by then: its memory stays the holder's.
    pub run: unsafe fn(&[u8]),
    pub data: Vec<u8>,
}

/// How many slow-closing descriptors a holder keeps besides its socket.
const HELD_ALSO: usize = 2;

/// The descriptors a holder keeps (see `close_detached_with`); -1 in `also`
/// where there is none.
#[repr(C)]
struct Held {
    socket: libc::c_int,
    exited: libc::c_int,
    /// Whether membarrier(MEMBARRIER_CMD_GLOBAL) works here (asked before
    /// the clone, so that the holder's call cannot fail).
    grace_period: bool,
    also: [libc::c_int; HELD_ALSO],
    /// [`AfterExit`]'s, its data never freed.
    after_exit: Option<unsafe fn(&[u8])>,
    after_exit_data: *const u8,
    after_exit_len: usize,
}

/// The holder of a detached socket: closes every other descriptor it got
/// a copy of and makes itself an ordinary task again (see
/// `close_detached_with`), waits for our pidfd to turn readable (our
/// exit) and for a grace period, does its [`AfterExit`] work, closes
/// `also`, waits for the next tick, closes the socket and exits. Its own
/// syscalls cannot fail (the AfterExit work's may, after our exit: see
/// there): the ranges
/// closed hold descriptors or nothing, any task may make itself
/// SCHED_OTHER, poll on one open pidfd only ends (no handler of ours runs
/// for a signal that could interrupt it: the supervisor blocks those it
/// handles), membarrier's command was checked before the clone (it only
/// waits), clock_nanosleep returns its error rather than setting errno,
/// and the descriptors are open.
extern "C" fn hold(held: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `held` points to the Held written before the clone and never
    // written again (see close_detached_with).
    let held = unsafe { &*held.cast::<Held>() };
    // Sorted by hand: a sorting network of five compare-and-swaps, no
    // library code to trust.
    let mut kept = [held.socket, held.exited, held.also[0], held.also[1]];
    for (i, j) in [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)] {
        if kept[i] > kept[j] {
            kept.swap(i, j);
        }
    }
    // SAFETY: close_range, poll, close and _exit on our own descriptors and
    // stack; see close_detached_with for why the shared memory is safe.
    unsafe {
        let mut from: libc::c_int = 0;
        for &fd in kept.iter().filter(|&&fd| fd >= 0) {
            if fd > from {
                libc::close_range(from as libc::c_uint, (fd - 1) as libc::c_uint, 0);
            }
            from = fd + 1;
        }
        libc::close_range(from as libc::c_uint, libc::c_uint::MAX, 0);
        let ordinary = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &ordinary);
        let mut exited = libc::pollfd {
            fd: held.exited,
            events: libc::POLLIN,
            revents: 0,
        };
        libc::poll(&mut exited, 1, -1);
        // Again, in case our parent made us real-time only after the first.
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &ordinary);
        // Before the work: see AfterExit.
        wait_for_a_grace_period(held.grace_period);
        if let Some(run) = held.after_exit {
            run(std::slice::from_raw_parts(
                held.after_exit_data,
                held.after_exit_len,
            ));
        }
        for &fd in held.also.iter().filter(|&&fd| fd >= 0) {
            libc::close(fd);
        }
        sleep_until_close_tick();
        libc::close(held.socket);
        libc::_exit(0)
    }
}

/// Closes `sockets` (netfilter sockets whose last reference this process
/// may hold) as a holder closes its own (see `Socket::close_detached`):
/// after a grace period of our own, on the next [`CLOSE_TICK`]. For a
/// process with nothing else left to do: it waits until then. Closed at
/// the end of a piece of work instead, each release fell at its own time,
/// holding the commit lock for a grace period of its own.
pub fn release_on_tick(sockets: Vec<OwnedFd>) {
    if sockets.is_empty() {
        return;
    }
    wait_to_release(global_membarrier_available());
    drop(sockets);
}

/// A holder's wait before its release: a grace period of its own, then
/// the next tick. Async-signal-safe, allocation-free.
fn wait_to_release(grace_period: bool) {
    wait_for_a_grace_period(grace_period);
    sleep_until_close_tick();
}

/// An RCU grace period of our own, when `grace_period` (membarrier's
/// command was checked, so the call only waits). Async-signal-safe,
/// allocation-free.
fn wait_for_a_grace_period(grace_period: bool) {
    if grace_period {
        // SAFETY: membarrier takes no pointers; its command was checked.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    }
}

/// membarrier's commands (linux/membarrier.h; libc has no constants).
const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;

/// Whether membarrier(MEMBARRIER_CMD_GLOBAL), a wait for an RCU grace
/// period on a machine with more than one CPU, is available: the query
/// leaves it out where it would fail (nohz_full, or no membarrier).
fn global_membarrier_available() -> bool {
    // SAFETY: membarrier's query takes no pointers.
    let commands = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) };
    commands > 0 && commands & libc::c_long::from(MEMBARRIER_CMD_GLOBAL) != 0
}

/// A pidfd of this process (always close-on-exec); None when the kernel
/// has none (before 5.3).
fn pidfd_of_this_process() -> Option<OwnedFd> {
    // SAFETY: pidfd_open of our own pid, flags 0; it returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    let fd = libc::c_int::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just gave us this fd; nobody else owns it.
    Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Sleeps until the next multiple of [`CLOSE_TICK`] on CLOCK_MONOTONIC.
/// Only async-signal-safe calls on the stack, none setting errno: it runs
/// in the holder.
fn sleep_until_close_tick() {
    const NANOS: i64 = 1_000_000_000;
    let tick = CLOSE_TICK.as_nanos() as i64;
    // SAFETY: clock_gettime and clock_nanosleep on stack timespecs.
    unsafe {
        let mut now: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) != 0 {
            return;
        }
        let at = (now.tv_sec as i64 * NANOS + now.tv_nsec as i64) / tick * tick + tick;
        let until = libc::timespec {
            tv_sec: (at / NANOS) as libc::time_t,
            tv_nsec: (at % NANOS) as libc::c_long,
        };
        while libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &until,
            std::ptr::null_mut(),
        ) == libc::EINTR
        {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One attribute: length, type, payload, padding.
    fn attribute(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(out.len().div_ceil(4) * 4, 0);
        out
    }

    #[test]
    fn a_dumped_elements_key_end_is_read_from_the_kernels_attribute() {
        // As the kernel dumped `"cni9" . 10.99.0.0/16` (6.18): the key end
        // is attribute 10 (NFTA_SET_ELEM_OBJREF is 9), nested, as the key.
        const NESTED: u16 = 0x8000;
        let key = attribute(NFTA_DATA_VALUE, &[10, 99, 0, 0]);
        let end = attribute(NFTA_DATA_VALUE, &[10, 99, 255, 255]);
        let mut attrs = attribute(NFTA_SET_ELEM_KEY | NESTED, &key);
        attrs.extend(attribute(10 | NESTED, &end));
        let element = parse_element(&attrs);
        assert_eq!(element.key, [10, 99, 0, 0]);
        assert_eq!(element.key_end.as_deref(), Some(&[10, 99, 255, 255][..]));
    }

    /// The calling thread's minor page faults so far.
    fn page_faults() -> libc::c_long {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the rusage it is given.
        let usage = unsafe {
            libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
            usage.assume_init()
        };
        usage.ru_minflt
    }

    #[test]
    fn a_receive_touches_only_the_pages_it_fills() {
        let (ours, theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        socket::send(theirs.as_raw_fd(), b"ack", MsgFlags::empty()).expect("send");
        // Past malloc's mmap threshold, so its pages are fresh, and too
        // small for a huge page: each page touched is a fault.
        let mut buf = Vec::with_capacity(1 << 20);
        let before = page_faults();
        let n = receive(&ours, &mut buf, MsgFlags::empty()).expect("receive");
        let faults = page_faults() - before;
        assert_eq!((n, &buf[..]), (3, &b"ack"[..]));
        assert!(faults <= 4, "{faults} page faults for a 3-byte datagram");
    }
}
