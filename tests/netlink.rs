//! The netlink layer against the kernel, each test in its own network
//! namespace (see tests/common/netns.rs).

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::netns::{async_in_fresh_netns, fd_path, new_netns, sh_in, this_thread_netns};
use supervisor::error_chain::Chain;
use supervisor::netlink::{self, Bridge, ContainerLink, Error, Netlink};

fn bridge(name: &str, subnet: &str) -> Bridge {
    Bridge {
        name: name.into(),
        subnet: subnet.parse().unwrap(),
    }
}

fn sv0() -> Bridge {
    bridge("sv0", "172.16.0.0/24")
}

fn host(script: &str) -> String {
    sh_in(&this_thread_netns(), script)
}

async fn plumbed(nl: &Netlink, host_ifname: &str, address: Ipv4Addr) -> std::os::fd::OwnedFd {
    let bridge_index = netlink::ensure_bridge(nl, &sv0()).await.unwrap();
    let netns = new_netns();
    let spec = ContainerLink {
        host_ifname: host_ifname.into(),
        peer: netlink::PEER.into(),
        bridge_index,
        address,
        subnet: sv0().subnet,
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
            assert!(
                addrs
                    .lines()
                    .any(|l| l.starts_with("lo ") && l.contains("UNKNOWN")),
                "lo up: {addrs}"
            );
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
        let bridge_index = netlink::ensure_bridge(&nl, &sv0()).await.unwrap();
        let netns = new_netns();
        let inside = fd_path(&netns);
        let spec = ContainerLink {
            host_ifname: "sv0123456789abcdef".into(),
            peer: netlink::PEER.into(),
            bridge_index,
            address: Ipv4Addr::new(172, 16, 0, 2),
            subnet: sv0().subnet,
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
            let spec = ContainerLink {
                host_ifname: "svdup".into(),
                peer: netlink::PEER.into(),
                bridge_index: netlink::ensure_bridge(&nl, &sv0()).await.unwrap(),
                address: Ipv4Addr::new(172, 16, 0, 3),
                subnet: sv0().subnet,
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
