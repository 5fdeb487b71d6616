//! One container's network plumbing, alone: veth with the peer created in a
//! fresh netns, lo and eth0 up, address, default route (and hairpin on the
//! host port). The namespace's own creation (~0.5 ms) is not timed.
//!
//! - `plumbing/rtnetlink`: `supervisor::netlink::plumb`, as `run` does it.
//! - `plumbing/raw_netlink`: the same requests over blocking netlink-sys
//!   sockets from one thread, no tokio, no rtnetlink I/O: the floor.
//!
//! After criterion, a phase breakdown (medians over many runs).
//!
//! Needs root; the process moves into its own network namespace first, so
//! nothing touches the machine's. Without root it says so and exits.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use criterion::Criterion;
use nix::sched::{CloneFlags, setns, unshare};
use supervisor::ipam::Subnet;
use supervisor::netlink::{self, Bridge, ContainerLink, Netlink};

const BRIDGE: &str = "svbench0";

fn main() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "plumbing bench: needs root (it creates links in its own network namespace); skipped"
        );
        return;
    }
    unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let subnet: Subnet = "172.31.0.0/16".parse().expect("subnet");
    let (nl, bridge_index) = runtime.block_on(async {
        let nl = Netlink::connect().expect("netlink");
        let bridge = Bridge {
            name: BRIDGE.into(),
            subnet,
        };
        let index = netlink::ensure_bridge(&nl, &bridge).await.expect("bridge");
        (nl, index)
    });
    let bench = Bench {
        runtime,
        nl,
        bridge_index,
        subnet,
        host_netns: OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("own netns")),
        raw_host: raw::Socket::open().expect("raw netlink socket"),
        next: 0,
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
    }
    criterion.final_summary();
    bench.breakdown(if bench_mode { 300 } else { 3 });
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    nl: Netlink,
    bridge_index: u32,
    subnet: Subnet,
    host_netns: OwnedFd,
    raw_host: raw::Socket,
    next: u64,
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

impl Bench {
    fn spec(&mut self) -> ContainerLink {
        self.next += 1;
        ContainerLink {
            host_ifname: format!("svb{:x}", self.next),
            bridge_index: self.bridge_index,
            address: Ipv4Addr::new(172, 31, 0, 2),
            subnet: self.subnet,
        }
    }

    fn plumb_once(&mut self) -> netlink::PlumbTimings {
        let spec = self.spec();
        let netns = new_netns();
        self.runtime
            .block_on(netlink::plumb(&self.nl, &spec, netns))
            .expect("plumb")
    }

    fn raw_once(&mut self) -> Duration {
        let spec = self.spec();
        let netns = new_netns();
        let start = Instant::now();
        raw::plumb(&mut self.raw_host, &self.host_netns, &spec, &netns).expect("raw plumb");
        start.elapsed()
    }

    fn ensure_bridge_once(&mut self) -> Duration {
        let bridge = Bridge {
            name: BRIDGE.into(),
            subnet: self.subnet,
        };
        let start = Instant::now();
        self.runtime
            .block_on(netlink::ensure_bridge(&self.nl, &bridge))
            .expect("bridge");
        start.elapsed()
    }

    /// Each step of `plumb` run on its own, in turn, then `plumb` itself.
    fn breakdown(&mut self, runs: usize) {
        let mut rows: Vec<(&str, Vec<Duration>)> = [
            "socket_in (thread + setns + socket)",
            "create_veth (peer in netns)",
            "configure_inside (lo, eth0, addr, route)",
            "set_hairpin",
            "plumb: veth ∥ socket",
            "plumb: hairpin ∥ inside",
            "plumb: total",
            "raw netlink floor: total",
        ]
        .into_iter()
        .map(|name| (name, Vec::with_capacity(runs)))
        .collect();
        for _ in 0..runs {
            let spec = self.spec();
            let netns = new_netns();
            let nl = &self.nl;
            let steps = self.runtime.block_on(async {
                let t = Instant::now();
                let socket = netlink::socket_in(netns.as_fd()).await.expect("socket");
                let socket_in = t.elapsed();
                let t = Instant::now();
                let mac = netlink::mac_for(spec.address);
                netlink::create_veth(
                    nl,
                    &spec.host_ifname,
                    spec.bridge_index,
                    "eth0",
                    mac,
                    netns.as_fd(),
                )
                .await
                .expect("veth");
                let veth = t.elapsed();
                let t = Instant::now();
                netlink::configure_inside(socket, spec.address, spec.subnet)
                    .await
                    .expect("inside");
                let inside = t.elapsed();
                let t = Instant::now();
                netlink::set_hairpin(nl, &spec.host_ifname)
                    .await
                    .expect("hairpin");
                [socket_in, veth, inside, t.elapsed()]
            });
            drop(netns);
            let whole = self.plumb_once();
            let raw = self.raw_once();
            let all = steps
                .into_iter()
                .chain([whole.veth, whole.configure, whole.total, raw]);
            for ((_, samples), d) in rows.iter_mut().zip(all) {
                samples.push(d);
            }
        }
        println!("\nplumbing phase breakdown, {runs} runs (median / p90):");
        for (name, samples) in &mut rows {
            samples.sort();
            let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
            println!(
                "  {name:<44} {:>7.1} us  {:>7.1} us",
                us(p(0.5)),
                us(p(0.9))
            );
        }
        let median = |i: usize| us(rows[i].1[rows[i].1.len() / 2]);
        println!(
            "  ratio plumb / raw floor (medians): {:.2}",
            median(6) / median(7)
        );
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
    use std::net::Ipv4Addr;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};

    use rtnetlink::packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
    };
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::link::{
        InfoData, InfoKind, InfoPortKind, InfoVeth, LinkAttribute, LinkMessage,
    };
    use rtnetlink::sys::protocols::NETLINK_ROUTE;
    use rtnetlink::{
        AddressMessageBuilder, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
        RouteMessageBuilder,
    };

    use super::{CloneFlags, setns};
    use supervisor::netlink::{ContainerLink, mac_for};

    pub struct Socket {
        inner: rtnetlink::sys::Socket,
        seq: u32,
    }

    impl Socket {
        pub fn open() -> io::Result<Socket> {
            Ok(Socket {
                inner: rtnetlink::sys::Socket::new(NETLINK_ROUTE)?,
                seq: 0,
            })
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
                let mut rest = &buf[..n as usize];
                while rest.len() >= 16 {
                    let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
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

    pub fn plumb(
        host: &mut Socket,
        host_netns: &OwnedFd,
        spec: &ContainerLink,
        netns: &OwnedFd,
    ) -> io::Result<()> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name("eth0")
            .address(mac_for(spec.address).to_vec())
            .append_extra_attribute(LinkAttribute::NetNsFd(netns.as_raw_fd()))
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host_ifname.clone())
            .controller(spec.bridge_index)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        host.exchange(vec![(RouteNetlinkMessage::NewLink(veth), CREATE)])?;

        setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        let inside = Socket::open();
        setns(host_netns.as_fd(), CloneFlags::CLONE_NEWNET)?;
        let mut inside = inside?;
        let mut get = LinkMessage::default();
        get.attributes.push(LinkAttribute::IfName("eth0".into()));
        let lo_up = LinkUnspec::new_with_index(1).up().build();
        let links = inside.exchange(vec![
            (RouteNetlinkMessage::GetLink(get), NLM_F_REQUEST),
            (RouteNetlinkMessage::NewLink(lo_up), ACKED),
        ])?;
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
        inside.exchange(vec![
            (RouteNetlinkMessage::NewLink(up), ACKED),
            (RouteNetlinkMessage::NewAddress(addr), CREATE),
            (RouteNetlinkMessage::NewRoute(route), CREATE),
        ])?;
        drop(inside);

        let hairpin = LinkMessageBuilder::<LinkBridgePort>::default()
            .name(spec.host_ifname.clone())
            .set_port_kind(InfoPortKind::Bridge)
            .hairpin(true)
            .build();
        host.exchange(vec![(RouteNetlinkMessage::NewLink(hairpin), ACKED)])?;
        Ok(())
    }
}
