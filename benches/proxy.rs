//! The `[::1]` proxy (`supervisor::proxy`) against a direct connection to
//! the container, as the issue asks: the target is a server in a network
//! namespace of its own behind a bridge and a veth pair, at an address of
//! the default IPv6 subnet, exactly where a container's server is. The same
//! client and the same server serve every path:
//!
//! - `direct`: the host connects to `[fd53:7570:6572::2]:port` itself.
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
//! The client, and so the direct connection and the client's hop to the
//! proxy, use the host's default congestion control, as a user's client
//! would; the proxy's own hops run reno (src/proxy/tcp.rs). Where that
//! default paces (BBR, this machine's) it slows the direct connection too,
//! so the gate follows again with both namespaces' default set to reno,
//! for reference only: the proxy's cost where nothing is paced.
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

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;
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

/// The default congestion control of the bench's host namespace and of the
/// container's: reno (see `main`).
fn unpaced_default() {
    const SYSCTL: &str = "/proc/sys/net/ipv4/tcp_congestion_control";
    std::fs::write(SYSCTL, "reno").expect("host's default congestion control");
    let status = Command::new("ip")
        .args(["netns", "exec", NETNS, "sh", "-c"])
        .arg(format!("echo reno > {SYSCTL}"))
        .status()
        .expect("running ip netns exec");
    assert!(status.success(), "container's default congestion control");
}

/// Each message is a 4-byte length and that many bytes; the server answers
/// each with one byte. In the container's namespace when `in_container`.
fn server(in_container: bool) -> SocketAddr {
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

fn proxy(target: SocketAddr, how: TcpRelay) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
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
            tx.send(proxy.local_addr()).expect("hand over the address");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("proxy address")
}

fn connect(to: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(to).expect("connect");
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

fn setup(to: SocketAddr) {
    let mut stream = connect(to);
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
fn gate(title: &str, paths: &[(&str, SocketAddr)], rounds: usize) {
    const CYCLES: usize = 20;
    let payload = vec![0x5au8; MIB];
    let before = load();
    let n = paths.len();
    let mut mib = vec![Vec::new(); n];
    let mut setups = vec![Vec::new(); n];
    for _ in 0..rounds {
        let mut streams: Vec<TcpStream> = paths.iter().map(|(_, to)| connect(*to)).collect();
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
                    setups[i].push(timed(1, || setup(paths[i].1)));
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
    for (i, (name, _)) in paths.iter().enumerate() {
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

fn main() {
    if let Err(err) = sandbox::enter() {
        eprintln!("benches/proxy: {err}; skipped");
        return;
    }
    container_network();
    let direct = server(true);
    let paths = [
        ("direct", direct),
        ("splice", proxy(direct, TcpRelay::Splice)),
        ("copy", proxy(direct, TcpRelay::Copy)),
    ];
    let payload = vec![0x5au8; MIB];
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    {
        let mut group = c.benchmark_group("proxy_1mib");
        group.throughput(criterion::Throughput::Bytes(MIB as u64));
        for (name, to) in paths {
            let mut stream = connect(to);
            group.bench_function(name, |b| b.iter(|| exchange(&mut stream, &payload)));
        }
        group.finish();
    }
    {
        let mut group = c.benchmark_group("proxy_setup");
        for (name, to) in paths {
            group.bench_function(name, |b| b.iter(|| setup(to)));
        }
        group.finish();
    }
    c.final_summary();

    gate("server in a container's namespace (the gate)", &paths, 15);
    // For reference: the same on a host whose default congestion control
    // does not pace (CUBIC, Debian's default), where the direct connection
    // is not paced either. Reno stands in for it: a namespace other than
    // the machine's may only pick an algorithm of
    // net.ipv4.tcp_allowed_congestion_control, which always has reno; on
    // these lossless hops the two behave alike. Fresh connections take the
    // new default.
    unpaced_default();
    gate(
        "the same, both namespaces' default congestion control reno (reference only)",
        &paths,
        10,
    );
    let local = server(false);
    let loopback = [
        ("direct", local),
        ("splice", proxy(local, TcpRelay::Splice)),
        ("copy", proxy(local, TcpRelay::Copy)),
    ];
    gate(
        "server on [::1] in the host's namespace (reference only)",
        &loopback,
        8,
    );
}
