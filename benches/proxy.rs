//! The `[::1]` proxy (`supervisor::proxy`) against a direct connection to
//! the container, as the issue asks: the target is a server in a network
//! namespace of its own behind a bridge and a veth pair, at an address of
//! the default IPv6 subnet, exactly where a container's server is. The same
//! client and the same server serve every path:
//!
//! - `direct`: the host connects to `[fd53:7570:6572::2]:port` itself.
//! - `hooked`: the host connects to `[::1]:H`, and the `[::1]` connect hook
//!   (`proxy::connect6`, attached to a cgroup2 directory of the bench's own,
//!   which the bench process joins for its run) rewrites that into a
//!   connection to the same address: what `run` gives `[::1]:PORT` for the
//!   processes of `--loopback6-cgroup`.
//! - `splice`, `copy`: the host connects to `[::1]:P`, and the proxy relays
//!   to the same address (splice(2), or tokio's copy_bidirectional).
//!
//! Criterion groups: `proxy_1mib/*` (1 MiB sent over an open connection,
//! until the server's one-byte acknowledgement is back) and `proxy_setup/*`
//! (connect, one byte there and back, close). Then the gate (see `gate`):
//! paired, interleaved measurements, so that load from elsewhere on a
//! shared machine weighs on direct and proxied alike, over rounds of fresh
//! connections (so no path keeps one lucky or unlucky placement of its
//! threads on the CPUs for the whole run: direct throughput varied
//! 1.7-6.6 GB/s between connections of one run). The report gives each
//! path's median, the ratios the issue sets (1 MiB through the proxy at
//! least 80% of direct, setup at most 2x), and the load average before and
//! after.
//!
//! The gate runs once for each congestion control a host commonly
//! defaults to: bbr (which paces), cubic and reno (which do not). The
//! client, and so the direct connection and the client's hop to the proxy,
//! and the server run it, as a user's client and server on such a host
//! would; the proxy's own hops run reno whatever the host's default
//! (src/proxy/tcp.rs). It is set on each socket, not as a namespace's
//! default: a namespace other than the machine's may only default to an
//! algorithm of net.ipv4.tcp_allowed_congestion_control (reno and bbr on
//! the machine this was written on, which has cubic), while a socket of a
//! process with CAP_NET_ADMIN may pick any the kernel has. One the kernel
//! lacks is reported and its gate skipped.
//!
//! Under bbr the direct connection is paced and the proxy's hops are not,
//! so the proxy matches it. Under cubic and reno nothing is paced, and the
//! gate shows what the proxy's extra hop costs; the `cost` section after
//! the gates says why: CPU time per MiB of the whole exchange, and of the
//! proxy's thread, on each path. On two vCPUs shared with other work an
//! exchange is as good as serial (elapsed time within a few percent of CPU
//! time in the cheap runs), so the ratio to direct is the ratio of CPU
//! times: 175 us per MiB direct against 310 through the proxy. 120 of them
//! are the proxy's thread, almost all of it (perf) under the kernel's TCP
//! transmit of the second hop: bridge, veth, and the server's receive,
//! which runs in the sender's context. Client and server spend together
//! about what they spend direct (190 against 175): the loopback hop costs
//! the client about what the bridge hop costs it direct. Variants that changed none of this, tried
//! with paired gates (2026-12-07, docs/performance.md): other pipe sizes,
//! SPLICE_F_MORE, forced socket buffers, Nagle, cubic on the proxy's hops,
//! pinning or renicing its thread, its upstream socket in the container's
//! namespace.
//!
//! The same figures with the server on `[::1]` in the host's namespace
//! follow, for reference only: there the direct path is one loopback hop
//! and the proxy doubles it, which is not the comparison a user sees.
//!
//! The proxy runs on a current_thread runtime of its own thread, as in the
//! supervisor; the server is a plain thread per connection. No firewall is
//! loaded: the host's own connections to a container cross no forward chain.
//!
//! Needs root for the namespaces (`src/bench/sandbox.rs`) and `ip`; without
//! root it says so and exits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn6, setsockopt, socket, sockopt,
};
use nix::unistd::Pid;
use supervisor::proxy::connect6::{self, Entry, Hook};
use supervisor::proxy::{Forward, Limits, Proxy, TcpRelay};
use supervisor::values::Protocol;

#[path = "../src/bench/sandbox.rs"]
mod sandbox;

const MIB: usize = 1 << 20;
const CONTAINER: Ipv6Addr = Ipv6Addr::new(0xfd53, 0x7570, 0x6572, 0, 0, 0, 0, 2);
const GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd53, 0x7570, 0x6572, 0, 0, 0, 0, 1);
const NETNS: &str = "svproxy-ctr";

fn ip(args: &str) {
    let status = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .expect("running ip");
    assert!(status.success(), "ip {args}");
}

/// A container's network, as `run --ipv6` makes it: a bridge with the
/// gateway, a veth pair, the peer as eth0 in a namespace of its own with
/// the container's address (no DAD: usable at once).
fn container_network() {
    // Criterion's setup runs open tens of thousands of connections from the
    // host to one address and port, whose TIME_WAITs then fill the host's
    // ephemeral ports: by default (2) only loopback may reuse them, and a
    // connect scanning a full range takes milliseconds, then fails. This is
    // the bench's own namespace (`sandbox::enter`).
    std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "1").expect("tcp_tw_reuse");
    ip("link add svproxy0 type bridge");
    ip(&format!("addr add {GATEWAY}/64 dev svproxy0 nodad"));
    ip("link set svproxy0 up");
    ip(&format!("netns add {NETNS}"));
    ip(&format!(
        "link add svproxyh type veth peer name eth0 netns {NETNS}"
    ));
    ip("link set svproxyh master svproxy0 up");
    ip(&format!("-n {NETNS} link set lo up"));
    ip(&format!("-n {NETNS} link set eth0 up"));
    ip(&format!(
        "-n {NETNS} addr add {CONTAINER}/64 dev eth0 nodad"
    ));
}

/// The congestion controls the gate runs under, a common host default
/// each: bbr paces, cubic and reno do not.
const CONGESTION_CONTROLS: [&str; 3] = ["bbr", "cubic", "reno"];

/// Sets `algorithm` on a socket; on a listener, for the connections it
/// accepts.
fn congestion(socket: &impl AsFd, algorithm: &str) -> nix::Result<()> {
    setsockopt(socket, sockopt::TcpCongestion, &OsString::from(algorithm))
}

/// Each message is a 4-byte length and that many bytes; the server answers
/// each with one byte. In the container's namespace when `in_container`;
/// its connections run `algorithm` (None: the namespace's default).
fn server(in_container: bool, algorithm: Option<&'static str>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let bind = if in_container {
            let netns = std::fs::File::open(format!("/run/netns/{NETNS}")).expect("netns");
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            CONTAINER
        } else {
            Ipv6Addr::LOCALHOST
        };
        let listener = TcpListener::bind((bind, 0)).expect("server listener");
        if let Some(algorithm) = algorithm {
            congestion(&listener, algorithm).expect("server's congestion control");
        }
        tx.send(listener.local_addr().expect("server address"))
            .expect("hand over the address");
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; MIB];
                loop {
                    let mut len = [0u8; 4];
                    if stream.read_exact(&mut len).is_err() {
                        return;
                    }
                    let len = u32::from_be_bytes(len) as usize;
                    if stream.read_exact(&mut buf[..len]).is_err()
                        || stream.write_all(b"k").is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    rx.recv().expect("server address")
}

/// A proxy to `target` on a thread of its own: its address and the
/// thread's id.
fn proxy(target: SocketAddr, how: TcpRelay) -> (SocketAddr, Pid) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let thread = nix::unistd::gettid();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async {
            let limits = Limits {
                tcp_relay: how,
                ..Limits::default()
            };
            let proxy = Proxy::start_with(Forward::loopback6(Protocol::Tcp, 0, target), limits)
                .await
                .expect("proxy");
            tx.send((proxy.local_addr(), thread))
                .expect("hand over the address");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("proxy address")
}

/// A client's connection, running `algorithm` from its handshake on (None:
/// the namespace's default).
fn connect(to: SocketAddr, algorithm: Option<&str>) -> TcpStream {
    let stream = match algorithm {
        None => TcpStream::connect(to).expect("connect"),
        Some(algorithm) => {
            let SocketAddr::V6(to) = to else {
                unreachable!("every path is IPv6")
            };
            let socket = socket(
                AddressFamily::Inet6,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .expect("client socket");
            congestion(&socket, algorithm).expect("client's congestion control");
            nix::sys::socket::connect(socket.as_raw_fd(), &SockaddrIn6::from(to)).expect("connect");
            TcpStream::from(socket)
        }
    };
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// One message of `payload` and its acknowledgement.
fn exchange(stream: &mut TcpStream, payload: &[u8]) {
    stream
        .write_all(&(payload.len() as u32).to_be_bytes())
        .expect("send length");
    stream.write_all(payload).expect("send");
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack).expect("acknowledgement");
}

fn setup(to: SocketAddr, algorithm: Option<&str>) {
    let mut stream = connect(to, algorithm);
    exchange(&mut stream, b"x");
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort_unstable();
    runs[runs.len() / 2]
}

fn timed(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The gate over `paths` (the first is direct): `rounds` rounds, each
/// with fresh connections, each of `CYCLES` cycles timing one transfer (or
/// one setup) on every path in turn, starting from another path each cycle. A path's figure is the median of its
/// times; its ratio to direct is the median of the per-cycle ratios, so a
/// burst of load from elsewhere, which lasts longer than a cycle, weighs on
/// both sides of each ratio alike.
fn gate(title: &str, paths: &[Path], algorithm: Option<&str>, rounds: usize) {
    const CYCLES: usize = 20;
    let payload = vec![0x5au8; MIB];
    let before = load();
    let n = paths.len();
    let mut mib = vec![Vec::new(); n];
    let mut setups = vec![Vec::new(); n];
    for _ in 0..rounds {
        let mut streams: Vec<TcpStream> = paths
            .iter()
            .map(|path| connect(path.to, algorithm))
            .collect();
        for stream in &mut streams {
            for _ in 0..5 {
                exchange(stream, &payload);
            }
        }
        for cycle in 0..CYCLES {
            // Each cycle starts with another path, so that none is always
            // the first after the setups (or the last before them).
            let order: Vec<usize> = (0..n).map(|j| (j + cycle) % n).collect();
            for &i in &order {
                mib[i].push(timed(1, || exchange(&mut streams[i], &payload)));
            }
            for _ in 0..2 {
                for &i in &order {
                    setups[i].push(timed(1, || setup(paths[i].to, algorithm)));
                }
            }
        }
    }
    println!(
        "{title} ({rounds} rounds of {CYCLES} cycles; load average {before} before, {} after):",
        load()
    );
    // Per-cycle ratios of path i to direct, direct's time over the path's.
    let ratios = |runs: &[Vec<Duration>], i: usize| -> f64 {
        let mut r: Vec<f64> = runs[0]
            .iter()
            .zip(&runs[i])
            .map(|(d, p)| d.as_secs_f64() / p.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let best = |runs: &[Duration]| runs.iter().copied().min().unwrap_or_default();
    for (i, Path { name, .. }) in paths.iter().enumerate() {
        let (m, b) = (median(mib[i].clone()), best(&mib[i]));
        let sm = median(setups[i].clone());
        println!(
            "{name:>8}: 1 MiB at {:.0} MiB/s median, {:.0} best; {:.0}% of direct \
             (median of paired ratios, target >= 80%); setup {:.1} us median, {:.2}x \
             direct (target <= 2x)",
            1.0 / m.as_secs_f64(),
            1.0 / b.as_secs_f64(),
            100.0 * ratios(&mib, i),
            sm.as_secs_f64() * 1e6,
            1.0 / ratios(&setups, i),
        );
    }
}

/// One way to the server: direct, or through a proxy on its thread.
#[derive(Clone, Copy)]
struct Path {
    name: &'static str,
    to: SocketAddr,
    proxy_thread: Option<Pid>,
}

/// Direct to `server`, rewritten by the hook (when `hooks` has a cgroup),
/// and through a proxy that splices and one that copies. The hook and
/// the socket holding its port go into `hooks`, alive as long as it.
fn all_paths(server: SocketAddr, hooks: &mut Hooks) -> Vec<Path> {
    let proxied = |name, how| {
        let (to, thread) = proxy(server, how);
        Path {
            name,
            to,
            proxy_thread: Some(thread),
        }
    };
    let direct = Path {
        name: "direct",
        to: server,
        proxy_thread: None,
    };
    let mut paths = vec![direct];
    if let Some(to) = hooks.hook(server) {
        paths.push(Path {
            name: "hooked",
            to,
            proxy_thread: None,
        });
    }
    paths.push(proxied("splice", TcpRelay::Splice));
    paths.push(proxied("copy", TcpRelay::Copy));
    paths
}

/// The bench's own cgroup2 directory, which the bench process joins (a
/// socket belongs to the cgroup of the process that made it), and the
/// hooks attached there. Never the hierarchy's root, which is the whole
/// machine's. Dropped, the hooks go, the process returns to its cgroup,
/// and the directory is removed.
struct Hooks {
    cgroup: Option<(PathBuf, PathBuf)>,
    hooks: Vec<(Hook, TcpListener)>,
}

impl Hooks {
    fn join() -> Hooks {
        let joined = (|| -> Result<(PathBuf, PathBuf), String> {
            let root = connect6::cgroup2_root().map_err(|e| e.to_string())?;
            let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
            let home = own
                .lines()
                .find_map(|line| line.strip_prefix("0::"))
                .map(|path| root.join(path.trim_start_matches('/')))
                .ok_or("no cgroup2 line in /proc/self/cgroup")?;
            let dir = root.join(format!("sv-bench-proxy-{}", std::process::id()));
            std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let pid = std::process::id().to_string();
            if let Err(e) = std::fs::write(dir.join("cgroup.procs"), &pid) {
                let _ = std::fs::remove_dir(&dir);
                return Err(format!("joining {}: {e}", dir.display()));
            }
            Ok((dir, home))
        })();
        let cgroup = joined
            .map_err(|err| println!("the hooked path is left out: {err}"))
            .ok();
        Hooks {
            cgroup,
            hooks: Vec::new(),
        }
    }

    /// `[::1]:H` (a port held by a listener of its own, as a reservation
    /// holds a published one) rewritten to `server`.
    fn hook(&mut self, server: SocketAddr) -> Option<SocketAddr> {
        let (dir, _) = self.cgroup.as_ref()?;
        let SocketAddr::V6(target) = server else {
            return None;
        };
        let held = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("a port to hook");
        let at = held.local_addr().expect("the hooked port");
        let cookie = connect6::netns_cookie(held.as_fd()).expect("the namespace's cookie");
        let entry = Entry {
            host_port: at.port(),
            target: SocketAddrV6::new(*target.ip(), target.port(), 0, 0),
        };
        match Hook::attach(dir, cookie, &[entry]) {
            Ok(hook) => {
                self.hooks.push((hook, held));
                Some(at)
            }
            Err(err) => {
                println!("the hooked path is left out: {err}");
                None
            }
        }
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.hooks.clear();
        if let Some((dir, home)) = &self.cgroup {
            let pid = std::process::id().to_string();
            if let Err(e) = std::fs::write(home.join("cgroup.procs"), pid) {
                println!("returning to {}: {e}", home.display());
            }
            if let Err(e) = std::fs::remove_dir(dir) {
                println!("removing {}: {e}", dir.display());
            }
        }
    }
}

/// Nanoseconds on a CPU of each of this process's threads, by thread id.
fn cpu_times() -> BTreeMap<String, u64> {
    let mut times = BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(ns) = schedstat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
        {
            times.insert(task.file_name().to_string_lossy().into_owned(), ns);
        }
    }
    times
}

/// CPU time the threads alive at both ends spent in between (threads that
/// ended or started meanwhile are left out: none of the section's do).
fn spent(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Duration {
    let ns = after
        .iter()
        .filter_map(|(tid, end)| before.get(tid).map(|start| end.saturating_sub(*start)))
        .sum();
    Duration::from_nanos(ns)
}

fn thread_time(times: &BTreeMap<String, u64>, thread: Option<Pid>) -> u64 {
    thread
        .and_then(|tid| times.get(&tid.to_string()).copied())
        .unwrap_or_default()
}

/// One run of [`cost`], per MiB: CPU time of the whole exchange, of it
/// the proxy's thread's, and wall-clock time.
#[derive(Clone, Copy)]
struct Cost {
    total: Duration,
    proxy: Duration,
    wall: Duration,
}

/// What each path costs: the CPU time of the whole exchange (client,
/// proxy, server, and the kernel's work in their name) and of the proxy's
/// thread, per MiB, over `MIBS` back-to-back transfers on a fresh
/// connection, `RUNS` times, the paths alternated. A connection's cost
/// depends on where the scheduler puts its threads: on this two-vCPU VM
/// runs fall into a cheap mode (all on one CPU, the data still in its
/// cache; wall-clock time close to CPU time) and one about 2.5 times
/// dearer, so the report gives the median run and the cheapest.
fn cost(paths: &[Path], algorithm: &str) {
    const MIBS: u32 = 50;
    const RUNS: usize = 21;
    let payload = vec![0x5au8; MIB];
    let before = load();
    let mut runs = vec![Vec::new(); paths.len()];
    for _ in 0..RUNS {
        for (i, path) in paths.iter().enumerate() {
            let mut stream = connect(path.to, Some(algorithm));
            for _ in 0..5 {
                exchange(&mut stream, &payload);
            }
            let (start, started) = (cpu_times(), Instant::now());
            for _ in 0..MIBS {
                exchange(&mut stream, &payload);
            }
            let wall = started.elapsed() / MIBS;
            let end = cpu_times();
            let thread = thread_time(&end, path.proxy_thread)
                .saturating_sub(thread_time(&start, path.proxy_thread));
            runs[i].push(Cost {
                total: spent(&start, &end) / MIBS,
                proxy: Duration::from_nanos(thread) / MIBS,
                wall,
            });
        }
    }
    println!(
        "cost per MiB, client and server on {algorithm} ({RUNS} runs of {MIBS} MiB; \
         load average {before} before, {} after):",
        load()
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (path, mut runs) in paths.iter().zip(runs) {
        runs.sort_by_key(|run| run.total);
        let (cheapest, middle) = (runs[0], runs[runs.len() / 2]);
        println!(
            "{:>8}: {:.0} us of CPU (proxy's thread {:.0}), {:.0} us elapsed in the median run; \
             {:.0} us of CPU (proxy's thread {:.0}), {:.0} us elapsed in the cheapest",
            path.name,
            us(middle.total),
            us(middle.proxy),
            us(middle.wall),
            us(cheapest.total),
            us(cheapest.proxy),
            us(cheapest.wall),
        );
    }
}

fn main() {
    if let Err(err) = sandbox::enter() {
        eprintln!("benches/proxy: {err}; skipped");
        return;
    }
    container_network();
    // Before any socket: a socket is of its maker's cgroup for good.
    let mut hooks = Hooks::join();
    let paths = all_paths(server(true, None), &mut hooks);
    let payload = vec![0x5au8; MIB];
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    {
        let mut group = c.benchmark_group("proxy_1mib");
        group.throughput(criterion::Throughput::Bytes(MIB as u64));
        for path in &paths {
            let mut stream = connect(path.to, None);
            group.bench_function(path.name, |b| b.iter(|| exchange(&mut stream, &payload)));
        }
        group.finish();
    }
    {
        let mut group = c.benchmark_group("proxy_setup");
        for path in &paths {
            group.bench_function(path.name, |b| b.iter(|| setup(path.to, None)));
        }
        group.finish();
    }
    c.final_summary();

    let mut unpaced = None;
    for algorithm in CONGESTION_CONTROLS {
        let probe = socket(
            AddressFamily::Inet6,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        if let Err(err) = congestion(&probe, algorithm) {
            println!("{algorithm}: not available here ({err}); its gate skipped");
            continue;
        }
        let paths = all_paths(server(true, Some(algorithm)), &mut hooks);
        gate(
            &format!(
                "the gate, client and server on {algorithm}, server in a container's namespace"
            ),
            &paths,
            Some(algorithm),
            15,
        );
        if algorithm != "bbr" {
            unpaced = Some((algorithm, paths));
        }
    }
    if let Some((algorithm, paths)) = unpaced {
        cost(&paths, algorithm);
    }
    gate(
        "server on [::1] in the host's namespace (reference only)",
        &all_paths(
            server(false, None),
            &mut Hooks {
                cgroup: None,
                hooks: Vec::new(),
            },
        ),
        None,
        8,
    );
}
