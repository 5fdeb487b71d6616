//! One container's network plumbing, alone: veth with the peer created in a
//! fresh netns, lo and eth0 up, address, default route (and hairpin on the
//! host port). The namespace's own creation (~0.5 ms) is not timed.
//!
//! - `plumbing/rtnetlink`: `supervisor::netlink::plumb`, as `run` does it:
//!   it returns once the bridge port forwards, and it also sets the bridge's
//!   forwarding entry and the host's neighbour entry for the container
//!   (what a restart on a reused address needs, tests/churn.rs). It leaves
//!   `lo` to the container's own process, which brings it up meanwhile.
//! - `plumbing/raw_netlink`: the floor: the plumbing's requests over
//!   blocking netlink-sys sockets from one thread, no tokio, no rtnetlink
//!   I/O: veth, eth0's IPv6 sysctls (IPv4 only: IPv6 off), lo and eth0 up,
//!   address, default route, hairpin, and what a container reachable at
//!   once needs, also right after a restart on the same address, which
//!   any tool promising that must do too (each measured missing, see
//!   `netlink::plumb`): inside, the neighbour entry of the gateway (else
//!   the container's first ARP request meets its spoof guard, not yet
//!   there, and it asks again a second later); on the host, the lookup of
//!   the port (it runs the link watcher, so the port forwards at once),
//!   of the bridge (its queueing discipline back after its last port
//!   went), the bridge's forwarding entry and the host's neighbour entry
//!   of the container (the old container's port and an INCOMPLETE entry
//!   hold its traffic otherwise); with IPv6, the same for the IPv6
//!   gateway and address, and the wait for the address's local route
//!   (before it, a SYN to the container is dropped in its namespace). Not
//!   the supervisor's work for a bridge of a thousand ports (no IPv6
//!   address and no multicast route on the host end): a single container
//!   reaches the same state without it.
//! - `network_ready/supervisor`: plumb, then the firewall's publish batch
//!   (the container's spoof-guard entry and one published port), as `run`.
//! - `network_ready/raw floor`: the raw plumbing, then the same two
//!   elements in one nftables batch written by hand over a netlink-sys
//!   socket.
//! - `network_ready/supervisor dual stack` and `raw floor dual stack`: the
//!   same on a dual-stack bridge (its gateway6 added without DAD, untimed),
//!   with one port published on both families: the floor also writes eth0's
//!   IPv6 sysctls (as `sysctl::Setting::container_ipv6`, before eth0 goes
//!   up), adds the IPv6 address without DAD and the IPv6 default route, in
//!   the same requests, and its batch holds the IPv6 elements too.
//!
//! - `network_ready/run ...`: the same as `run` now does it, on a
//!   namespace made as its netns thread makes it (lo up, and eth0's IPv6
//!   settings as the namespace's defaults, untimed with the namespace):
//!   `netlink::plumb_prepared`, which writes no sysctl and uses the
//!   socket that thread opened inside; its floor likewise skips lo and the
//!   sysctls, done with its namespace, and sends the rest as before.
//!
//! After criterion, a phase breakdown (minima, medians and p90 over many
//! runs) with the ratios to the floors.
//!
//! Needs root; the process moves into its own network and mount namespace
//! first (`src/bench/sandbox.rs`), so nothing touches the machine's.
//! Without root it says so and exits.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use criterion::Criterion;
use nix::sched::{CloneFlags, setns, unshare};
use supervisor::firewall::{Firewall, Publication};
use supervisor::netlink::{self, Bridge, ContainerLink, Netlink};
use supervisor::values::{DEFAULT_SUBNET6, HostIp, Owner, Port, Protocol, Subnet, Subnet6};

// The harness is part of the binary, not the library (src/bench/mod.rs):
// these benches include the files they share with it by path.
#[path = "../src/bench/sandbox.rs"]
mod sandbox;

const BRIDGE: &str = "svbench0";
/// The dual-stack bridge, apart, so the IPv4 figures stay IPv4 only.
const BRIDGE6: &str = "svbench6";

fn main() {
    if let Err(err) = sandbox::enter() {
        eprintln!("plumbing bench: {err}; skipped");
        return;
    }
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let subnet: Subnet = "172.31.0.0/16".parse().expect("subnet");
    let subnet_dual: Subnet = "172.30.0.0/16".parse().expect("subnet");
    let subnet6: Subnet6 = DEFAULT_SUBNET6.parse().expect("subnet6");
    let (nl, bridge, bridge6) = runtime.block_on(async {
        let nl = Netlink::connect().expect("netlink");
        let bridge = Bridge {
            name: BRIDGE.into(),
            subnet,
            subnet6: None,
        };
        let ensured = netlink::ensure_bridge_made(&nl, &bridge)
            .await
            .expect("bridge");
        let bridge6 = Bridge {
            name: BRIDGE6.into(),
            subnet: subnet_dual,
            subnet6: Some(subnet6),
        };
        let ensured6 = netlink::ensure_bridge_made(&nl, &bridge6)
            .await
            .expect("dual-stack bridge");
        (nl, ensured, ensured6)
    });
    let state_dir = std::path::Path::new("/run/supervisor-bench");
    let firewall = Firewall::open(state_dir).expect("nftables socket");
    firewall
        .ensure_network(BRIDGE, &subnet, None)
        .expect("base ruleset and network");
    firewall
        .ensure_network(
            BRIDGE6,
            &subnet_dual,
            Some((subnet6.network(), subnet6.prefix_len())),
        )
        .expect("dual-stack network");
    let bench = Bench {
        runtime,
        nl,
        bridge,
        subnet,
        dual: (bridge6, subnet_dual, subnet6),
        host_netns: OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("own netns")),
        raw_host: raw::Socket::open().expect("raw netlink socket"),
        firewall,
        raw_nft: raw_nft::Socket::open().expect("raw netfilter socket"),
        next: 0,
        dual_stack: false,
        prepared: false,
    };

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut bench = bench;
    {
        let mut group = criterion.benchmark_group("plumbing");
        group.bench_function("rtnetlink", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.plumb_once().total).sum())
        });
        group.bench_function("raw_netlink", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.raw_once()).sum())
        });
        group.bench_function("ensure_existing_bridge", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.ensure_bridge_once()).sum())
        });
        group.finish();
        let mut group = criterion.benchmark_group("network_ready");
        group.bench_function("supervisor", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.ready_once().2).sum())
        });
        group.bench_function("raw floor", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.raw_ready_once().2).sum())
        });
        bench.dual_stack = true;
        group.bench_function("supervisor dual stack", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.ready_once().2).sum())
        });
        group.bench_function("raw floor dual stack", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.raw_ready_once().2).sum())
        });
        bench.dual_stack = false;
        bench.prepared = true;
        group.bench_function("run (namespace prepared)", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.ready_once().2).sum())
        });
        group.bench_function("raw floor (namespace prepared)", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.raw_ready_once().2).sum())
        });
        bench.prepared = false;
        group.finish();
    }
    criterion.final_summary();
    bench.breakdown(if bench_mode { 300 } else { 3 });
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    nl: Netlink,
    bridge: netlink::Ensured,
    subnet: Subnet,
    /// The dual-stack bridge, its subnet and subnet6.
    dual: (netlink::Ensured, Subnet, Subnet6),
    host_netns: OwnedFd,
    raw_host: raw::Socket,
    firewall: Firewall,
    raw_nft: raw_nft::Socket,
    next: u64,
    /// The next containers are on the dual-stack bridge.
    dual_stack: bool,
    /// The next namespaces are made ready as `run` makes them (see the
    /// module).
    prepared: bool,
}

/// A fresh network namespace, alive while the fd is open.
fn new_netns() -> OwnedFd {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("netns"))
    })
    .join()
    .expect("netns thread")
}

/// A fresh network namespace made ready as `run`'s netns thread makes it,
/// alive while the fd is open, and its socket inside.
fn prepared_netns(ipv6: bool) -> (OwnedFd, netlink::PreparedNetns) {
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let netns = OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("netns"));
        let prepared = netlink::PreparedNetns::here(ipv6).expect("namespace prepared");
        (netns, prepared)
    })
    .join()
    .expect("netns thread")
}

impl Bench {
    fn spec(&mut self) -> ContainerLink {
        self.next += 1;
        let host_ifname = format!("svb{:x}", self.next);
        if self.dual_stack {
            let (bridge, subnet, subnet6) = self.dual;
            let address = Ipv4Addr::new(172, 30, 0, 2);
            let address6 = subnet6.derive(subnet, address).expect("address6");
            return ContainerLink {
                host_ifname,
                peer: netlink::PEER.into(),
                bridge_index: bridge.index,
                bridge_mac: bridge.mac,
                address,
                subnet,
                ipv6: Some((address6, subnet6)),
                routed: false,
            };
        }
        ContainerLink {
            host_ifname,
            peer: netlink::PEER.into(),
            bridge_index: self.bridge.index,
            bridge_mac: self.bridge.mac,
            address: Ipv4Addr::new(172, 31, 0, 2),
            subnet: self.subnet,
            ipv6: None,
            routed: false,
        }
    }

    fn plumb_once(&mut self) -> netlink::PlumbTimings {
        let spec = self.spec();
        let netns = new_netns();
        // Held as a container's process holds it: without, the namespace
        // and the veth pair go while plumb still sets the host side up.
        let _alive = netns.try_clone().expect("netns fd");
        self.runtime
            .block_on(netlink::plumb(&self.nl, &spec, netns))
            .expect("plumb")
            .timings
    }

    fn raw_once(&mut self) -> Duration {
        let spec = self.spec();
        let netns = new_netns();
        let start = Instant::now();
        raw::plumb(&mut self.raw_host, &self.host_netns, &spec, &netns).expect("raw plumb");
        start.elapsed()
    }

    /// What one container publishes: its spoof guard and one port (dual
    /// stack: its IPv6 guards too, and the port on both families, as
    /// `run --ipv6 -p 8080:8000` does).
    fn publication(spec: &ContainerLink) -> Publication {
        let port = |host_ip| Port {
            host_ip,
            host_port: 8080,
            container_port: 8000,
            protocol: Protocol::Tcp,
        };
        let mut ports = vec![port(HostIp::AnyV4)];
        if spec.ipv6.is_some() {
            ports.push(port(HostIp::AnyV6));
        }
        Publication {
            owner: Owner {
                name: "bench".into(),
                id: spec.host_ifname.clone(),
            },
            address: spec.address,
            address6: spec.ipv6.map(|(address6, _)| address6),
            veth: spec.host_ifname.clone(),
            ports,
            generation: Some(supervisor::values::Generation::random()),
            routed: false,
        }
    }

    /// Plumb, then the publish batch, as `run` does; the elements are
    /// removed again untimed. (plumb, publish, both)
    fn ready_once(&mut self) -> (Duration, Duration, Duration) {
        let spec = self.spec();
        let (netns, prepared) = match self.prepared {
            true => {
                let (netns, prepared) = prepared_netns(spec.ipv6.is_some());
                (netns, Some(prepared))
            }
            false => (new_netns(), None),
        };
        let _alive = netns.try_clone().expect("netns fd");
        let publication = Self::publication(&spec);
        let start = Instant::now();
        let nl = &self.nl;
        self.runtime
            .block_on(async {
                match prepared {
                    Some(prepared) => netlink::plumb_prepared(nl, &spec, netns, prepared).await,
                    None => netlink::plumb(nl, &spec, netns).await,
                }
            })
            .expect("plumb");
        let plumbed = start.elapsed();
        self.firewall.publish(&publication).expect("publish");
        let total = start.elapsed();
        self.firewall.unpublish(&publication).expect("unpublish");
        (plumbed, total - plumbed, total)
    }

    /// The floor of the same: raw plumbing, then one hand-written element
    /// batch. (plumb, batch, both)
    fn raw_ready_once(&mut self) -> (Duration, Duration, Duration) {
        let spec = self.spec();
        let (netns, inside) = match self.prepared {
            true => {
                let (netns, inside) = raw::prepared_netns(spec.ipv6.is_some());
                (netns, Some(inside))
            }
            false => (new_netns(), None),
        };
        let elements = Self::publication(&spec).elements();
        let start = Instant::now();
        match inside {
            Some(inside) => raw::plumb_prepared(&mut self.raw_host, &spec, &netns, inside),
            None => raw::plumb(&mut self.raw_host, &self.host_netns, &spec, &netns),
        }
        .expect("raw plumb");
        let plumbed = start.elapsed();
        self.raw_nft
            .elements(true, &elements)
            .expect("raw element batch");
        let total = start.elapsed();
        self.raw_nft
            .elements(false, &elements)
            .expect("raw element delete");
        (plumbed, total - plumbed, total)
    }

    fn ensure_bridge_once(&mut self) -> Duration {
        let bridge = Bridge {
            name: BRIDGE.into(),
            subnet: self.subnet,
            subnet6: None,
        };
        let start = Instant::now();
        self.runtime
            .block_on(netlink::ensure_bridge(&self.nl, &bridge))
            .expect("bridge");
        start.elapsed()
    }

    /// `plumb`'s phases, and each whole beside its floor.
    fn breakdown(&mut self, runs: usize) {
        let mut rows: Vec<(&str, Vec<Duration>)> = [
            "plumb: veth",
            "plumb: inside (setns, socket, sysctl, eth0)",
            "plumb: host side (forwarding, hairpin, fdb, neigh)",
            "plumb: total",
            "raw netlink floor: total",
            "publish batch (firewall)",
            "raw nft element batch",
            "network ready: plumb + publish",
            "network ready floor: raw + raw nft",
            "dual stack: plumb + publish",
            "dual stack floor: raw + raw nft",
            "run (prepared): plumb + publish",
            "run floor (prepared): raw + raw nft",
            "run dual stack (prepared): plumb + publish",
            "run dual stack floor (prepared): raw + raw nft",
        ]
        .into_iter()
        .map(|name| (name, Vec::with_capacity(runs)))
        .collect();
        for _ in 0..runs {
            let whole = self.plumb_once();
            let raw = self.raw_once();
            let (_, publish, ready) = self.ready_once();
            let (_, raw_batch, raw_ready) = self.raw_ready_once();
            self.dual_stack = true;
            let (_, _, dual_ready) = self.ready_once();
            let (_, _, dual_raw_ready) = self.raw_ready_once();
            self.prepared = true;
            let (_, _, run_dual_ready) = self.ready_once();
            let (_, _, run_dual_raw_ready) = self.raw_ready_once();
            self.dual_stack = false;
            let (_, _, run_ready) = self.ready_once();
            let (_, _, run_raw_ready) = self.raw_ready_once();
            self.prepared = false;
            let all = [
                whole.veth,
                whole.inside,
                whole.host,
                whole.total,
                raw,
                publish,
                raw_batch,
                ready,
                raw_ready,
                dual_ready,
                dual_raw_ready,
                run_ready,
                run_raw_ready,
                run_dual_ready,
                run_dual_raw_ready,
            ];
            for ((_, samples), d) in rows.iter_mut().zip(all) {
                samples.push(d);
            }
        }
        println!("\nplumbing phase breakdown, {runs} runs (min / median / p90):");
        for (name, samples) in &mut rows {
            samples.sort();
            let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
            println!(
                "  {name:<50} {:>7.1} us  {:>7.1} us  {:>7.1} us",
                us(p(0.0)),
                us(p(0.5)),
                us(p(0.9))
            );
        }
        let row = |prefix: &str| {
            let samples = &rows
                .iter()
                .find(|(name, _)| name.starts_with(prefix))
                .expect("row")
                .1;
            (us(samples[0]), us(samples[samples.len() / 2]))
        };
        for (what, ours, floor) in [
            ("plumb / raw floor", "plumb: total", "raw netlink floor"),
            (
                "network ready / floor with its nft batch",
                "network ready:",
                "network ready floor",
            ),
            (
                "dual-stack network ready / dual-stack floor",
                "dual stack:",
                "dual stack floor",
            ),
            (
                "run's network ready / floor, namespace prepared",
                "run (prepared)",
                "run floor (prepared)",
            ),
            (
                "run's dual-stack network ready / floor, namespace prepared",
                "run dual stack (prepared)",
                "run dual stack floor (prepared)",
            ),
        ] {
            let (ours, floor) = (row(ours), row(floor));
            println!(
                "  ratio {what}: {:.2} (minima), {:.2} (medians)",
                ours.0 / floor.0,
                ours.1 / floor.1
            );
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The floor: the same requests as `plumb`, pipelined where `plumb`
/// pipelines them, over blocking sockets from one thread. The socket inside
/// is opened the way a single-threaded C program would: setns there,
/// socket(), setns back.
mod raw {
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};

    use rtnetlink::packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
        NetlinkPayload,
    };
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
    use rtnetlink::packet_route::link::{
        InfoData, InfoKind, InfoPortKind, InfoVeth, LinkAttribute, LinkMessage,
    };
    use rtnetlink::sys::protocols::NETLINK_ROUTE;
    use rtnetlink::{
        AddressMessageBuilder, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
        RouteMessageBuilder,
    };

    use super::{CloneFlags, setns};
    use supervisor::netlink::sysctl::Setting;
    use supervisor::netlink::{
        ContainerLink, forwarding_message, is_local_route_of, mac_for, neighbour_message,
    };

    pub struct Socket {
        inner: rtnetlink::sys::Socket,
        seq: u32,
        /// The IPv6 address whose local route this socket awaits (see
        /// [`Socket::await_local_route`]), and whether its notification
        /// came.
        awaited: Option<(Ipv6Addr, bool)>,
    }

    impl Socket {
        pub fn open() -> io::Result<Socket> {
            Ok(Socket {
                inner: rtnetlink::sys::Socket::new(NETLINK_ROUTE)?,
                seq: 0,
                awaited: None,
            })
        }

        /// The index of link `name` (SIOCGIFINDEX, as `if_nametoindex`).
        fn index_of(&self, name: &str) -> io::Result<u32> {
            // SAFETY: ifreq is plain data, valid all zero.
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            for (to, from) in req.ifr_name.iter_mut().zip(name.bytes().take(15)) {
                *to = from as libc::c_char;
            }
            // SAFETY: req is a valid ifreq for the call, which fills its
            // index.
            if unsafe { libc::ioctl(self.inner.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) } < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: SIOCGIFINDEX filled the union's index.
            Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
        }

        /// From now on, notes the notification of `address6`'s local
        /// route, which the kernel inserts after the request adding the
        /// address has been answered.
        fn listen_for_local_route(&mut self, address6: Ipv6Addr) -> io::Result<()> {
            self.inner.add_membership(libc::RTNLGRP_IPV6_ROUTE)?;
            self.awaited = Some((address6, false));
            Ok(())
        }

        /// Reads notifications until the awaited local route came.
        fn await_local_route(&mut self) -> io::Result<()> {
            let mut buf = vec![0u8; 8192];
            while matches!(self.awaited, Some((_, false))) {
                let n = self.inner.recv(&mut &mut buf[..], 0)?;
                self.note(&buf[..n]);
            }
            Ok(())
        }

        /// Notes the notifications among `datagram`'s messages.
        fn note(&mut self, datagram: &[u8]) {
            let mut rest = datagram;
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if seq == 0
                    && let Some((address6, came)) = self.awaited.as_mut()
                    && let Ok(msg) =
                        NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                    && let NetlinkPayload::InnerMessage(notification) = msg.payload
                {
                    *came |= is_local_route_of(&notification, *address6);
                }
                rest = &rest[len.clamp(16, rest.len())..];
            }
        }

        /// Sends every request, then reads one answer per request; returns
        /// the link messages among the answers.
        fn exchange(
            &mut self,
            requests: Vec<(RouteNetlinkMessage, u16)>,
        ) -> io::Result<Vec<LinkMessage>> {
            let count = requests.len();
            let mut buf = vec![0u8; 4096];
            for (payload, flags) in requests {
                let mut msg = NetlinkMessage::from(payload);
                self.seq += 1;
                msg.header.flags = flags;
                msg.header.sequence_number = self.seq;
                msg.finalize();
                msg.serialize(&mut buf[..msg.buffer_len()]);
                self.inner.send(&buf[..msg.buffer_len()], 0)?;
            }
            let mut links = Vec::new();
            let mut answered = 0;
            while answered < count {
                let fd = self.inner.as_raw_fd();
                // SAFETY: buf is valid for buf.len() bytes for the call.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                self.note(&buf[..n as usize]);
                let mut rest = &buf[..n as usize];
                while rest.len() >= 16 {
                    let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                    if seq == 0 {
                        // A notification, not an answer.
                        rest = &rest[len.clamp(16, rest.len())..];
                        continue;
                    }
                    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    match msg.payload {
                        NetlinkPayload::Error(err) if err.code.is_some() => return Err(err.to_io()),
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                            links.push(link)
                        }
                        _ => {}
                    }
                    answered += 1;
                    rest = &rest[len.min(rest.len())..];
                }
            }
            Ok(links)
        }
    }

    const ACKED: u16 = NLM_F_REQUEST | NLM_F_ACK;
    const CREATE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    const REPLACE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;

    /// The neighbour entry for `address` on link `index`, at `mac`, as
    /// the supervisor sets it.
    fn neighbour_entry(index: u32, address: IpAddr, mac: [u8; 6]) -> (RouteNetlinkMessage, u16) {
        let entry = neighbour_message(index, address, mac);
        (RouteNetlinkMessage::NewNeighbour(entry), REPLACE)
    }

    /// The bridge's forwarding entry for `mac` on port `port`.
    fn forwarding_entry(port: u32, mac: [u8; 6]) -> (RouteNetlinkMessage, u16) {
        let entry = forwarding_message(port, mac);
        (RouteNetlinkMessage::NewNeighbour(entry), REPLACE)
    }

    /// The lookup of link `index`.
    fn lookup(index: u32) -> (RouteNetlinkMessage, u16) {
        let mut get = LinkMessage::default();
        get.header.index = index;
        (RouteNetlinkMessage::GetLink(get), NLM_F_REQUEST)
    }

    /// A fresh network namespace made ready as `run`'s netns thread makes
    /// it (lo up, eth0's IPv6 settings as its defaults), and a socket
    /// inside, from a thread that unshares.
    pub fn prepared_netns(ipv6: bool) -> (OwnedFd, Socket) {
        std::thread::spawn(move || {
            super::unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            let netns =
                OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net").expect("netns"));
            let mut inside = Socket::open().expect("socket inside");
            let lo_up = LinkUnspec::new_with_index(1).up().build();
            inside
                .exchange(vec![(RouteNetlinkMessage::NewLink(lo_up), ACKED)])
                .expect("lo up");
            let settings = match ipv6 {
                true => Setting::container_ipv6("default"),
                false => vec![Setting::disable_ipv6("default", true)],
            };
            for setting in settings {
                setting.apply().expect("default sysctl");
            }
            (netns, inside)
        })
        .join()
        .expect("netns thread")
    }

    /// [`plumb`] of a namespace from [`prepared_netns`]: no lo, no
    /// sysctl, and the socket inside is the one that came with it.
    pub fn plumb_prepared(
        host: &mut Socket,
        spec: &ContainerLink,
        netns: &OwnedFd,
        inside: Socket,
    ) -> io::Result<()> {
        create_veth(host, spec, netns)?;
        configure(host, spec, inside, false)
    }

    pub fn plumb(
        host: &mut Socket,
        host_netns: &OwnedFd,
        spec: &ContainerLink,
        netns: &OwnedFd,
    ) -> io::Result<()> {
        create_veth(host, spec, netns)?;
        setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        let inside = Socket::open();
        // While in there: eth0's IPv6 sysctls, before it goes up, so its
        // link-local address is never tentative. Without IPv6 on the
        // bridge, IPv6 off on eth0: required work, not ours to skip (issue
        // 14, "off means off": no link-local address, nothing configured
        // from a stray router advertisement), so the IPv4 floor writes it
        // as the supervisor does.
        let settings = match spec.ipv6 {
            Some(_) => Setting::container_ipv6("eth0"),
            None => vec![Setting::disable_ipv6("eth0", true)],
        };
        let sysctls = settings
            .iter()
            .try_for_each(|s| s.apply().map(drop))
            .map_err(io::Error::other);
        setns(host_netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        sysctls?;
        configure(host, spec, inside?, true)
    }

    /// The veth pair, its peer created in `netns`, one queue each way on
    /// each end, as `run` makes it (with the kernel's default of a queue
    /// per CPU, each end waits for an RCU grace period as it is cut back).
    fn create_veth(host: &mut Socket, spec: &ContainerLink, netns: &OwnedFd) -> io::Result<()> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name("eth0")
            .address(mac_for(spec.address).to_vec())
            .append_extra_attribute(LinkAttribute::NetNsFd(netns.as_raw_fd()))
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host_ifname.clone())
            .controller(spec.bridge_index)
            .up()
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        host.exchange(vec![(RouteNetlinkMessage::NewLink(veth), CREATE)])?;
        Ok(())
    }

    /// Inside over `inside` (lo up too with `lo`), then the host side.
    fn configure(
        host: &mut Socket,
        spec: &ContainerLink,
        mut inside: Socket,
        lo: bool,
    ) -> io::Result<()> {
        let mut get = LinkMessage::default();
        get.attributes.push(LinkAttribute::IfName("eth0".into()));
        let mut first = vec![(RouteNetlinkMessage::GetLink(get), NLM_F_REQUEST)];
        if lo {
            let lo_up = LinkUnspec::new_with_index(1).up().build();
            first.push((RouteNetlinkMessage::NewLink(lo_up), ACKED));
        }
        let links = inside.exchange(first)?;
        let eth0 = links
            .first()
            .map(|l| l.header.index)
            .ok_or_else(|| io::Error::other("no eth0"))?;
        let up = LinkUnspec::new_with_index(eth0).up().build();
        let addr = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(eth0)
            .address(spec.address, spec.subnet.prefix_len())
            .build();
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(spec.subnet.gateway())
            .build();
        let mac = mac_for(spec.address);
        let bridge_mac = spec
            .bridge_mac
            .ok_or_else(|| io::Error::other("no bridge MAC"))?;
        let mut requests = vec![
            (RouteNetlinkMessage::NewLink(up), ACKED),
            (RouteNetlinkMessage::NewAddress(addr), CREATE),
            (RouteNetlinkMessage::NewRoute(route), CREATE),
            neighbour_entry(eth0, IpAddr::V4(spec.subnet.gateway()), bridge_mac),
        ];
        if let Some((address6, subnet6)) = spec.ipv6 {
            inside.listen_for_local_route(address6)?;
            let mut addr6 = AddressMessageBuilder::<Ipv6Addr>::new()
                .index(eth0)
                .address(address6, subnet6.prefix_len())
                .build();
            addr6.header.flags = AddressHeaderFlags::Nodad;
            addr6
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
            let route6 = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(subnet6.gateway())
                .output_interface(eth0)
                .build();
            requests.extend([
                (RouteNetlinkMessage::NewAddress(addr6), CREATE),
                (RouteNetlinkMessage::NewRoute(route6), CREATE),
                neighbour_entry(eth0, IpAddr::V6(subnet6.gateway()), bridge_mac),
            ]);
        }
        inside.exchange(requests)?;

        let hairpin = LinkMessageBuilder::<LinkBridgePort>::default()
            .name(spec.host_ifname.clone())
            .set_port_kind(InfoPortKind::Bridge)
            .hairpin(true)
            .build();
        let port = host.index_of(&spec.host_ifname)?;
        let mut requests = vec![
            lookup(port),
            lookup(spec.bridge_index),
            (RouteNetlinkMessage::NewLink(hairpin), ACKED),
            forwarding_entry(port, mac),
            neighbour_entry(spec.bridge_index, IpAddr::V4(spec.address), mac),
        ];
        if let Some((address6, _)) = spec.ipv6 {
            requests.push(neighbour_entry(
                spec.bridge_index,
                IpAddr::V6(address6),
                mac,
            ));
        }
        host.exchange(requests)?;
        inside.await_local_route()
    }
}

/// One nftables element batch written by hand: BATCH_BEGIN, one NEWSETELEM
/// (or DELSETELEM) message per element, BATCH_END, in one sendmsg over a
/// netlink-sys socket; then every ack read. The keys and data are the
/// firewall's plan (`Publication::elements`): only the bytes around them
/// are written here.
mod raw_nft {
    use std::io;
    use std::os::fd::AsRawFd;

    use netlink_sys::{Socket as NlSocket, SocketAddr, protocols::NETLINK_NETFILTER};
    use supervisor::firewall::PlannedElement;

    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_NEWSETELEM: u16 = 12;
    const NFT_MSG_DELSETELEM: u16 = 14;
    const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
    const NFNL_MSG_BATCH_END: u16 = 0x11;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    const NLM_F_EXCL: u16 = 0x200;
    const NLM_F_CREATE: u16 = 0x400;
    const NLMSG_ERROR: u16 = 2;
    const NLA_F_NESTED: u16 = 0x8000;

    pub struct Socket {
        inner: NlSocket,
        seq: u32,
    }

    fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(payload);
        buf.resize(buf.len().next_multiple_of(4), 0);
    }

    fn nest(buf: &mut Vec<u8>, ty: u16, inner: impl FnOnce(&mut Vec<u8>)) {
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        inner(buf);
        let len = (buf.len() - start) as u16;
        buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    /// nlmsghdr + nfgenmsg, then `body`'s attributes.
    fn message(
        buf: &mut Vec<u8>,
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
        body: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[family, 0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        body(buf);
        let len = (buf.len() - start) as u32;
        buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    impl Socket {
        pub fn open() -> io::Result<Socket> {
            let mut inner = NlSocket::new(NETLINK_NETFILTER)?;
            inner.bind(&SocketAddr::new(0, 0))?;
            Ok(Socket { inner, seq: 0 })
        }

        /// Adds (`add`) or deletes the planned elements in one batch.
        pub fn elements(&mut self, add: bool, elements: &[PlannedElement]) -> io::Result<()> {
            let mut buf = Vec::with_capacity(512);
            self.seq += 1;
            message(
                &mut buf,
                NFNL_MSG_BATCH_BEGIN,
                NLM_F_REQUEST,
                self.seq,
                0,
                NFNL_SUBSYS_NFTABLES,
                |_| {},
            );
            let (ty, flags) = if add {
                (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL)
            } else {
                (NFT_MSG_DELSETELEM, 0)
            };
            for e in elements {
                self.seq += 1;
                // NFPROTO_*: the table's family (ip, ip6 or bridge).
                let family = e.target.family() as u8;
                message(
                    &mut buf,
                    (NFNL_SUBSYS_NFTABLES << 8) | ty,
                    NLM_F_REQUEST | NLM_F_ACK | flags,
                    self.seq,
                    family,
                    0,
                    |m| {
                        attr(m, 1, b"supervisor\0");
                        attr(m, 2, format!("{}\0", e.target.name()).as_bytes());
                        nest(m, 3, |m| {
                            nest(m, 1, |m| {
                                nest(m, 1, |m| attr(m, 1, &e.key));
                                if let (true, Some(data)) = (add, &e.data) {
                                    nest(m, 2, |m| attr(m, 1, data));
                                }
                            })
                        });
                    },
                );
            }
            self.seq += 1;
            message(
                &mut buf,
                NFNL_MSG_BATCH_END,
                NLM_F_REQUEST,
                self.seq,
                0,
                NFNL_SUBSYS_NFTABLES,
                |_| {},
            );
            self.inner.send(&buf, 0)?;
            let mut acked = 0;
            let mut rx = vec![0u8; 8192];
            while acked < elements.len() {
                // SAFETY: rx is valid for rx.len() bytes for the call.
                let n = unsafe {
                    libc::recv(self.inner.as_raw_fd(), rx.as_mut_ptr().cast(), rx.len(), 0)
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut rest = &rx[..n as usize];
                while rest.len() >= 20 {
                    let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let ty = u16::from_ne_bytes([rest[4], rest[5]]);
                    if ty == NLMSG_ERROR {
                        let errno = i32::from_ne_bytes([rest[16], rest[17], rest[18], rest[19]]);
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        acked += 1;
                    }
                    rest = &rest[len.next_multiple_of(4).clamp(20, rest.len())..];
                }
            }
            Ok(())
        }
    }
}
