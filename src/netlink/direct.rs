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

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

/// A netlink socket in the calling thread's network namespace, asking the
/// kernel one thing at a time.
pub(crate) struct Direct {
    socket: Socket,
    seq: u32,
    /// Room for one datagram (a dump's parts are at most 32 KiB), kept
    /// between answers and never zeroed: `recv` writes into its spare
    /// capacity.
    buf: Vec<u8>,
}

impl Direct {
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
        })
    }

    /// Sends `message` and collects every answer to it: one for a request,
    /// all of them until DONE with `dump`.
    pub(crate) fn ask(
        &mut self,
        message: RouteNetlinkMessage,
        dump: bool,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        request.header.sequence_number = self.seq;
        request.finalize();
        let mut buf = vec![0; request.buffer_len()];
        request.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut answers = Vec::new();
        loop {
            self.buf.clear();
            self.socket.recv(&mut self.buf, 0)?;
            let n = self.buf.len();
            let mut offset = 0;
            while offset < n {
                let bytes = &self.buf[offset..n];
                let len = NetlinkBuffer::new_checked(bytes).map_err(invalid)?.length() as usize;
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len])
                    .map_err(invalid)?;
                // A stale answer to an earlier request, cut short by an error.
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::Error(err) => {
                            return match err.code {
                                None => Ok(answers),
                                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            };
                        }
                        NetlinkPayload::InnerMessage(inner) => {
                            answers.push(inner);
                            if !dump {
                                return Ok(answers);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
            }
        }
    }
}

fn invalid(err: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err.to_string())
}
