//! Forgetting a container's published UDP port at its exit
//! (`conntrack::forget`): an IPv4 container's by flushes the kernel
//! filters, against the walk a dual-stack container's still takes (a dump
//! of the whole conntrack hash, deleting what matches), with 0 and 100
//! other entries tracked.
//!
//! The process moves into a throwaway network and mount namespace first
//! (`src/bench/sandbox.rs`); without root it says so and exits. The other
//! entries are made with `conntrack -I` (Debian package conntrack).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use supervisor::conntrack::forget;
use supervisor::values::Protocol;

#[path = "../src/bench/sandbox.rs"]
mod sandbox;

/// `count` UDP entries of another port, none the forgetting deletes.
fn track_others(from: u16, count: u16) {
    for sport in from..from + count {
        let args = format!(
            "-I -p udp -s 127.0.0.1 -d 127.0.0.1 --sport {sport} --dport 9999 \
             --reply-src 172.16.0.3 --reply-dst 127.0.0.1 --reply-port-src 8000 \
             --reply-port-dst {sport} --timeout 600"
        );
        let status = Command::new("conntrack")
            .args(args.split_whitespace())
            .output()
            .expect("conntrack (package conntrack)")
            .status;
        assert!(status.success(), "conntrack {args}");
    }
}

fn main() {
    if let Err(err) = sandbox::enter() {
        eprintln!("benches/conntrack: {err}; skipped");
        return;
    }
    let ports = [(Protocol::Udp, 8080)];
    let ipv4 = [IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2))];
    let dual_stack = [ipv4[0], "fd53:7570:6572::2".parse().expect("address")];
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("forget a UDP port");
    let mut tracked = 0;
    for others in [0, 100] {
        track_others(10_000 + tracked, others - tracked);
        tracked = others;
        group.bench_function(BenchmarkId::new("ipv4, filtered flush", others), |b| {
            b.iter(|| forget(&ports, Some(&ipv4)).expect("forget"))
        });
        group.bench_function(BenchmarkId::new("dual stack, walk", others), |b| {
            b.iter(|| forget(&ports, Some(&dual_stack)).expect("forget"))
        });
    }
    group.finish();
    c.final_summary();
}
