//! A socket this process has just closed, its port used again: a bind
//! that must succeed, a connect that must be refused. A test beside this
//! one in the same process that forks a command (`in_fresh_netns`'s own
//! `ip link set lo up`, any `Command`) copies every descriptor of ours
//! into its child, which holds them until its exec closes the
//! close-on-exec ones, or it ends; and the kernel lets the socket go
//! later still, as that exec returns. Which process holds a copy cannot
//! be told reliably from outside (a child mid-exec already shows its new
//! executable), so the test waits on what the kernel lists instead: no
//! socket on the port left in a state that would stand in the way, in
//! the calling thread's network namespace (the test's own). Then it
//! asserts what it did before, once. A socket our own process failed to
//! close stays listed, and the wait fails naming its port.
//!
//! The list is sock_diag's (`supervisor::reserve::sockets`), not
//! `/proc/thread-self/net/tcp`'s: that one has only listening and
//! connected sockets, never a TCP socket only bound, which is what most
//! reservations are.

use std::fmt;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::time::{Duration, Instant};

use supervisor::reserve::{Bound, sockets};
use supervisor::values::Protocol;

/// A hang guard, not a timing claim: a forked child execs within
/// milliseconds, even on a loaded machine.
const LIMIT: Duration = Duration::from_secs(30);

/// The sockets of one protocol and family.
#[derive(Clone, Copy, Debug)]
pub enum Table {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
}

impl Table {
    fn protocol(self) -> Protocol {
        match self {
            Table::Tcp | Table::Tcp6 => Protocol::Tcp,
            Table::Udp | Table::Udp6 => Protocol::Udp,
        }
    }

    fn ipv6(self) -> bool {
        matches!(self, Table::Tcp6 | Table::Udp6)
    }

    fn is_tcp(self) -> bool {
        self.protocol() == Protocol::Tcp
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = if self.ipv6() { "IPv6" } else { "IPv4" };
        write!(f, "{family} {}", self.protocol())
    }
}

/// TCP's states as the kernel numbers them (include/net/tcp_states.h).
const TIME_WAIT: u8 = 0x06;
const LISTEN: u8 = 0x0a;

/// Waits until `table` lists no socket on any of `ports` (its local port)
/// that a bind to it with SO_REUSEADDR would run into: any state but
/// TCP's TIME_WAIT. The binds after these waits either have SO_REUSEADDR
/// (the reserve's listening reservation, tokio's listeners), which a
/// TIME_WAIT does not stop and the restart test expects to find, or
/// follow no connection on the port (a reservation alone never
/// connects), so there is none to wait out.
pub fn unbound(table: Table, ports: impl IntoIterator<Item = u16>) {
    let ports: Vec<u16> = ports.into_iter().collect();
    wait_none(table, &format!("bound on port(s) {ports:?}"), |entry| {
        ports.contains(&entry.port) && !(table.is_tcp() && entry.state == TIME_WAIT)
    });
}

/// Waits until `table` (a TCP one) lists no listening socket on `port`,
/// so a connect to it is refused: the closed connections a listener
/// accepted may stay on the port (FIN_WAIT, TIME_WAIT) but take none.
pub fn not_listening(table: Table, port: u16) {
    assert!(table.is_tcp(), "{table}: only TCP listens");
    wait_none(table, &format!("listening on port {port}"), |entry| {
        entry.port == port && entry.state == LISTEN
    });
}

/// Waits until `table` (a TCP one) lists a socket on `port` (its local
/// port) in TIME_WAIT: the last close of its peer, which sends the FIN
/// that ends in it, is the last copy's, which a child forked beside the
/// test may hold until it execs.
pub fn in_time_wait(table: Table, port: u16) {
    assert!(table.is_tcp(), "{table}: only TCP has TIME_WAIT");
    let deadline = Instant::now() + LIMIT;
    while !entries(table)
        .iter()
        .any(|entry| entry.port == port && entry.state == TIME_WAIT)
    {
        assert!(
            Instant::now() < deadline,
            "port {port}: {table} lists no socket in TIME_WAIT within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no entry of `table` is `blocking`; panics naming what is
/// left once the guard runs out.
fn wait_none(table: Table, what: &str, blocking: impl Fn(&Bound) -> bool) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left: Vec<Bound> = entries(table).into_iter().filter(&blocking).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} still lists sockets {what} after {LIMIT:?} \
             (one this process failed to close?): {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every socket `table` lists in the calling thread's network namespace.
/// A dump that fails panics: the wait would otherwise pass on nothing.
fn entries(table: Table) -> Vec<Bound> {
    lists_bound_sockets();
    let all = sockets(table.protocol()).unwrap_or_else(|e| panic!("{table} sockets: {e}"));
    all.into_iter()
        .filter(|socket| socket.local.is_ipv6() == table.ipv6())
        .collect()
}

/// Panics unless the kernel lists a TCP socket that is only bound
/// (Linux 6.8 and later): else every wait would pass before the
/// reservations it is for are let go. Once a process, on a thread of its
/// own in a namespace of its own, where no port is any test's.
fn lists_bound_sockets() {
    static CHECKED: Once = Once::new();
    CHECKED.call_once(|| {
        let listed = std::thread::spawn(|| {
            // SAFETY: unshare affects only this thread's network namespace.
            let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(ret, 0, "unshare: {}", std::io::Error::last_os_error());
            use nix::sys::socket::{
                AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket,
            };
            let socket = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .expect("a TCP socket");
            bind(socket.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, 0)).expect("bind to port 0");
            let port = getsockname::<SockaddrIn>(socket.as_raw_fd())
                .expect("the port bound")
                .port();
            sockets(Protocol::Tcp)
                .expect("a sock_diag dump")
                .iter()
                .any(|s| s.port == port)
        })
        .join()
        .expect("the probe thread");
        assert!(
            listed,
            "sock_diag lists no TCP socket only bound (Linux 6.8 and later do): \
             tests could not wait for a reservation to be let go"
        );
    });
}
