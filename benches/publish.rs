//! One container's publish and unpublish batches (its spoof-guard entry and
//! one published port) through `supervisor::firewall`, with 0, 1,000 and
//! 10,000 other containers' ports already published: the cost of the
//! 10,000th container should be the cost of the first.
//!
//! The ports already there are `supervisor bench --scale`'s fillers, added
//! in one batch. The process moves into a throwaway network and mount
//! namespace first (`src/bench/sandbox.rs`); without root it says so
//! and exits.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use supervisor::firewall::{Firewall, Publication};
use supervisor::values::{HostIp, Owner, Port, Protocol, Subnet};

// The harness is part of the binary, not the library (src/bench/mod.rs):
// these benches include the files they share with it by path.
#[path = "../src/bench/sandbox.rs"]
mod sandbox;
// Only part of it is used here, and its unit tests run with the binary.
#[allow(dead_code, unused_imports)]
#[path = "../src/bench/scale.rs"]
mod scale;

const BRIDGE: &str = "sv0";

fn container() -> Publication {
    Publication {
        owner: Owner {
            name: "measured".into(),
            id: "0123456789ab".into(),
        },
        address: Ipv4Addr::new(172, 16, 0, 2),
        address6: None,
        veth: "sv-0123456789ab".into(),
        ports: vec![Port {
            host_ip: HostIp::AnyV4,
            host_port: 8080,
            container_port: 8000,
            protocol: Protocol::Tcp,
        }],
        // A container's batch holds its generation too.
        generation: supervisor::values::Generation::new(0x8f3a_0c11),
        routed: false,
    }
}

fn main() {
    if let Err(err) = sandbox::enter() {
        eprintln!("benches/publish: {err}; skipped");
        return;
    }
    let subnet: Subnet = "172.16.0.0/16".parse().expect("subnet");
    let firewall = Firewall::open(Path::new("/run/supervisor-bench")).expect("nftables socket");
    firewall
        .ensure_network(BRIDGE, &subnet, None)
        .expect("base ruleset and network");
    let measured = container();
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("publish batch");
    let mut present = 0;
    for count in [0, 1_000, 10_000] {
        scale::prepublish(&firewall, present..count, &subnet).expect("pre-publish");
        present = count;
        group.bench_function(BenchmarkId::new("publish", count), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let t = Instant::now();
                        firewall.publish(&measured).expect("publish");
                        let elapsed = t.elapsed();
                        firewall.unpublish(&measured).expect("unpublish");
                        elapsed
                    })
                    .sum()
            })
        });
        group.bench_function(BenchmarkId::new("unpublish", count), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        firewall.publish(&measured).expect("publish");
                        let t = Instant::now();
                        firewall.unpublish(&measured).expect("unpublish");
                        t.elapsed()
                    })
                    .sum()
            })
        });
    }
    group.finish();
    c.final_summary();
}
