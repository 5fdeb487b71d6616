//! The `[::1]` connect hook's tests share: a cgroup2 directory of the
//! test's own (`--loopback6-cgroup`), never the hierarchy's root, which is
//! the whole machine's; and a client process telling what it saw.
//!
//! cgroupfs is not namespaced here, so a cgroup's name is one no other
//! test uses, in this run or a concurrent one (see
//! `common::unique_temp_path`: pids repeat across runs, each in a pid
//! namespace of its own); it is removed when dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    pub fn new(test: &str) -> TestCgroup {
        let root = supervisor::cgroup::cgroup2_mount()
            .expect("read /proc/self/mountinfo")
            .expect("a cgroup2 hierarchy is mounted");
        // The unique part first: the test's name may be cut.
        let unique = super::unique_temp_path("test");
        let unique = unique.file_name().expect("a file name").to_string_lossy();
        let mut name = format!("{unique}-{test}");
        name.truncate(200);
        let path = root.join(name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn arg(&self) -> String {
        self.path.display().to_string()
    }

    /// A shell prefix that moves the shell into this cgroup; what it
    /// `exec`s after runs there.
    pub fn enter(&self) -> String {
        format!("echo $$ > '{}/cgroup.procs' && ", self.path.display())
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A process that has just exited may still be counted a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Err(err) = std::fs::remove_dir(&self.path) {
            if Instant::now() > deadline {
                eprintln!("removing {}: {err}", self.path.display());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What a client process saw connecting to `[::1]:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The client's own port.
    pub local_port: u16,
    /// Its peer, `[ADDR]:PORT`: `[::1]:PORT` unless the hook rewrote it.
    pub peer: String,
    /// What the server answered.
    pub answer: String,
}

/// A shell command (after a `TestCgroup::enter` prefix, or alone) that
/// connects to `[::1]:port`, bound to `::1` first when `bind_loopback`,
/// and prints what [`seen`] reads.
pub fn client(port: u16, bind_loopback: bool) -> String {
    client_as(port, if bind_loopback { "bind" } else { "any" })
}

/// [`client`] with its socket bound to the device `lo` (SO_BINDTODEVICE),
/// not to an address.
pub fn client_bound_to_lo(port: u16) -> String {
    client_as(port, "device")
}

/// [`client`], its socket bound as `how` says: `bind` (to ::1), `device`
/// (to lo) or `any`.
fn client_as(port: u16, how: &str) -> String {
    const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
if sys.argv[2] == "bind":
    s.bind(("::1", 0))
if sys.argv[2] == "device":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
s.settimeout(5)
s.connect(("::1", int(sys.argv[1])))
peer = s.getpeername()
data = b""
while True:
    chunk = s.recv(100)
    if not chunk:
        break
    data += chunk
print("%d|[%s]:%d|%s" % (s.getsockname()[1], peer[0], peer[1], data.decode()))
"#;
    let python = super::python3("the [::1] client");
    format!("exec {python} -c '{CLIENT}' {port} {how}")
}

/// A shell command that sends "hello" from a UDP socket connected to
/// `[::1]:port` (a `TestCgroup::enter` prefix before it, or none).
pub fn udp_sender(port: u16) -> String {
    const SENDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.connect(("::1", int(sys.argv[1])))
s.send(b"hello")
"#;
    let python = super::python3("the [::1] UDP sender");
    format!("exec {python} -c '{SENDER}' {port}")
}

/// What [`client`] printed.
pub fn seen(out: &str) -> Seen {
    let mut parts = out.trim().splitn(3, '|');
    let mut next = || parts.next().unwrap_or_default().to_string();
    Seen {
        local_port: next()
            .parse()
            .unwrap_or_else(|_| panic!("a client's report: {out:?}")),
        peer: next(),
        answer: next(),
    }
}

/// A TCP server (a shell command) on `port` answering each client with
/// `ADDR PORT`, the address and port it came from, then closing.
pub fn server_reporting_the_client(port: u16) -> String {
    const SERVER: &str = r#"
import socket, sys
l = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("::", int(sys.argv[1])))
l.listen(64)
while True:
    c, peer = l.accept()
    c.sendall(("%s %d" % (peer[0], peer[1])).encode())
    c.close()
"#;
    let python = super::python3("the [::1] server");
    format!("{python} -c '{SERVER}' {port}")
}

/// The default IPv6 subnet's gateway: the host's address on the bridge,
/// which the container sees as its client's on either path.
const GATEWAY6: &str = "fd53:7570:6572::1";

/// `[::1]:port` through the relay: the container sees the relay's own
/// connection, from another port, and the client's peer is `[::1]:port`.
pub fn assert_relayed(seen: &Seen, port: u16, what: &str) {
    assert_eq!(seen.peer, format!("[::1]:{port}"), "{what}: {seen:?}");
    assert!(
        seen.answer.starts_with(&format!("{GATEWAY6} ")),
        "{what}: {seen:?}"
    );
    assert_ne!(
        seen.answer,
        format!("{GATEWAY6} {}", seen.local_port),
        "{what}: {seen:?}"
    );
}

/// `[::1]:port` rewritten by the hook: the container sees the client's
/// own port, and the client's peer is the container, `[ADDR]:PORT`.
pub fn assert_direct(seen: &Seen, container: &str, what: &str) {
    assert_eq!(seen.peer, container, "{what}: {seen:?}");
    assert_eq!(
        seen.answer,
        format!("{GATEWAY6} {}", seen.local_port),
        "{what}: the container sees the client's own port: {seen:?}"
    );
}
