//! The netlink layer against the kernel, each test in its own network
//! namespace (see tests/common/netns.rs).

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::netns::{async_in_fresh_netns, fd_path, new_netns, sh_in, this_thread_netns};
use supervisor::error_chain::Chain;
use supervisor::netlink::{self, Bridge, ContainerLink, Error, Netlink};

fn bridge(name: &str, subnet: &str) -> Bridge {
    Bridge {
        name: name.into(),
        subnet: subnet.parse().unwrap(),
        subnet6: None,
    }
}

fn sv0() -> Bridge {
    bridge("sv0", "172.16.0.0/24")
}

fn host(script: &str) -> String {
    sh_in(&this_thread_netns(), script)
}

async fn plumbed(nl: &Netlink, host_ifname: &str, address: Ipv4Addr) -> std::os::fd::OwnedFd {
    let bridge = netlink::ensure_bridge_made(nl, &sv0()).await.unwrap();
    let netns = new_netns();
    let spec = ContainerLink {
        host_ifname: host_ifname.into(),
        peer: netlink::PEER.into(),
        bridge_index: bridge.index,
        bridge_mac: bridge.mac,
        address,
        subnet: sv0().subnet,
        ipv6: None,
        routed: false,
    };
    let keep = netns.try_clone().unwrap();
    netlink::plumb(nl, &spec, netns).await.unwrap();
    keep
}

#[test]
fn ensuring_the_bridge_twice_creates_it_once_with_the_gateway_up() {
    async_in_fresh_netns(
        "ensuring_the_bridge_twice_creates_it_once_with_the_gateway_up",
        || async {
            let nl = Netlink::connect().unwrap();
            let first = netlink::ensure_bridge(&nl, &sv0()).await.unwrap();
            let second = netlink::ensure_bridge(&nl, &sv0()).await.unwrap();
            assert_eq!(first, second);
            let addr = host("ip -br -4 addr show dev sv0");
            assert!(addr.contains("172.16.0.1/24"), "{addr}");
            let details = host("ip -d link show dev sv0");
            assert!(
                details.contains("bridge") && details.contains(",UP"),
                "{details}"
            );
            assert_eq!(host("ip -4 -o addr show dev sv0 | wc -l").trim(), "1");
        },
    );
}

#[test]
fn supervisors_creating_the_bridge_at_the_same_moment_all_succeed() {
    async_in_fresh_netns(
        "supervisors_creating_the_bridge_at_the_same_moment_all_succeed",
        || async {
            // Threads started here share this test's namespace.
            let start = Arc::new(Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let start = start.clone();
                    std::thread::spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap();
                        rt.block_on(async {
                            let nl = Netlink::connect().unwrap();
                            start.wait();
                            netlink::ensure_bridge(&nl, &sv0()).await
                        })
                    })
                })
                .collect();
            let indexes: Vec<u32> = threads
                .into_iter()
                .map(|t| t.join().unwrap().unwrap())
                .collect();
            assert!(indexes.windows(2).all(|w| w[0] == w[1]), "{indexes:?}");
            assert_eq!(host("ip -4 -o addr show dev sv0 | wc -l").trim(), "1");
        },
    );
}

#[test]
fn a_configured_bridge_is_checked_in_one_poll_without_waiting_on_the_runtime() {
    async_in_fresh_netns(
        "a_configured_bridge_is_checked_in_one_poll_without_waiting_on_the_runtime",
        || async {
            let nl = Netlink::connect().unwrap();
            let index = netlink::ensure_bridge(&nl, &sv0()).await.unwrap();
            // `run` polls the check once, then clone3 holds the
            // single-threaded runtime: answers that need another turn of it
            // wait behind clone3.
            let again = futures_util::FutureExt::now_or_never(netlink::ensure_bridge(&nl, &sv0()));
            assert_eq!(again.map(Result::unwrap), Some(index));
        },
    );
}

#[test]
fn two_supervisors_that_both_find_no_bridge_both_succeed() {
    async_in_fresh_netns(
        "two_supervisors_that_both_find_no_bridge_both_succeed",
        || async {
            // Interleaved on one runtime, both read "no sv0" before either
            // creates it: one of them meets EEXIST.
            let (a, b) = (Netlink::connect().unwrap(), Netlink::connect().unwrap());
            let bridge = sv0();
            let (ia, ib) = tokio::join!(
                netlink::ensure_bridge(&a, &bridge),
                netlink::ensure_bridge(&b, &bridge)
            );
            assert_eq!(ia.unwrap(), ib.unwrap());
            assert_eq!(host("ip -4 -o addr show dev sv0 | wc -l").trim(), "1");
        },
    );
}

#[test]
fn the_bridge_keeps_its_mac_as_ports_come_and_go() {
    async_in_fresh_netns("the_bridge_keeps_its_mac_as_ports_come_and_go", || async {
        let nl = Netlink::connect().unwrap();
        netlink::ensure_bridge(&nl, &sv0()).await.unwrap();
        let mac = || host("ip -br link show dev sv0 | awk '{print $3}'");
        assert_eq!(mac().trim(), "02:42:ac:10:00:01", "the gateway's");
        host(
            "ip link add p0 type veth peer name p1 && ip link set p0 master sv0 && ip link set p0 up",
        );
        assert_eq!(mac().trim(), "02:42:ac:10:00:01");
        host("ip link del p0");
        assert_eq!(mac().trim(), "02:42:ac:10:00:01");
    });
}

#[test]
fn a_subnet_overlapping_a_route_on_another_interface_is_refused_naming_it() {
    async_in_fresh_netns(
        "a_subnet_overlapping_a_route_on_another_interface_is_refused_naming_it",
        || async {
            host(
                "ip link add uplink0 type veth peer name uplink0p && ip addr add 172.16.5.5/16 dev uplink0 && ip link set uplink0 up",
            );
            let nl = Netlink::connect().unwrap();
            let err = netlink::ensure_bridge(&nl, &sv0()).await.unwrap_err();
            assert!(matches!(err, Error::SubnetOverlap { .. }), "{err}");
            assert_eq!(
                err.to_string(),
                "subnet 172.16.0.0/24 overlaps the route 172.16.0.0/16 on uplink0; choose another subnet"
            );
            assert!(!host("ip -br link").contains("sv0"), "nothing is created");
            // A subnet beside it is fine.
            let other = bridge("sv0", "10.88.0.0/24");
            netlink::ensure_bridge(&nl, &other).await.unwrap();
        },
    );
}

#[test]
fn a_route_overlapping_the_subnet_added_after_the_bridge_was_made_refuses_the_next_ensure() {
    async_in_fresh_netns(
        "a_route_overlapping_the_subnet_added_after_the_bridge_was_made_refuses_the_next_ensure",
        || async {
            let nl = Netlink::connect().unwrap();
            netlink::ensure_bridge(&nl, &sv0()).await.unwrap();
            // More specific than the bridge's own route: part of the subnet
            // now leaves by uplink0.
            host(
                "ip link add uplink0 type veth peer name uplink0p && ip link set uplink0 up \
                 && ip route add 172.16.0.128/25 dev uplink0",
            );
            let err = netlink::ensure_bridge(&nl, &sv0()).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "subnet 172.16.0.0/24 overlaps the route 172.16.0.128/25 on uplink0; choose another subnet"
            );
        },
    );
}

#[test]
fn a_bridge_serving_another_subnet_or_a_non_bridge_is_refused() {
    async_in_fresh_netns(
        "a_bridge_serving_another_subnet_or_a_non_bridge_is_refused",
        || async {
            let nl = Netlink::connect().unwrap();
            netlink::ensure_bridge(&nl, &sv0()).await.unwrap();
            let other = bridge("sv0", "10.88.0.0/24");
            let err = netlink::ensure_bridge(&nl, &other).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "bridge sv0 has address 172.16.0.1/24, not 10.88.0.1/24; choose the matching subnet or another bridge"
            );
            host("ip link add sv1 type veth peer name sv1p");
            let dummy = bridge("sv1", "10.89.0.0/24");
            let err = netlink::ensure_bridge(&nl, &dummy).await.unwrap_err();
            assert_eq!(
                err.to_string(),
                "sv1 exists and is not a bridge (it is a veth link)"
            );
        },
    );
}

#[test]
fn a_plumbed_container_has_eth0_with_its_address_mac_and_default_route() {
    async_in_fresh_netns(
        "a_plumbed_container_has_eth0_with_its_address_mac_and_default_route",
        || async {
            let nl = Netlink::connect().unwrap();
            let netns = plumbed(&nl, "sv0123456789ab", Ipv4Addr::new(172, 16, 0, 30)).await;
            let inside = fd_path(&netns);
            let links = sh_in(&inside, "ip -br link");
            assert!(links.contains("eth0@"), "{links}");
            assert!(
                links.contains("02:42:ac:10:00:1e"),
                "MAC from the address: {links}"
            );
            assert_eq!(
                sh_in(&inside, "ip -br link | wc -l").trim(),
                "2",
                "lo and eth0 only: {links}"
            );
            let addrs = sh_in(&inside, "ip -br -4 addr");
            assert!(addrs.contains("172.16.0.30/24"), "{addrs}");
            // lo is the container's own process's to bring up (a CNI
            // engine's, in the namespaces it hands over): left as it was.
            let lo = sh_in(&inside, "ip -br link show dev lo");
            assert!(lo.contains("DOWN"), "lo untouched: {lo}");
            let routes = sh_in(&inside, "ip -4 route show default");
            assert_eq!(
                routes.trim(),
                "default via 172.16.0.1 dev eth0 proto static"
            );
            let port = host("ip -d link show dev sv0123456789ab");
            assert!(
                port.contains("master sv0") && port.contains("hairpin on"),
                "{port}"
            );
            assert!(port.contains(",UP"), "{port}");
            // The container reaches the gateway: a listener on the bridge's address answers.
            let listener = tokio::net::TcpListener::bind("172.16.0.1:7000")
                .await
                .unwrap();
            let reply = tokio::task::spawn_blocking(move || {
                sh_in(&inside, "nc -N -w 2 172.16.0.1 7000 </dev/null")
            });
            let (mut stream, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip(), Ipv4Addr::new(172, 16, 0, 30));
            tokio::io::AsyncWriteExt::write_all(&mut stream, b"hello\n")
                .await
                .unwrap();
            drop(stream);
            assert_eq!(reply.await.unwrap(), "hello\n");
        },
    );
}

#[test]
fn the_host_end_of_a_plumbed_veth_has_no_ipv6_address_or_route_of_its_own() {
    async_in_fresh_netns(
        "the_host_end_of_a_plumbed_veth_has_no_ipv6_address_or_route_of_its_own",
        || async {
            let nl = Netlink::connect().unwrap();
            let _netns = plumbed(&nl, "sv0123456789ab", Ipv4Addr::new(172, 16, 0, 31)).await;
            // Plumbing returns with the port forwarding, its carrier seen:
            // the moment the kernel gives a port its link-local address.
            let addrs = host("ip -6 addr show dev sv0123456789ab");
            assert_eq!(addrs.trim(), "", "no IPv6 address on the port: {addrs}");
            let port = host("ip -d link show dev sv0123456789ab");
            assert!(
                port.contains("addrgenmode none"),
                "the port makes no address of its own: {port}"
            );
            // Not even the multicast route IPv6 gives every link it is on
            // (ff00::/8): with 1,000 ports, each port's removal walks them.
            let routes = host("ip -6 route show table all dev sv0123456789ab");
            assert_eq!(routes.trim(), "", "no IPv6 route on the port: {routes}");
        },
    );
}

/// Asked for no number, the kernel gives each veth end a queue per possible
/// CPU and cuts back to one, waiting for an expedited RCU grace period
/// under RTNL per end (see `veth::create_message`): made with one, there is
/// nothing to cut. Shown by the queues each end has.
#[test]
fn each_end_of_a_plumbed_veth_has_one_queue_each_way() {
    async_in_fresh_netns(
        "each_end_of_a_plumbed_veth_has_one_queue_each_way",
        || async {
            let nl = Netlink::connect().unwrap();
            let netns = plumbed(&nl, "sv0123456789ab", Ipv4Addr::new(172, 16, 0, 32)).await;
            let queues = "numtxqueues 1 numrxqueues 1";
            let port = host("ip -d link show dev sv0123456789ab");
            assert!(port.contains(queues), "host end: {port}");
            let eth0 = sh_in(&fd_path(&netns), "ip -d link show dev eth0");
            assert!(eth0.contains(queues), "eth0: {eth0}");
        },
    );
}

/// IFF_RUNNING of `ifname` in the calling thread's namespace, as the
/// kernel's link watcher last left it (SIOCGIFFLAGS runs no link watcher).
fn running(ifname: &str) -> bool {
    // SAFETY: socket/ioctl/close on a zeroed, NUL-terminated ifreq.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(sock >= 0);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
            *dst = src as libc::c_char;
        }
        let ret = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        libc::close(sock);
        assert_eq!(ret, 0, "SIOCGIFFLAGS {ifname}");
        req.ifr_ifru.ifru_flags as libc::c_int & libc::IFF_RUNNING != 0
    }
}

#[test]
fn plumbing_returns_with_the_bridge_port_forwarding() {
    async_in_fresh_netns(
        "plumbing_returns_with_the_bridge_port_forwarding",
        || async {
            let nl = Netlink::connect().unwrap();
            let bridge = netlink::ensure_bridge_made(&nl, &sv0()).await.unwrap();
            let mut namespaces = Vec::new();
            for i in 0..20u8 {
                let host_ifname = format!("svfwd{i}");
                let netns = new_netns();
                namespaces.push(netns.try_clone().unwrap());
                let spec = ContainerLink {
                    host_ifname: host_ifname.clone(),
                    peer: netlink::PEER.into(),
                    bridge_index: bridge.index,
                    bridge_mac: bridge.mac,
                    address: Ipv4Addr::new(172, 16, 0, 100 + i),
                    subnet: sv0().subnet,
                    ipv6: None,
                    routed: false,
                };
                netlink::plumb(&nl, &spec, netns).await.unwrap();
                // The watcher enables the bridge port as it marks the
                // link running: a container released now has its first
                // ARP request forwarded.
                assert!(running(&host_ifname), "{host_ifname} not running");
            }
        },
    );
}

#[test]
fn the_veth_pair_disappears_when_the_container_namespace_dies() {
    async_in_fresh_netns(
        "the_veth_pair_disappears_when_the_container_namespace_dies",
        || async {
            let nl = Netlink::connect().unwrap();
            let netns = plumbed(&nl, "svdead00000001", Ipv4Addr::new(172, 16, 0, 2)).await;
            assert!(host("ip -br link").contains("svdead00000001"));
            // plumb kept no reference: dropping ours ends the namespace.
            drop(netns);
            let deadline = Instant::now() + Duration::from_secs(10);
            while host("ip -br link").contains("svdead00000001") {
                assert!(
                    Instant::now() < deadline,
                    "veth still there 10 s after its namespace died"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    );
}

#[test]
fn a_bad_host_interface_name_creates_nothing() {
    async_in_fresh_netns("a_bad_host_interface_name_creates_nothing", || async {
        let nl = Netlink::connect().unwrap();
        let bridge = netlink::ensure_bridge_made(&nl, &sv0()).await.unwrap();
        let netns = new_netns();
        let inside = fd_path(&netns);
        let spec = ContainerLink {
            host_ifname: "sv0123456789abcdef".into(),
            peer: netlink::PEER.into(),
            bridge_index: bridge.index,
            bridge_mac: bridge.mac,
            address: Ipv4Addr::new(172, 16, 0, 2),
            subnet: sv0().subnet,
            ipv6: None,
            routed: false,
        };
        let err = netlink::plumb(&nl, &spec, netns.try_clone().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::IfName { .. }), "{err}");
        assert_eq!(sh_in(&inside, "ip -br link | wc -l").trim(), "1");
    });
}

#[test]
fn a_taken_host_interface_name_is_reported_by_name() {
    async_in_fresh_netns(
        "a_taken_host_interface_name_is_reported_by_name",
        || async {
            let nl = Netlink::connect().unwrap();
            let _first = plumbed(&nl, "svdup", Ipv4Addr::new(172, 16, 0, 2)).await;
            let bridge = netlink::ensure_bridge_made(&nl, &sv0()).await.unwrap();
            let spec = ContainerLink {
                host_ifname: "svdup".into(),
                peer: netlink::PEER.into(),
                bridge_index: bridge.index,
                bridge_mac: bridge.mac,
                address: Ipv4Addr::new(172, 16, 0, 3),
                subnet: sv0().subnet,
                ipv6: None,
                routed: false,
            };
            let err = netlink::plumb(&nl, &spec, new_netns()).await.unwrap_err();
            assert!(
                Chain(&err)
                    .to_string()
                    .starts_with("creating veth svdup: File exists"),
                "{err}"
            );
        },
    );
}

#[test]
fn sysctls_are_written_only_when_they_differ() {
    async_in_fresh_netns("sysctls_are_written_only_when_they_differ", || async {
        let nl = Netlink::connect().unwrap();
        netlink::ensure_bridge(&nl, &sv0()).await.unwrap();
        assert_eq!(host("cat /proc/sys/net/ipv4/ip_forward").trim(), "0");
        assert!(netlink::sysctl::enable_ip_forward().unwrap());
        assert!(!netlink::sysctl::enable_ip_forward().unwrap());
        assert_eq!(host("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
        assert!(netlink::sysctl::enable_route_localnet("sv0").unwrap());
        assert!(!netlink::sysctl::enable_route_localnet("sv0").unwrap());
        assert_eq!(
            host("cat /proc/sys/net/ipv4/conf/sv0/route_localnet").trim(),
            "1"
        );
        assert_eq!(
            host("cat /proc/sys/net/ipv4/conf/lo/route_localnet").trim(),
            "0"
        );
        let err = netlink::sysctl::enable_route_localnet("nosuch0").unwrap_err();
        assert!(
            Chain(&err)
                .to_string()
                .starts_with("sysctl /proc/sys/net/ipv4/conf/nosuch0/route_localnet: "),
            "{err}"
        );
    });
}

/// A veth pair `v6a`/`v6b`, both up, so the kernel would run DAD on an
/// address added to `v6a` (it needs carrier).
fn veth_pair_up() {
    host("ip link add v6a type veth peer name v6b && ip link set v6a up && ip link set v6b up");
}

#[test]
fn an_ipv6_address_is_usable_the_moment_it_is_added() {
    async_in_fresh_netns(
        "an_ipv6_address_is_usable_the_moment_it_is_added",
        || async {
            veth_pair_up();
            let nl = Netlink::connect().unwrap();
            let addr: Ipv6Addr = "fd00:5::1".parse().unwrap();
            netlink::add_ipv6_address(&nl, "v6a", addr, 64)
                .await
                .unwrap();
            // A tentative address cannot be bound (EADDRNOTAVAIL) until DAD
            // ends, about a second later.
            let bound = std::net::TcpListener::bind((addr, 0));
            assert!(bound.is_ok(), "bind at once: {bound:?}");
            // The link-local address the kernel adds still runs DAD.
            let shown = host("ip -6 -o addr show dev v6a to fd00:5::1/128");
            assert!(shown.contains("fd00:5::1/64"), "{shown}");
            assert!(!shown.contains("tentative"), "{shown}");
            // Adding it again is an error naming it.
            let err = netlink::add_ipv6_address(&nl, "v6a", addr, 64)
                .await
                .unwrap_err();
            assert!(
                Chain(&err)
                    .to_string()
                    .starts_with("adding address fd00:5::1/64 to v6a: File exists"),
                "{}",
                Chain(&err)
            );
        },
    );
}

/// The contrast that shows the test above can fail: the same address
/// added by `ip` (with DAD) is tentative and cannot be bound at first.
#[test]
fn an_ipv6_address_added_with_dad_is_tentative_at_first() {
    async_in_fresh_netns(
        "an_ipv6_address_added_with_dad_is_tentative_at_first",
        || async {
            veth_pair_up();
            let addr: Ipv6Addr = "fd00:5::1".parse().unwrap();
            host("ip addr add fd00:5::1/64 dev v6a");
            let shown = host("ip -6 -o addr show dev v6a to fd00:5::1/128");
            assert!(shown.contains("tentative"), "{shown}");
            let err = std::net::TcpListener::bind((addr, 0)).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{err}");
        },
    );
}

#[test]
fn a_container_gets_an_ipv6_address_and_default_route_usable_at_once() {
    async_in_fresh_netns(
        "a_container_gets_an_ipv6_address_and_default_route_usable_at_once",
        || async {
            let nl = Netlink::connect().unwrap();
            let netns = plumbed(&nl, "sv6000000000001", Ipv4Addr::new(172, 16, 0, 40)).await;
            let inside = fd_path(&netns);
            let gateway: Ipv6Addr = "fd00:6::1".parse().unwrap();
            let address: Ipv6Addr = "fd00:6::28".parse().unwrap();
            netlink::add_ipv6_address(&nl, "sv0", gateway, 64)
                .await
                .unwrap();
            // plumb leaves IPv6 off on eth0; a dual-stack container turns
            // it on, without router advertisements.
            let on = vec![
                netlink::sysctl::Setting::accept_ra("eth0", false),
                netlink::sysctl::Setting::autoconf("eth0", false),
                netlink::sysctl::Setting::disable_ipv6("eth0", false),
            ];
            netlink::sysctl::apply_in(netns.as_fd(), on).await.unwrap();
            netlink::add_ipv6_address_in(netns.as_fd(), "eth0", address, 64)
                .await
                .unwrap();
            netlink::add_ipv6_default_route_in(netns.as_fd(), "eth0", gateway)
                .await
                .unwrap();
            let routes = sh_in(&inside, "ip -6 route show default");
            assert!(
                routes.starts_with("default via fd00:6::1 dev eth0"),
                "{routes}"
            );
            let addrs = sh_in(&inside, "ip -6 -o addr show dev eth0 to fd00:6::28/128");
            assert!(addrs.contains("fd00:6::28/64"), "{addrs}");
            assert!(!addrs.contains("tentative"), "{addrs}");
            // Straight away, the container reaches the gateway's address
            // from its own.
            let listener = tokio::net::TcpListener::bind((gateway, 7006))
                .await
                .unwrap();
            let reply = tokio::task::spawn_blocking(move || {
                sh_in(&inside, "nc -N -w 2 fd00:6::1 7006 </dev/null")
            });
            let (mut stream, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip(), address);
            tokio::io::AsyncWriteExt::write_all(&mut stream, b"hello6\n")
                .await
                .unwrap();
            drop(stream);
            assert_eq!(reply.await.unwrap(), "hello6\n");
            // A route via a gateway nothing on eth0 reaches is refused,
            // naming the gateway.
            let err = netlink::add_ipv6_default_route_in(netns.as_fd(), "nosuch0", gateway)
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "finding nosuch0");
        },
    );
}

#[test]
fn ipv6_interface_sysctls_are_set_inside_a_namespace_and_read_back() {
    async_in_fresh_netns(
        "ipv6_interface_sysctls_are_set_inside_a_namespace_and_read_back",
        || async {
            let nl = Netlink::connect().unwrap();
            let netns = plumbed(&nl, "sv6000000000002", Ipv4Addr::new(172, 16, 0, 41)).await;
            let inside = fd_path(&netns);
            let read = |name: &str| {
                sh_in(&inside, &format!("cat /proc/sys/net/ipv6/conf/eth0/{name}"))
                    .trim()
                    .to_string()
            };
            assert_eq!(read("disable_ipv6"), "1", "plumb turns IPv6 off");
            netlink::sysctl::apply_in(
                netns.as_fd(),
                vec![netlink::sysctl::Setting::disable_ipv6("eth0", false)],
            )
            .await
            .unwrap();
            assert_eq!(read("disable_ipv6"), "0");
            assert_eq!(
                (read("accept_ra"), read("autoconf")),
                ("1".into(), "1".into())
            );
            let settings = vec![
                netlink::sysctl::Setting::accept_ra("eth0", false),
                netlink::sysctl::Setting::autoconf("eth0", false),
            ];
            netlink::sysctl::apply_in(netns.as_fd(), settings)
                .await
                .unwrap();
            assert_eq!(
                (read("accept_ra"), read("autoconf")),
                ("0".into(), "0".into())
            );
            netlink::sysctl::apply_in(
                netns.as_fd(),
                vec![netlink::sysctl::Setting::disable_ipv6("eth0", true)],
            )
            .await
            .unwrap();
            assert_eq!(read("disable_ipv6"), "1");
            let addrs = sh_in(&inside, "ip -6 addr show dev eth0");
            assert!(addrs.trim().is_empty(), "no IPv6 address left: {addrs}");
            // The host's own eth0 settings (none here) and its sv0 are untouched.
            assert_eq!(
                host("cat /proc/sys/net/ipv6/conf/sv0/disable_ipv6").trim(),
                "0"
            );
            let err = netlink::sysctl::apply_in(
                netns.as_fd(),
                vec![netlink::sysctl::Setting::accept_ra("nosuch0", false)],
            )
            .await
            .unwrap_err();
            assert!(
                Chain(&err)
                    .to_string()
                    .starts_with("sysctl /proc/sys/net/ipv6/conf/nosuch0/accept_ra: "),
                "{}",
                Chain(&err)
            );
        },
    );
}

#[test]
fn host_sysctls_are_set_in_each_callers_namespace_after_the_first_one_is_gone() {
    // The first host-side caller's /proc/sys/net is kept (see
    // netlink::sysctl). Below the directory of a namespace that is gone
    // nothing opens (ENOENT); in another namespace, the setting must be
    // that namespace's.
    if !async_in_fresh_netns("first_caller_whose_namespace_goes", || async {
        netlink::sysctl::Setting::disable_ipv6("lo", false)
            .apply_on_host()
            .unwrap();
    }) {
        return;
    }
    // The kernel removes a namespace's sysctls in the background.
    std::thread::sleep(Duration::from_millis(300));
    async_in_fresh_netns(
        "host_sysctls_are_set_in_each_callers_namespace_after_the_first_one_is_gone",
        || async {
            let other = new_netns();
            let other_path = fd_path(&other);
            std::thread::scope(|s| {
                s.spawn(|| {
                    nix::sched::setns(&other, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    netlink::sysctl::Setting::disable_ipv6("lo", true)
                        .write_on_host()
                        .unwrap();
                });
            });
            let wrote = netlink::sysctl::Setting::disable_ipv6("lo", true).apply_on_host();
            assert!(wrote.unwrap(), "set in this namespace");
            assert_eq!(
                sh_in(&other_path, "cat /proc/sys/net/ipv6/conf/lo/disable_ipv6").trim(),
                "1",
                "set in the writer's namespace"
            );
        },
    );
}

#[test]
fn plumbing_writes_eth0s_sysctls_through_a_procfs_instance_of_its_own_kept_for_closing_later() {
    // Through /proc, each container's namespace adds an entry every later
    // sysctl lookup of the machine compares against (netlink::procfs).
    async_in_fresh_netns(
        "plumbing_writes_eth0s_sysctls_through_a_procfs_instance_of_its_own_kept_for_closing_later",
        || async {
            let nl = Netlink::connect().unwrap();
            let netns = plumbed(&nl, "sv0procfs00001", Ipv4Addr::new(172, 16, 0, 41)).await;
            // Other tests of this process plumb too: at least this one's.
            let kept = netlink::procfs::to_close();
            assert!(!kept.is_empty(), "no procfs instance was used and kept");
            let inside = fd_path(&netns);
            assert_eq!(
                sh_in(&inside, "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6").trim(),
                "1",
                "written in the container's namespace"
            );
        },
    );
}

#[test]
fn a_sysctl_written_through_a_private_procfs_instance_lands_in_the_writing_threads_namespace() {
    async_in_fresh_netns(
        "a_sysctl_written_through_a_private_procfs_instance_lands_in_the_writing_threads_namespace",
        || async {
            // Made here, used from a thread in another namespace.
            let instance = netlink::procfs::private().expect("no procfs instance could be made");
            let other = new_netns();
            let other_path = fd_path(&other);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    nix::sched::setns(&other, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    netlink::sysctl::Setting::disable_ipv6("lo", true)
                        .write_under(Some(instance.as_fd()))
                        .unwrap();
                });
            });
            assert_eq!(
                sh_in(&other_path, "cat /proc/sys/net/ipv6/conf/lo/disable_ipv6").trim(),
                "1",
                "the writer's namespace"
            );
            assert_eq!(
                host("cat /proc/sys/net/ipv6/conf/lo/disable_ipv6").trim(),
                "0",
                "not the instance maker's"
            );
        },
    );
}
