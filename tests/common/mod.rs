//! Test harness: every privileged test gets its own throwaway host.
//!
//! A `HostNs` is a fresh network + mount namespace held open by a small
//! `unshare` process, with `lo` up and a private tmpfs on /run (so the default
//! state directory is private too). Everything a test runs goes through
//! `nsenter` into it, so tests run in parallel without seeing each other and
//! nothing ever reaches the machine's own namespace. The holder exits when its
//! stdin closes, so even a test process killed mid-way leaves nothing behind.
//!
//! Without root the tests skip with a loud message; with `CI` set, a skip is a
//! failure.
#![allow(dead_code)]

pub mod closed;
pub mod cni;
pub mod container;
pub mod forge;
pub mod loopback6;
pub mod netns;
pub mod podman;
pub mod syn;
pub mod terminal;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const SUPERVISOR: &str = env!("CARGO_BIN_EXE_supervisor");

/// True when privileged tests can run. Panics under CI when they cannot.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: needs root, and CI is set: privileged tests must run in CI, never skip");
    }
    eprintln!("\n!!! SKIPPED {test}: needs root (run the suite with scripts/test as root) !!!\n");
    false
}

/// The python3 that `what` runs (Debian package python3, which
/// scripts/deps installs): without it the test fails, it never skips.
pub fn python3(what: &str) -> &'static str {
    let python = "/usr/bin/python3";
    assert!(
        std::path::Path::new(python).exists(),
        "{python} is needed for {what} (Debian package python3; scripts/deps installs it)"
    );
    python
}

/// What `supervisor::spawn::Container` needs to run /bin/true under its
/// init, as root with docker's default capabilities: no mounts, no
/// filter, no cgroup.
pub fn spawn_config() -> supervisor::spawn::SpawnConfig {
    supervisor::spawn::SpawnConfig {
        hostname: "test".into(),
        workdir: "/".into(),
        env: vec![],
        command: vec!["/bin/true".into()],
        init: true,
        take_terminal: false,
        capabilities: supervisor::spawn::DEFAULT_CAPABILITIES.to_vec(),
        user: None,
        confinement: Default::default(),
        join_network: None,
        cgroup: None,
        cgroup_join: vec![],
    }
}

/// A process that keeps namespaces alive until its stdin closes, so even a
/// test process killed mid-way leaves nothing behind.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    /// The process to nsenter: `pid`, or with `--fork` its child, the first
    /// process of the new pid namespace.
    target: u32,
}

impl Holder {
    /// `unshare ARGS -- sh -c SETUP`, once SETUP has succeeded.
    fn spawn(unshare: &[&str], setup: &str) -> Holder {
        let mut child = Command::new("unshare")
            .args(unshare)
            .args(["--", "sh", "-c"])
            .arg(format!("{setup} && echo ready && read _ ; exit 0"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn unshare (util-linux) for a test namespace");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("holder stdout"))
            .read_line(&mut line)
            .expect("read holder readiness");
        assert_eq!(
            line.trim(),
            "ready",
            "test namespace holder failed to start"
        );
        let pid = child.id();
        let target = if unshare.contains(&"--fork") {
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .expect("the holder's children")
                .trim()
                .parse()
                .expect("one forked holder shell")
        } else {
            pid
        };
        let stdin = child.stdin.take();
        Holder {
            child,
            stdin,
            pid,
            target,
        }
    }

    /// A command run inside the holder's namespaces.
    fn command(&self, namespaces: &[&str], program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.target))
            .args(namespaces)
            .arg("--")
            .arg(program);
        cmd
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.wait();
    }
}

/// A throwaway host: its own network and mount namespaces.
pub struct HostNs {
    holder: Holder,
    namespaces: &'static [&'static str],
}

impl HostNs {
    /// A fresh host for `test`, or None when privileged tests are skipped.
    pub fn new(test: &str) -> Option<HostNs> {
        if !privileged(test) {
            return None;
        }
        let holder = Holder::spawn(
            &["--net", "--mount", "--propagation", "private"],
            "ip link set lo up && mount -t tmpfs -o mode=755 tmpfs /run",
        );
        Some(HostNs {
            holder,
            namespaces: &["--net", "--mount"],
        })
    }

    /// A fresh host for `test` that runs a container engine: a pid namespace
    /// of its own too, whose end kills every daemon the engine left (conmon,
    /// containers), and private tmpfs over /var/lib (where CNI keeps its
    /// cache) and over /sys/fs/cgroup/unified (crun refuses the machine's
    /// hybrid cgroup layout).
    pub fn for_engine(test: &str) -> Option<HostNs> {
        if !privileged(test) {
            return None;
        }
        let holder = Holder::spawn(
            &[
                "--net",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
            ],
            "ip link set lo up && mount -t tmpfs -o mode=755 tmpfs /run \
             && mount -t tmpfs -o mode=755 tmpfs /var/lib \
             && { [ ! -d /sys/fs/cgroup/unified ] || mount -t tmpfs tmpfs /sys/fs/cgroup/unified; }",
        );
        Some(HostNs {
            holder,
            namespaces: &["--net", "--mount", "--pid"],
        })
    }

    /// A path to `path` as this host's mount namespace sees it, for the test
    /// to read and write files there.
    pub fn path(&self, path: &str) -> String {
        format!("/proc/{}/root{path}", self.holder.target)
    }

    /// The netns path, for `ip link ... netns PATH`-style commands.
    pub fn netns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.holder.pid)
    }

    pub fn pid(&self) -> u32 {
        self.holder.pid
    }

    /// A command that runs inside this host.
    pub fn command(&self, program: &str) -> Command {
        self.holder.command(self.namespaces, program)
    }

    /// The supervisor binary, inside this host.
    pub fn supervisor(&self) -> Command {
        let mut cmd = self.command(SUPERVISOR);
        cmd.env_remove("RUST_LOG");
        // Never the machine's cgroup2 root: a test that hooks `[::1]`
        // passes a cgroup of its own (common::cgroup2).
        cmd.env("SUPERVISOR_LOOPBACK6_CGROUP", "none");
        cmd
    }

    /// Runs `supervisor run ARGS…` here, to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.supervisor()
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn supervisor")
    }

    /// Starts `supervisor run ARGS…` here, whose command must print "ready"
    /// first, and waits for that line. The container ends when its stdin
    /// closes, when the returned Child is dropped with its stdin.
    pub fn start(&self, args: &[&str]) -> (Child, BufReader<ChildStdout>) {
        let mut child = self
            .supervisor()
            .arg("run")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn supervisor");
        let out = wait_ready(&mut child);
        (child, out)
    }

    /// Runs a shell script inside this host.
    pub fn sh(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("run sh in test namespace")
    }

    /// Runs a shell script that must succeed; returns its stdout.
    pub fn ok(&self, script: &str) -> String {
        success_stdout(script, self.sh(script))
    }

    /// `sh -c SCRIPT` in a container without network, with extra run
    /// options; it must exit 0. Its stdout.
    pub fn container_sh(&self, options: &[&str], script: &str) -> String {
        let mut args = vec!["--network", "none"];
        args.extend_from_slice(options);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "{options:?} {script}: {}\n{}",
            out.status,
            stderr(&out)
        );
        stdout(&out)
    }

    /// A second machine joined to this host by a veth pair on documentation
    /// addresses: the host's `uplink` is 192.0.2.1/24, the outside's `eth0`
    /// 192.0.2.2/24, routing everything back through the host.
    pub fn outside(&self) -> Outside {
        let holder = Holder::spawn(&["--net"], "ip link set lo up");
        let outside = Outside { holder };
        // Made from the outside, which sees the machine's /proc: a host with
        // a pid namespace of its own has another one.
        outside.ok(&format!(
            "ip link add eth0 type veth peer name uplink netns {host} \
             && ip addr add 192.0.2.2/24 dev eth0 && ip link set eth0 up \
             && ip route add default via 192.0.2.1",
            host = self.netns_path()
        ));
        self.ok("ip addr add 192.0.2.1/24 dev uplink && ip link set uplink up");
        outside
    }
}

impl HostNs {
    /// `outside`, dual stack: the outside machine gets 2001:db8::2/64 (a
    /// documentation prefix) beside its IPv4 address, the host's uplink
    /// 2001:db8::1/64.
    pub fn outside6(&self) -> Outside {
        let out = self.outside();
        out.ok(
            "ip -6 addr add 2001:db8::2/64 dev eth0 nodad && ip -6 route add default via 2001:db8::1",
        );
        self.ok("ip -6 addr add 2001:db8::1/64 dev uplink nodad");
        out
    }
}

/// A network namespace outside a `HostNs`, reaching it over a veth pair.
pub struct Outside {
    holder: Holder,
}

impl Outside {
    /// The netns path, for a thread that setns()'s into it.
    pub fn netns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.holder.pid)
    }

    pub fn command(&self, program: &str) -> Command {
        self.holder.command(&["--net"], program)
    }

    pub fn sh(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("run sh in the outside namespace")
    }

    pub fn ok(&self, script: &str) -> String {
        success_stdout(script, self.sh(script))
    }
}

/// The stdout of `what`, which must have succeeded.
pub fn success_stdout(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "`{what}` failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Takes the stdout of `child`, a supervisor whose container prints "ready"
/// first, and waits for that line.
pub fn wait_ready(child: &mut Child) -> BufReader<ChildStdout> {
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read ready line");
    assert_eq!(line.trim(), "ready", "container did not start");
    out
}

/// Closes the container's stdin and waits for the supervisor's exit, which
/// must be a success.
pub fn stop(mut child: Child) {
    drop(child.stdin.take());
    let status = child.wait().expect("wait supervisor");
    assert!(status.success(), "{status}");
}

/// A path under /tmp named after `tag` that no other test uses, in this
/// run or a concurrent one: each run of the suite starts in a pid
/// namespace of its own, so pids repeat, while all of them share /tmp (and
/// one run's cleanup would remove another's files). Not made.
pub fn unique_temp_path(tag: &str) -> std::path::PathBuf {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "sv-{tag}-{}-{nanos}-{}",
        std::process::id(),
        MADE.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Copies the executable `from` to `to` in a child process (`cp`): a
/// descriptor of ours open for writing on `to` would be inherited by any
/// child another test thread forks meanwhile, and exec'ing `to` while that
/// child lives fails with ETXTBSY.
pub fn copy_executable(from: &str, to: &std::path::Path) {
    let copied = Command::new("cp")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .status()
        .expect("spawn cp");
    assert!(copied.success(), "cp {from} {}", to.display());
}

/// Time since the last close tick (see `supervisor::nftables::CLOSE_TICK`)
/// on CLOCK_MONOTONIC, and until the next.
pub fn close_tick_phase() -> (Duration, Duration) {
    let tick = supervisor::nftables::CLOSE_TICK.as_nanos();
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) },
        0
    );
    let since = (now.tv_sec as u128 * 1_000_000_000 + now.tv_nsec as u128) % tick;
    (
        Duration::from_nanos(since as u64),
        Duration::from_nanos((tick - since) as u64),
    )
}

/// How many netfilter netlink sockets of processes are open in the
/// namespace of `ns` (the kernel's own has port id 0): the supervisors'
/// and plugins', and their holders' until the close tick.
pub fn netfilter_sockets(ns: &HostNs) -> usize {
    const NETLINK_NETFILTER: &str = "12";
    ns.ok("cat /proc/net/netlink")
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.get(1) == Some(&NETLINK_NETFILTER) && f.get(2) != Some(&"0"))
        .count()
}

/// What `round` returns when it ran within one close tick of the
/// supervisors' (see `supervisor::nftables::CLOSE_TICK`): each try starts
/// once every netfilter socket of `ns` is released, just past a tick, and
/// is conclusive when it ends before the next; at most 5 tries. Timing
/// here only tells which try to keep.
pub fn within_a_close_tick<T>(ns: &HostNs, mut round: impl FnMut() -> T) -> T {
    let tick = supervisor::nftables::CLOSE_TICK;
    for _ in 0..5 {
        eventually("the netfilter sockets released", tick * 3, || {
            (netfilter_sockets(ns) == 0).then_some(())
        });
        let (_, until_tick) = close_tick_phase();
        std::thread::sleep(until_tick + Duration::from_millis(5));
        let started = Instant::now();
        let value = round();
        let (since_tick, _) = close_tick_phase();
        if started.elapsed() <= since_tick {
            return value;
        }
    }
    panic!("no round of 5 ended within a close tick");
}

/// The packets of the first counter in `listing` (what `nft list` prints).
pub fn counted_packets(listing: &str) -> u64 {
    listing
        .split_whitespace()
        .skip_while(|word| *word != "packets")
        .nth(1)
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no counter: {listing}"))
}

/// Retries `attempt` until it returns Some, for at most `limit`: a deadline
/// to fail instead of hanging, never a timing claim.
pub fn eventually<T>(what: &str, limit: Duration, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The container veths (sv + hex id) present in `ns`.
pub fn container_veths(ns: &HostNs) -> Vec<String> {
    ns.ok("ip -br link")
        .lines()
        .filter_map(|l| l.split([' ', '@']).next())
        .filter(|name| name.len() > 3 && name.starts_with("sv") && *name != "sv0")
        .map(str::to_string)
        .collect()
}

/// The host's neighbour entries for `address` on sv0, as `ip neigh` shows
/// them.
#[allow(dead_code)]
pub fn neighbour_entries(ns: &HostNs, address: &str) -> String {
    ns.ok(&format!("ip neigh show dev sv0 to {address}"))
        .trim()
        .to_string()
}

/// Waits until the container veths are gone: they go with their
/// container's namespace, which the kernel tears down in the background.
pub fn wait_for_no_veth(ns: &HostNs) {
    eventually("container veths gone", Duration::from_secs(10), || {
        container_veths(ns).is_empty().then_some(())
    });
}

/// The address of the peer in a listening `nc -n -v -l`'s output
/// ("Connection received on ADDRESS PORT").
pub fn connection_source(seen: &str) -> String {
    seen.trim()
        .strip_prefix("Connection received on ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no connection seen: {seen:?}"))
        .to_string()
}

/// The record files, one a line.
pub fn records(ns: &HostNs) -> String {
    ns.ok("ls -A /run/supervisor/containers 2>/dev/null | grep -v '^.lock$' || true")
}

/// The record file of container `name`, parsed.
pub fn record(ns: &HostNs, name: &str) -> serde_json::Value {
    let text = ns.ok(&format!("cat /run/supervisor/containers/{name}.json"));
    serde_json::from_str(&text).expect("a record is JSON")
}

/// Starts `supervisor run ARGS…` with the fault hook set to `phase` (see
/// src/fault.rs), waits until the supervisor has stopped itself there, and
/// kills it with SIGKILL: a crash at exactly that point.
pub fn crash_at(ns: &HostNs, phase: &str, args: &[&str]) {
    let mut child = background(
        ns.supervisor()
            .env("SUPERVISOR_TEST_PAUSE_AT", phase)
            .arg("run")
            .args(args),
    );
    let pid = child.id();
    eventually(
        &format!("the supervisor stopping at {phase}"),
        Duration::from_secs(30),
        || {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(
                    child.stderr.as_mut().expect("piped stderr"),
                    &mut err,
                );
                panic!("the supervisor exited with {status} before {phase}: {err}");
            }
            (process_state(pid) == Some('T')).then_some(())
        },
    );
    child.kill().expect("SIGKILL the supervisor");
    child.wait().expect("reap the supervisor");
}

/// Starts `cmd` (a supervisor) in the background, stdin and stdout null,
/// stderr piped for the test to read when it fails.
pub fn background(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn supervisor")
}

/// Spawns `supervisor` (a `supervisor run`), stdin and stdout piped, to
/// stop at `point` (SUPERVISOR_TEST_PAUSE_AT), and waits until it has;
/// returns it with its container's PID 1 as the host sees it. SIGCONT
/// lets it go on.
pub fn spawn_stopped_at(mut supervisor: Command, point: &str) -> (Child, u32) {
    let supervisor = supervisor
        .env("SUPERVISOR_TEST_PAUSE_AT", point)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let sup = supervisor.id();
    eventually(
        &format!("the supervisor stopping at {point}"),
        Duration::from_secs(10),
        || (process_state(sup) == Some('T')).then_some(()),
    );
    let pid = std::fs::read_to_string(format!("/proc/{sup}/task/{sup}/children"))
        .expect("supervisor's children")
        .trim()
        .parse()
        .expect("one container");
    (supervisor, pid)
}

/// Lets a supervisor stopped by `spawn_stopped_at` go on, and waits for
/// its container's first line, which must be "ready".
pub fn resume_to_ready(supervisor: &mut Child) {
    // SAFETY: kill on our own child's pid, not yet reaped.
    unsafe { libc::kill(supervisor.id() as i32, libc::SIGCONT) };
    let out = supervisor.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("the container's first line");
    assert_eq!(line.trim(), "ready");
}

/// The state letter of process `pid` (R, S, T, Z...), None when it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Asserts that no record, lease or firewall element is left.
pub fn assert_no_state(ns: &HostNs) {
    assert_eq!(records(ns), "", "records left");
    // A CNI DEL gives its address back in the background, once the
    // attachment's connections are forgotten (src/cni/forget.rs).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !leases(ns).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(leases(ns), "", "leases left");
    assert_eq!(
        elements(ns),
        0,
        "elements left: {}",
        ns.ok("nft list ruleset")
    );
    assert_no_drift(ns);
}

/// `supervisor check` finds nothing, eventually: a container's veth goes
/// with its namespace, which the kernel tears down in the background.
pub fn assert_no_drift(ns: &HostNs) {
    let check = || run(ns.supervisor().arg("check"));
    let clean = |out: &Output| out.status.success() && out.stdout.is_empty();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = check();
    while !clean(&out) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        out = check();
    }
    assert!(
        clean(&out),
        "supervisor check found drift:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// How many per-container firewall elements there are: each carries its
/// owner as a comment, `NAME ID` (a network's subnet element carries its
/// bridge's name, one word, and stays with the bridge).
pub fn elements(ns: &HostNs) -> usize {
    ns.ok("nft list ruleset | grep -oE 'comment \"[^\" ]+ [^\"]+\"' | wc -l")
        .trim()
        .parse()
        .expect("a count")
}

/// Runs a container with `options` that prints its eth0 address, and
/// returns that line (`ip -br -4 addr show dev eth0`); the run must succeed.
pub fn eth0_address(ns: &HostNs, options: &[&str]) -> String {
    let mut args = options.to_vec();
    args.extend(["--", "ip", "-br", "-4", "addr", "show", "dev", "eth0"]);
    let out = ns.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The lease files of bridge sv0, one a line.
pub fn leases(ns: &HostNs) -> String {
    ns.ok("ls /run/supervisor/leases/sv0 2>/dev/null || true")
}

/// A command that prints "ready" and runs until its stdin closes (see
/// [`HostNs::start`]).
pub const UNTIL_STDIN_CLOSES: &[&str] = &["sh", "-c", "echo ready; read _ || true"];

/// `run`'s arguments: `options`, then `--` and `command`.
pub fn args<'a>(options: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    let mut all = options.to_vec();
    all.push("--");
    all.extend_from_slice(command);
    all
}

/// Runs `supervisor ARGS…` (any subcommand) in `ns`, stdin closed.
pub fn supervisor(ns: &HostNs, args: &[&str]) -> Output {
    run(ns.supervisor().args(args))
}

/// Runs `cmd` and returns its output with stdin closed.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("spawn command")
}

/// A port number unique within this test process, for tests that want to
/// avoid reusing one across cases.
pub fn unique_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(20000);
    NEXT.fetch_add(1, Ordering::Relaxed) as u16
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `f` on a thread of its own moved into a fresh network namespace
/// (with lo up), for tests that call the library directly. Threads and
/// processes it starts inherit that namespace; the test's other threads and
/// the machine keep theirs. None when privileged tests are skipped.
pub fn in_fresh_netns<T: Send + 'static>(
    test: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if !privileged(test) {
        return None;
    }
    let handle = std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread's network namespace.
        let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            ret,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(up.is_ok_and(|s| s.success()), "lo up in the test namespace");
        f()
    });
    match handle.join() {
        Ok(value) => Some(value),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
