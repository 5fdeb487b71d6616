//! The `[::1]` proxy (`supervisor::proxy`) against a direct connection to
//! its target, on loopback in a throwaway namespace:
//!
//! - `proxy_1mib/direct|splice|copy`: 1 MiB sent over an open connection,
//!   until the target's one-byte acknowledgement is back; through the
//!   proxy relaying with splice(2) and with tokio's copy_bidirectional.
//! - `proxy_setup/direct|splice|copy`: connect, one byte there and back
//!   (through the proxy the target's connection exists only then), close.
//!
//! The proxy runs on a current_thread runtime of its own thread, as in the
//! supervisor; the target is a plain thread per connection. After
//! criterion, medians of its own runs and the ratios the issue sets:
//! throughput through the proxy at least 80% of direct, setup at most 2x.
//!
//! Needs root for the namespace (`src/bench/sandbox.rs`); without it says
//! so and exits.

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use criterion::Criterion;
use supervisor::proxy::{Forward, Limits, Proxy, TcpRelay};
use supervisor::values::Protocol;

#[path = "../src/bench/sandbox.rs"]
mod sandbox;

const MIB: usize = 1 << 20;

/// Each message is a 4-byte length and that many bytes; the target answers
/// each with one byte.
fn target() -> SocketAddr {
    let listener = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("target listener");
    let addr = listener.local_addr().expect("target address");
    std::thread::spawn(move || {
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
    addr
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

fn main() {
    if let Err(err) = sandbox::enter() {
        eprintln!("benches/proxy: {err}; skipped");
        return;
    }
    let direct = target();
    let spliced = proxy(direct, TcpRelay::Splice);
    let copied = proxy(direct, TcpRelay::Copy);
    let paths = [("direct", direct), ("splice", spliced), ("copy", copied)];
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

    // Medians of our own, interleaved so every path sees the same load.
    let mut streams: Vec<TcpStream> = paths.iter().map(|(_, to)| connect(*to)).collect();
    let mut mib = vec![Vec::new(); paths.len()];
    let mut setups = vec![Vec::new(); paths.len()];
    for _ in 0..15 {
        for (i, (_, to)) in paths.iter().enumerate() {
            mib[i].push(timed(20, || exchange(&mut streams[i], &payload)));
            setups[i].push(timed(40, || setup(*to)));
        }
    }
    let mib: Vec<Duration> = mib.into_iter().map(median).collect();
    let setups: Vec<Duration> = setups.into_iter().map(median).collect();
    for (i, (name, _)) in paths.iter().enumerate() {
        println!(
            "{name:>6}: 1 MiB at {:.0} MiB/s ({:.0}% of direct, target >= 80%); setup {:.1} us ({:.2}x direct, target <= 2x)",
            1.0 / mib[i].as_secs_f64(),
            100.0 * mib[0].as_secs_f64() / mib[i].as_secs_f64(),
            setups[i].as_secs_f64() * 1e6,
            setups[i].as_secs_f64() / setups[0].as_secs_f64(),
        );
    }
}
