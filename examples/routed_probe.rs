//! Scratch harness for docs/routed-probe.md: the kernel side of one CNI ADD
//! and DEL, bridge mode (as `netlink::plumb` does it today) against routed
//! mode (a veth per container, no bridge), with N containers attached
//! beforehand, each in a network namespace of its own.
//!
//! Run it as root in a throwaway namespace only (it makes links, routes and
//! writes sysctls in the namespace it runs in):
//!   netns-sandbox target/.../examples/routed_probe bridge|routed N SAMPLES [PAUSE_MS]
//!     [--route-first] [--rp-in-create] [--keep]
//! Prints one line per run: min/p50/p90 (us) of ADD and its steps, its
//! thread CPU, DEL (the host end's removal) and its CPU, and the
//! namespace's end (see docs/routed-probe.md). `--route-first`: DEL
//! deletes the routed /32 before the link; `--choose-index`: the creating
//! request picks the host end's index, and the /32 goes in the same
//! message; `--rp-in-create`: rp_filter in
//! the creating request (the kernel refuses it); `--keep`: no DEL.
//! PROBE_READY_FILE: written, then 2 s of sleep, before the samples (for
//! a profiler). Not part of the product: no error type, exits on the first
//! failure.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkBuffer,
    NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth,
    LinkAttribute, LinkExtentMask, LinkMessage, LinkProtoInfoBridge,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage as M};
use rtnetlink::{AddressMessageBuilder, LinkMessageBuilder, LinkUnspec, LinkVeth};
use rtnetlink::{RouteMessageBuilder, packet_route::route::RouteFlags};

const MODIFY: u16 = NLM_F_REQUEST | NLM_F_ACK;
const CREATE: u16 = MODIFY | NLM_F_CREATE | NLM_F_EXCL;
const REPLACE: u16 = MODIFY | NLM_F_CREATE | NLM_F_REPLACE;
const LOOKUP: u16 = NLM_F_REQUEST;

const BRIDGE: &str = "probe-br0";
const GW_DEV: &str = "probe-gw0";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const BRIDGE_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x58, 0x00, 0x01];
/// Every routed host end has the same MAC (Calico's choice): the
/// container's gateway entry is known before the pair exists.
const HOST_MAC: [u8; 6] = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
/// The interface group of every routed host end (IFLA_GROUP), what a
/// ruleset could key a routed network by (`iifgroup`).
const GROUP: u32 = 88;
/// IFLA_INET_CONF, and IPV4_DEVCONF_RP_FILTER (linux/ip.h, 1-based).
const IFLA_INET_CONF: u16 = 1;
const IPV4_DEVCONF_RP_FILTER: u16 = 8;
/// `--choose-index`: container i's host end gets index INDEX_BASE + i.
const INDEX_BASE: u32 = 100_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bridge,
    Routed,
}

struct Nl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Nl {
    fn open() -> io::Result<Nl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Nl {
            socket,
            seq: 0,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends every request in one datagram; each one's error, in order
    /// (a lookup's answer counts as success).
    fn pipeline(&mut self, requests: Vec<(M, u16)>) -> io::Result<Vec<io::Result<Option<M>>>> {
        let first = self.seq + 1;
        let mut out = Vec::new();
        for (message, flags) in &requests {
            self.seq += 1;
            let mut request = NetlinkMessage::from(message.clone());
            request.header.flags = *flags;
            request.header.sequence_number = self.seq;
            request.finalize();
            let start = out.len();
            out.resize(start + request.buffer_len(), 0);
            request.serialize(&mut out[start..]);
        }
        self.socket.send(&out, 0)?;
        let mut outcomes: Vec<Option<io::Result<Option<M>>>> =
            requests.iter().map(|_| None).collect();
        let mut pending = requests.len();
        while pending > 0 {
            self.buf.clear();
            self.socket.recv(&mut self.buf, 0)?;
            let mut offset = 0;
            while offset < self.buf.len() {
                let bytes = &self.buf[offset..];
                let buffer = NetlinkBuffer::new_checked(bytes).map_err(invalid)?;
                let len = buffer.length() as usize;
                let msg = NetlinkMessage::<M>::deserialize(&bytes[..len]).map_err(invalid)?;
                offset += (len + 3) & !3;
                let Some(i) = msg.header.sequence_number.checked_sub(first) else {
                    continue;
                };
                let Some(slot) = outcomes.get_mut(i as usize) else {
                    continue;
                };
                if slot.is_some() {
                    continue;
                }
                let outcome = match msg.payload {
                    NetlinkPayload::Error(err) => match err.code {
                        None => Ok(None),
                        Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                    },
                    NetlinkPayload::InnerMessage(inner) => Ok(Some(inner)),
                    _ => continue,
                };
                *slot = Some(outcome);
                pending -= 1;
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Ok(None)))
            .collect())
    }

    /// As `pipeline`, the first failure an error naming its request.
    fn all(&mut self, what: &str, requests: Vec<(M, u16)>) -> io::Result<Vec<Option<M>>> {
        self.pipeline(requests)?
            .into_iter()
            .enumerate()
            .map(|(i, o)| o.map_err(|e| io::Error::new(e.kind(), format!("{what} #{i}: {e}"))))
            .collect()
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn index_of(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(invalid)?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn netns_fd() -> io::Result<OwnedFd> {
    let path = c"/proc/thread-self/ns/net";
    // SAFETY: a valid path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setns(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: a namespace descriptor.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A container's namespace as an engine hands it over: lo up, and IPv6
/// off by default (what our ADD lends while creating the peer).
fn new_container_netns(host: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: unshare of this thread's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = netns_fd()?;
    std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")?;
    let mut nl = Nl::open()?;
    nl.all(
        "lo up",
        vec![(
            M::SetLink(LinkUnspec::new_with_index(1).up().build()),
            MODIFY,
        )],
    )?;
    setns(host)?;
    Ok(fd)
}

/// A netlink socket inside `netns`.
fn open_inside(netns: &OwnedFd, host: &OwnedFd) -> io::Result<Nl> {
    setns(netns)?;
    let nl = Nl::open();
    setns(host)?;
    nl
}

fn address_of(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 88, 1 + (i / 250) as u8, 2 + (i % 250) as u8)
}

fn mac_of(a: Ipv4Addr) -> [u8; 6] {
    supervisor::netlink::mac_for(a)
}

fn af_spec_no_ipv6() -> LinkAttribute {
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
        In6AddrGenMode::None,
    )])])
}

/// IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { RP_FILTER = 1 } } }.
fn af_spec_rp_filter() -> AfSpecUnspec {
    let mut conf = Vec::new();
    conf.extend_from_slice(&8u16.to_ne_bytes());
    conf.extend_from_slice(&IPV4_DEVCONF_RP_FILTER.to_ne_bytes());
    conf.extend_from_slice(&1u32.to_ne_bytes());
    AfSpecUnspec::Inet(vec![AfSpecInet::Other(DefaultNla::new(
        IFLA_INET_CONF,
        conf,
    ))])
}

/// The same entries `plumb` sets (STALE, learned externally).
fn neighbour(ifindex: u32, address: Ipv4Addr, mac: [u8; 6]) -> M {
    M::NewNeighbour(supervisor::netlink::neighbour_message(
        ifindex,
        address.into(),
        mac,
    ))
}

fn fdb_entry(port: u32, mac: [u8; 6]) -> M {
    M::NewNeighbour(supervisor::netlink::forwarding_message(port, mac))
}

fn lookup(index: u32) -> M {
    let mut m = LinkUnspec::new_with_index(index).build();
    m.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    M::GetLink(m)
}

fn hairpin(port: u32) -> M {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.header.index = port;
    m.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
        LinkProtoInfoBridge::Other(DefaultNla::new(4, vec![1])),
    ]));
    M::SetLink(m)
}

fn no_multicast_route(oif: u32) -> M {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    m.header.destination_prefix_length = 8;
    m.header.table = 255;
    m.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet6("ff00::".parse().expect("address"))),
        RouteAttribute::Oif(oif),
    ];
    M::DelRoute(m)
}

/// How an ADD is sent (see the flags in the module's comment).
#[derive(Clone, Copy)]
struct Opts {
    rp_in_create: bool,
    choose_index: bool,
}

struct Times {
    create: Duration,
    inside: Duration,
    host: Duration,
    cpu: Duration,
    running: bool,
}

/// One ADD's kernel requests, in `plumb`'s order: the pair (host side),
/// inside, then the host's side of the port.
fn add(
    mode: Mode,
    host: &mut Nl,
    host_ns: &OwnedFd,
    netns: &OwnedFd,
    i: usize,
    bridge: u32,
    opts: Opts,
) -> io::Result<Times> {
    let Opts {
        rp_in_create,
        choose_index,
    } = opts;
    let chosen_index = choose_index.then_some(INDEX_BASE + i as u32);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let name = format!("pv{i:08x}");
    let address = address_of(i);
    let mac = mac_of(address);
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name("eth0")
        .address(mac.to_vec())
        .append_extra_attribute(LinkAttribute::NetNsFd(netns.as_raw_fd()))
        .append_extra_attribute(LinkAttribute::NumTxQueues(1))
        .append_extra_attribute(LinkAttribute::NumRxQueues(1))
        .build();
    let mut builder = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(&name)
        .append_extra_attribute(LinkAttribute::NumTxQueues(1))
        .append_extra_attribute(LinkAttribute::NumRxQueues(1));
    builder = match mode {
        Mode::Bridge => builder.controller(bridge),
        Mode::Routed => {
            let b = builder.address(HOST_MAC.to_vec()).link_group(GROUP);
            if rp_in_create {
                b.append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![af_spec_rp_filter()]))
            } else {
                b
            }
        }
    };
    let create = builder
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    let mut no_ipv6 = LinkUnspec::new_with_name(&name).build();
    no_ipv6.attributes.push(af_spec_no_ipv6());
    if mode == Mode::Routed && !rp_in_create {
        if let Some(LinkAttribute::AfSpecUnspec(specs)) = no_ipv6.attributes.last_mut() {
            specs.push(af_spec_rp_filter());
        }
    }
    let mut requests = vec![
        (M::NewLink(create), CREATE),
        (M::NewLink(no_ipv6), MODIFY),
        (
            M::NewLink(LinkUnspec::new_with_name(&name).up().build()),
            MODIFY,
        ),
    ];
    // The route needs the host end's index: with `chosen_index`, the
    // creating request picks it (ifi_index) and the route goes in the same
    // message; otherwise in one of its own once the kernel has chosen.
    let route = |index: u32| {
        let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(address, 32)
            .scope(RouteScope::Link)
            .output_interface(index)
            .build();
        route.header.protocol = rtnetlink::packet_route::route::RouteProtocol::Static;
        (M::NewRoute(route), CREATE)
    };
    if let Some(index) = chosen_index {
        if let (M::NewLink(create), _) = &mut requests[0] {
            create.header.index = index;
        }
        if mode == Mode::Routed {
            requests.push(route(index));
        }
    }
    if std::env::var_os("PROBE_DEBUG").is_some() {
        for r in &requests {
            eprintln!("{:?}", r.0);
        }
    }
    host.all("creating", requests)?;
    if i == 0 && mode == Mode::Routed {
        let rp = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"));
        eprintln!("rp_filter on a routed host end: {rp:?}");
    }
    let index = index_of(&name)?;
    if mode == Mode::Routed && chosen_index.is_none() {
        host.all("host route", vec![route(index)])?;
    }
    let t1 = Instant::now();

    let mut inside = open_inside(netns, host_ns)?;
    let eth0 = {
        setns(netns)?;
        let e = index_of("eth0");
        setns(host_ns)?;
        e?
    };
    let (prefix, gw_mac) = match mode {
        Mode::Bridge => (16, BRIDGE_MAC),
        Mode::Routed => (32, HOST_MAC),
    };
    let default = match mode {
        Mode::Bridge => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(GATEWAY)
            .build(),
        Mode::Routed => {
            let mut r = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(GATEWAY)
                .output_interface(eth0)
                .build();
            r.header.flags = RouteFlags::Onlink;
            r
        }
    };
    inside.all(
        "inside",
        vec![
            (
                M::NewLink(LinkUnspec::new_with_index(eth0).up().build()),
                MODIFY,
            ),
            (
                M::NewAddress(
                    AddressMessageBuilder::<Ipv4Addr>::new()
                        .index(eth0)
                        .address(address, prefix)
                        .build(),
                ),
                CREATE,
            ),
            (M::NewRoute(default), CREATE),
            (neighbour(eth0, GATEWAY, gw_mac), REPLACE),
        ],
    )?;
    drop(inside);
    let t2 = Instant::now();

    let requests = match mode {
        Mode::Bridge => vec![
            (lookup(index), LOOKUP),
            (lookup(bridge), LOOKUP),
            (hairpin(index), MODIFY),
            (fdb_entry(index, mac), REPLACE),
            (neighbour(bridge, address, mac), REPLACE),
            (no_multicast_route(index), MODIFY),
        ],
        Mode::Routed => vec![
            (lookup(index), LOOKUP),
            (neighbour(index, address, mac), REPLACE),
            (no_multicast_route(index), MODIFY),
        ],
    };
    let outcomes = host.pipeline(requests)?;
    let last = outcomes.len() - 1;
    let mut running = false;
    for (k, o) in outcomes.into_iter().enumerate() {
        match o {
            Ok(Some(M::NewLink(l))) if k == 0 => {
                running = l
                    .header
                    .flags
                    .contains(rtnetlink::packet_route::link::LinkFlags::Running)
            }
            Ok(_) => {}
            // The multicast route comes with the watcher's carrier only.
            Err(e) if k == last && e.raw_os_error() == Some(libc::ESRCH) => {}
            // The fdb entry is refused on a port not forwarding yet.
            Err(e) if mode == Mode::Bridge && k == 3 && e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("host side #{k}: {e}"))),
        }
    }
    let t3 = Instant::now();
    Ok(Times {
        create: t1 - t0,
        inside: t2 - t1,
        host: t3 - t2,
        cpu: thread_cpu() - cpu0,
        running,
    })
}

/// The host end's removal as our DEL sends it: off the bridge first
/// (bridge mode), then deleted. Wall time and this thread's CPU.
///
/// With `route_first` (routed mode), the /32 route goes first, by itself:
/// a link going down with routes on it makes the kernel walk the host's
/// whole table (`fib_disable_ip` -> `fib_flush`), one entry per container.
fn remove(
    mode: Mode,
    host: &mut Nl,
    index: u32,
    address: Ipv4Addr,
    route_first: bool,
) -> io::Result<(Duration, Duration)> {
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let mut requests = Vec::new();
    if mode == Mode::Routed && route_first {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(address, 32)
            .scope(RouteScope::Link)
            .output_interface(index)
            .build();
        requests.push((M::DelRoute(route), MODIFY));
    }
    if mode == Mode::Bridge {
        let mut release = LinkUnspec::new_with_index(index).build();
        release.attributes.push(LinkAttribute::Controller(0));
        requests.push((M::NewLink(release), MODIFY));
    }
    requests.push((
        M::DelLink(LinkUnspec::new_with_index(index).build()),
        MODIFY,
    ));
    host.all("removing", requests)?;
    Ok((t0.elapsed(), thread_cpu() - cpu0))
}

/// Waits for the host end `index` to go (the namespace's teardown takes the
/// pair): polls by index, sleeping 50 us between looks.
fn wait_gone(index: u32) -> Duration {
    let t0 = Instant::now();
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE.
    while !unsafe { libc::if_indextoname(index, name.as_mut_ptr()) }.is_null() {
        std::thread::sleep(Duration::from_micros(50));
        if t0.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    t0.elapsed()
}

fn setup(mode: Mode, host: &mut Nl) -> io::Result<u32> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
    let (name, kind) = match mode {
        Mode::Bridge => (BRIDGE, InfoKind::Bridge),
        // No dummy driver on this kernel: a bridge that never gets a port.
        Mode::Routed => (GW_DEV, InfoKind::Bridge),
    };
    let link = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(kind)
        .name(name)
        .address(BRIDGE_MAC.to_vec())
        .up()
        .build();
    host.all("gateway device", vec![(M::NewLink(link), CREATE)])?;
    let index = index_of(name)?;
    let prefix = if mode == Mode::Bridge { 16 } else { 32 };
    host.all(
        "gateway address",
        vec![(
            M::NewAddress(
                AddressMessageBuilder::<Ipv4Addr>::new()
                    .index(index)
                    .address(GATEWAY, prefix)
                    .build(),
            ),
            CREATE,
        )],
    )?;
    if mode == Mode::Routed {
        // What no container holds goes nowhere, not out the default route.
        let blackhole = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::new(10, 88, 0, 0), 16)
            .kind(RouteType::BlackHole)
            .build();
        host.all("blackhole", vec![(M::NewRoute(blackhole), CREATE)])?;
    }
    Ok(index)
}

fn stats(name: &str, values: &mut [f64]) -> String {
    if values.is_empty() {
        return format!("{name} -");
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    format!("{name} {:.0}/{:.0}/{:.0}", at(0.0), at(0.5), at(0.9))
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(1).map(String::as_str) {
        Some("bridge") => Mode::Bridge,
        Some("routed") => Mode::Routed,
        _ => {
            eprintln!("usage: routed_probe bridge|routed ATTACHED SAMPLES [PAUSE_MS] [--keep]");
            std::process::exit(2);
        }
    };
    let attached: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let samples: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100);
    let pause = Duration::from_millis(args.get(4).and_then(|a| a.parse().ok()).unwrap_or(20));
    let keep = args.iter().any(|a| a == "--keep");
    // Refused by the kernel (EAFNOSUPPORT) in the creating request: see the note.
    let choose_index = args.iter().any(|a| a == "--choose-index");
    let route_first = args.iter().any(|a| a == "--route-first");
    let rp_in_create = args.iter().any(|a| a == "--rp-in-create");
    let opts = Opts {
        rp_in_create,
        choose_index,
    };
    let raise = libc::rlimit {
        rlim_cur: 65536,
        rlim_max: 65536,
    };
    // SAFETY: a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raise) };
    let host_ns = netns_fd()?;
    let mut host = Nl::open()?;
    let bridge = setup(mode, &mut host)?;
    let mut held = Vec::with_capacity(attached);
    for i in 0..attached {
        let ns = new_container_netns(&host_ns)?;
        add(mode, &mut host, &host_ns, &ns, i, bridge, opts)?;
        held.push(ns);
    }
    std::thread::sleep(Duration::from_millis(500));
    // For a profiler started from outside on the sample phase only.
    if let Some(ready) = std::env::var_os("PROBE_READY_FILE") {
        std::fs::write(&ready, std::process::id().to_string())?;
        std::thread::sleep(Duration::from_secs(2));
    }
    let label = if mode == Mode::Bridge {
        "bridge"
    } else {
        "routed"
    };
    let (mut create, mut inside, mut hostside, mut total, mut cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut del, mut del_cpu, mut ns_end) = (Vec::new(), Vec::new(), Vec::new());
    let mut not_running = 0;
    for s in 0..samples {
        let i = attached + s;
        let ns = new_container_netns(&host_ns)?;
        std::thread::sleep(pause);
        let t = add(mode, &mut host, &host_ns, &ns, i, bridge, opts)?;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        create.push(us(t.create));
        inside.push(us(t.inside));
        hostside.push(us(t.host));
        total.push(us(t.create + t.inside + t.host));
        cpu.push(us(t.cpu));
        if !t.running {
            not_running += 1;
        }
        if keep {
            held.push(ns);
            continue;
        }
        std::thread::sleep(pause);
        let index = index_of(&format!("pv{i:08x}"))?;
        if s % 2 == 0 {
            let (d, c) = remove(mode, &mut host, index, address_of(i), route_first)?;
            del.push(us(d));
            del_cpu.push(us(c));
            drop(ns);
        } else {
            drop(ns);
            ns_end.push(us(wait_gone(index)));
        }
    }
    println!(
        "{label} attached={attached} n={samples} min/p50/p90 us: {} | {} | {} | {} | {} || {} | {} | {} | not-running {not_running}",
        stats("ADD", &mut total),
        stats("create", &mut create),
        stats("inside", &mut inside),
        stats("host", &mut hostside),
        stats("ADD-cpu", &mut cpu),
        stats("DEL", &mut del),
        stats("DEL-cpu", &mut del_cpu),
        stats("ns-end", &mut ns_end),
    );
    Ok(())
}
