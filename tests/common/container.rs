//! Containers for end-to-end tests: started through `supervisor run` in a
//! `HostNs`, on the default network or another, with the shell helpers that
//! ask them over TCP and wait for their answers.

use std::io::BufRead;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use super::{HostNs, Outside, stderr};

/// A running container: its supervisor, its PID 1 as the host sees it, and
/// the lines it prints.
pub struct Container {
    pub supervisor: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    pub pid: u32,
}

impl Container {
    /// `supervisor run ARGS -- sh -c SCRIPT`, where SCRIPT runs in the
    /// background and the container ends when its stdin closes.
    pub fn start(ns: &HostNs, args: &[&str], script: &str) -> Container {
        let mut supervisor = ns
            .supervisor()
            .arg("run")
            .args(args)
            .args(["--", "sh", "-c"])
            .arg(format!("{script} & echo ready; read _ || true"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn supervisor");
        let out = super::wait_ready(&mut supervisor);
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line.trim().to_string()).is_err() {
                    break;
                }
            }
        });
        let sup = supervisor.id();
        let pid = std::fs::read_to_string(format!("/proc/{sup}/task/{sup}/children"))
            .expect("supervisor's children")
            .trim()
            .parse()
            .expect("one container");
        Container {
            supervisor,
            lines,
            pid,
        }
    }

    /// `start` on network `net`.
    pub fn on(ns: &HostNs, net: &Net, args: &[&str], script: &str) -> Container {
        let mut all = vec!["--bridge", net.bridge, "--subnet", net.subnet];
        all.extend(args);
        Container::start(ns, &all, script)
    }

    /// A container answering `from-NAME` on TCP port 8000, at `ip` on
    /// `net`, with `publish` (each a `-p` value).
    pub fn web(ns: &HostNs, net: &Net, name: &str, ip: &str, publish: &[&str]) -> Container {
        let mut args = vec!["--name", name, "--ip", ip];
        for p in publish {
            args.extend(["-p", p]);
        }
        Container::on(ns, net, &args, &serve_tcp(name, 8000))
    }

    /// Runs `script` in the container's network namespace, as root.
    pub fn sh(&self, script: &str) -> Output {
        std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid))
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter into the container")
    }

    /// The next line the container prints (failing, not hanging, when none
    /// comes).
    pub fn line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from the container within 10 s")
    }

    /// Ends the container; returns the supervisor's output on stderr.
    pub fn stop(mut self) -> String {
        drop(self.supervisor.stdin.take());
        let out = self.supervisor.wait_with_output().expect("supervisor exit");
        assert!(
            out.status.success(),
            "supervisor: {} {}",
            out.status,
            stderr(&out)
        );
        stderr(&out)
    }
}

/// A shell loop in the background (a server, a client that keeps sending),
/// under `timeout` so that it and every process it started end with the
/// test, or after a minute at the latest.
pub struct Background(pub Child);

impl Background {
    pub fn start(mut cmd: std::process::Command, script: &str) -> Background {
        let child = cmd
            .args(["60", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a background loop");
        Background(child)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // SIGTERM, which timeout passes on to its whole process group.
        // SAFETY: kill on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Serves `from-NAME` to every TCP connection on `port`. Never once only:
/// a client can connect before `echo` has written into nc's stdin, and
/// nc then ends, nothing sent, at the client's shutdown (`nc -N`); a
/// client retrying (the server may not listen yet) would then find no
/// server for good.
pub fn serve_tcp(name: &str, port: u16) -> String {
    format!("while :; do echo from-{name} | nc -n -l -p {port} -N >/dev/null 2>&1; done")
}

/// A shell command that waits until something listens on TCP `port` in
/// its network namespace, for at most 10 s (then it fails): what a client
/// started after a server's `&` waits for, where a sleep only guesses.
pub fn until_listening(port: u16) -> String {
    until_bound("tcp", port, "0A")
}

/// [`until_listening`] for a UDP socket bound to `port`.
pub fn until_bound_udp(port: u16) -> String {
    until_bound("udp", port, "07")
}

/// Waits for a socket on local `port` in `state` (the kernel's TCP_*
/// number, hex) with no peer, in /proc/net/TABLE or TABLE6.
fn until_bound(table: &str, port: u16, state: &str) -> String {
    format!(
        "i=0; until grep -qE ':{port:04X} [0:]+ {state} ' /proc/net/{table} /proc/net/{table}6 2>/dev/null; \
         do i=$((i+1)); [ $i -lt 1000 ] || exit 9; sleep 0.01; done"
    )
}

/// Asks `addr:port` over TCP from a shell runner; the reply, or "" when
/// nothing answered.
pub fn ask(run: impl Fn(&str) -> Output, addr: &str, port: u16) -> String {
    let out = run(&format!("timeout 3 nc -n -N -w2 {addr} {port} </dev/null"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Retries `ask` until it answers `expected` (a server may still be
/// starting); fails the test after a generous deadline.
pub fn answers(what: &str, expected: &str, ask: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = ask();
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: expected {expected:?}, got {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Retries a client until it connects (its listener may still be starting).
pub fn connects(what: &str, client: impl Fn() -> Output) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client().status.success() {
        assert!(Instant::now() < deadline, "{what}: never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts `blocked` gets no answer.
pub fn refused(what: &str, blocked: impl Fn() -> String) {
    let got = blocked();
    assert_eq!(got, "", "{what} must not be reachable");
}

pub fn host(ns: &HostNs) -> impl Fn(&str) -> Output + '_ {
    move |script| ns.sh(script)
}

pub fn outside(o: &Outside) -> impl Fn(&str) -> Output + '_ {
    move |script| o.sh(script)
}

pub fn inside(c: &Container) -> impl Fn(&str) -> Output + '_ {
    move |script| c.sh(script)
}

/// A container network: a bridge and its /24 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub bridge: &'static str,
    pub subnet: &'static str,
    /// The subnet's first three octets.
    prefix: &'static str,
}

/// The default network of `run`.
pub const SV0: Net = Net {
    bridge: "sv0",
    subnet: "172.16.0.0/24",
    prefix: "172.16.0",
};
pub const SV1: Net = Net {
    bridge: "sv1",
    subnet: "10.1.0.0/24",
    prefix: "10.1.0",
};
pub const SV2: Net = Net {
    bridge: "sv2",
    subnet: "10.2.0.0/24",
    prefix: "10.2.0",
};

impl Net {
    /// The address `.host` of the subnet.
    pub fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.prefix)
    }

    /// The bridge's own address, the containers' gateway.
    pub fn gateway(&self) -> String {
        self.ip(1)
    }
}
