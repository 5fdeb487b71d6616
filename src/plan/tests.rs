use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::publish::parse;

fn owner() -> Owner {
    Owner {
        name: "web".into(),
        id: "0123456789ab".into(),
    }
}

fn request(publish: &[&str]) -> Request {
    Request {
        owner: owner(),
        bridge: "sv0".into(),
        subnet: "172.16.0.0/24".parse().unwrap(),
        address: None,
        subnet6: None,
        address6: None,
        mappings: publish.iter().flat_map(|p| parse(p).unwrap()).collect(),
    }
}

fn holder(name: &str, id: &str) -> Owner {
    Owner {
        name: name.into(),
        id: id.into(),
    }
}

fn leased(addr: [u8; 4], live: bool) -> Leased {
    Leased {
        addr: addr.into(),
        addr6: None,
        holder: "container db (aaaa)".into(),
        live,
    }
}

#[test]
fn a_dead_supervisors_address_is_planned_when_asked_for_or_the_last_left() {
    let mut asked = request(&[]);
    asked.address = Some(Ipv4Addr::new(172, 16, 0, 9));
    let snapshot = Snapshot {
        leases: vec![leased([172, 16, 0, 9], false)],
        ..Snapshot::default()
    };
    assert_eq!(
        plan(&asked, &snapshot).unwrap().container.address,
        Ipv4Addr::new(172, 16, 0, 9)
    );
    let mut tiny = request(&[]);
    tiny.subnet = "10.0.0.0/29".parse().unwrap();
    let full = Snapshot {
        leases: (2..=6).map(|d| leased([10, 0, 0, d], d != 4)).collect(),
        ..Snapshot::default()
    };
    assert_eq!(
        plan(&tiny, &full).unwrap().container.address,
        Ipv4Addr::new(10, 0, 0, 4)
    );
}

#[test]
fn a_plan_takes_the_next_free_address_after_the_last_handed_out_as_the_lease_does() {
    let snapshot = Snapshot {
        leases: vec![leased([172, 16, 0, 2], true), leased([172, 16, 0, 9], true)],
        last_handed_out: Some(Ipv4Addr::new(172, 16, 0, 8)),
        ..Snapshot::default()
    };
    assert_eq!(
        plan(&request(&[]), &snapshot).unwrap().container.address,
        Ipv4Addr::new(172, 16, 0, 10)
    );
    let mut tiny = request(&[]);
    tiny.subnet = "10.0.0.0/29".parse().unwrap();
    let wrapped = Snapshot {
        leases: vec![leased([10, 0, 0, 2], true)],
        last_handed_out: Some(Ipv4Addr::new(10, 0, 0, 6)),
        ..Snapshot::default()
    };
    assert_eq!(
        plan(&tiny, &wrapped).unwrap().container.address,
        Ipv4Addr::new(10, 0, 0, 3)
    );
}

#[test]
fn a_plan_is_the_lowest_free_address_its_veth_and_one_element_per_port() {
    let snapshot = Snapshot {
        base_loaded: true,
        bridge_exists: true,
        leases: vec![leased([172, 16, 0, 2], true)],
        ..Snapshot::default()
    };
    let plan = plan(&request(&["8080:8000", "127.0.0.1:9090:90/udp"]), &snapshot).unwrap();
    let address = Ipv4Addr::new(172, 16, 0, 3);
    let expected = NetworkPlan {
        network: NetworkPart {
            bridge: "sv0".into(),
            subnet: "172.16.0.0/24".parse().unwrap(),
            subnet6: None,
            load_base: false,
            create_bridge: false,
            sysctls: vec![
                Setting {
                    key: "net.ipv4.ip_forward".into(),
                    path: "/proc/sys/net/ipv4/ip_forward".into(),
                    value: "1",
                },
                Setting {
                    key: "net.ipv4.conf.sv0.route_localnet".into(),
                    path: "/proc/sys/net/ipv4/conf/sv0/route_localnet".into(),
                    value: "1",
                },
            ],
        },
        container: ContainerPart {
            address,
            prefix_len: 24,
            gateway: Ipv4Addr::new(172, 16, 0, 1),
            host_ifname: "sv-0123456789ab".into(),
            ifname: "eth0".into(),
            mac: [0x02, 0x42, 172, 16, 0, 3],
            ipv6: None,
            publication: Publication {
                owner: owner(),
                address,
                address6: None,
                veth: "sv-0123456789ab".into(),
                ports: vec![
                    Port {
                        host_ip: HostIp::AnyV4,
                        host_port: 8080,
                        container_port: 8000,
                        protocol: Protocol::Tcp,
                    },
                    Port {
                        host_ip: HostIp::V4(Ipv4Addr::LOCALHOST),
                        host_port: 9090,
                        container_port: 90,
                        protocol: Protocol::Udp,
                    },
                ],
                generation: None,
                routed: false,
            },
        },
    };
    assert_eq!(plan, expected);
}

#[test]
fn a_port_someone_published_is_a_conflict_naming_the_holder() {
    let taken = Owned {
        target: Target::AddrPorts(Protocol::Udp),
        key: vec![127, 0, 0, 1, 0x23, 0x82, 0, 0],
        owner: Some(holder("dns", "feedfeedfeed")),
    };
    let snapshot = Snapshot {
        published: vec![taken],
        ..Snapshot::default()
    };
    let err = plan(&request(&["8080:8000", "127.0.0.1:9090:90/udp"]), &snapshot).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port 127.0.0.1:9090->90/udp is already published by container dns (feedfeedfeed)"
    );
    let Conflict::PortTaken(PortTaken { owner, .. }) = err else {
        panic!("not a port conflict: {err:?}");
    };
    assert_eq!(owner, Some(holder("dns", "feedfeedfeed")));
}

#[test]
fn the_same_port_on_another_protocol_or_map_is_no_conflict() {
    let snapshot = Snapshot {
        published: vec![Owned {
            target: Target::Ports(Protocol::Udp),
            key: 8080u16.to_be_bytes().to_vec(),
            owner: Some(holder("dns", "feedfeedfeed")),
        }],
        ..Snapshot::default()
    };
    assert!(plan(&request(&["8080:8000"]), &snapshot).is_ok());
}

#[test]
fn an_address_asked_for_and_leased_is_a_conflict_naming_the_holder() {
    let snapshot = Snapshot {
        leases: vec![leased([172, 16, 0, 9], true)],
        ..Snapshot::default()
    };
    let mut asked = request(&[]);
    asked.address = Some(Ipv4Addr::new(172, 16, 0, 9));
    assert_eq!(
        plan(&asked, &snapshot).unwrap_err().to_string(),
        "address 172.16.0.9 is taken by container db (aaaa)"
    );
}

#[test]
fn a_full_subnet_has_no_address_to_plan() {
    let mut asked = request(&[]);
    asked.subnet = "10.0.0.0/30".parse().unwrap();
    let snapshot = Snapshot {
        leases: vec![leased([10, 0, 0, 2], true)],
        ..Snapshot::default()
    };
    assert_eq!(
        plan(&asked, &snapshot),
        Err(Conflict::NoFreeAddress(asked.subnet))
    );
}

#[test]
fn a_missing_host_port_is_picked_among_the_ephemeral_ports_not_published() {
    let published = |port: u16| Owned {
        target: Target::Ports(Protocol::Tcp),
        key: port.to_be_bytes().to_vec(),
        owner: None,
    };
    let snapshot = Snapshot {
        ephemeral: (40000, 40002),
        published: vec![published(40000), published(40001)],
        ..Snapshot::default()
    };
    let ports = ports(&parse("8000").unwrap(), &snapshot).unwrap();
    assert_eq!(ports[0].host_port, 40002);
    let full = Snapshot {
        ephemeral: (40000, 40001),
        ..snapshot
    };
    assert_eq!(
        super::ports(&parse("8000").unwrap(), &full),
        Err(NoFreePort(Protocol::Tcp))
    );
}

#[test]
fn a_dry_run_prints_ip_sysctl_and_nft_commands() {
    let plan = plan(
        &request(&["8080:8000", "127.0.0.1:9090:90/udp"]),
        &Snapshot::default(),
    )
    .unwrap();
    let expected = format!(
        "\
# container web (0123456789ab) on network sv0 (172.16.0.0/24)
ip link add sv0 address 02:42:ac:10:00:01 type bridge
ip addr add 172.16.0.1/24 dev sv0
ip link set sv0 up
sysctl -w net.ipv4.ip_forward=1
sysctl -w net.ipv4.conf.sv0.route_localnet=1
# lease 172.16.0.2 on sv0
ip link add sv-0123456789ab master sv0 up type veth peer name eth0 address 02:42:ac:10:00:02 netns CONTAINER
ip link set sv-0123456789ab type bridge_slave hairpin on
ip -n CONTAINER link set lo up
ip -n CONTAINER link set eth0 up
ip -n CONTAINER addr add 172.16.0.2/24 dev eth0
ip -n CONTAINER route add default via 172.16.0.1 dev eth0 proto static
nft -D VERSION=0x{:08x} -f nft/supervisor.nft
add element ip supervisor bridges {{ \"sv0\" }}
add element ip supervisor same_bridge {{ \"sv0\" . \"sv0\" }}
add element ip supervisor subnets {{ 172.16.0.0/24 comment \"sv0\" }}
add element bridge supervisor spoof_guard {{ \"sv-0123456789ab\" . 172.16.0.2 . 02:42:ac:10:00:02 comment \"web 0123456789ab\" }}
add element bridge supervisor mac_guard {{ \"sv-0123456789ab\" . 02:42:ac:10:00:02 comment \"web 0123456789ab\" }}
add element ip supervisor tcp_ports {{ 8080 comment \"web 0123456789ab\" : 172.16.0.2 . 8000 }}
add element ip supervisor udp_addr_ports {{ 127.0.0.1 . 9090 comment \"web 0123456789ab\" : 172.16.0.2 . 90 }}
",
        crate::firewall::version()
    );
    assert_eq!(plan.to_string(), expected);
}

fn dual_stack(publish: &[&str]) -> Request {
    Request {
        subnet6: Some("fd53:7570:6572::/64".parse().unwrap()),
        ..request(publish)
    }
}

#[test]
fn a_dual_stack_plan_derives_the_ipv6_address_from_the_ipv4_one() {
    let snapshot = Snapshot {
        leases: vec![leased([172, 16, 0, 2], true)],
        ..Snapshot::default()
    };
    let plan = plan(&dual_stack(&[]), &snapshot).unwrap();
    let (address6, subnet6) = plan.container.ipv6.unwrap();
    assert_eq!(plan.container.address, Ipv4Addr::new(172, 16, 0, 3));
    assert_eq!(address6, "fd53:7570:6572::3".parse::<Ipv6Addr>().unwrap());
    assert_eq!(plan.network.subnet6, Some(subnet6));
    assert!(plan.network.sysctls.contains(&Setting::ipv6_forwarding()));
    assert_eq!(plan.container.publication.address6, Some(address6));
    let link = plan.container.link(7, None, plan.network.subnet);
    assert_eq!(link.ipv6, Some((address6, subnet6)));
    // IPv4 only: no IPv6 address, no IPv6 forwarding.
    let plan4 = super::plan(&request(&[]), &snapshot).unwrap();
    assert_eq!(plan4.container.ipv6, None);
    assert_eq!(plan4.container.publication.address6, None);
    assert!(!plan4.network.sysctls.contains(&Setting::ipv6_forwarding()));
}

#[test]
fn an_ipv4_address_whose_derived_ipv6_address_is_pinned_by_another_is_skipped() {
    let mut pinned = leased([172, 16, 0, 9], true);
    pinned.addr6 = Some("fd53:7570:6572::2".parse().unwrap());
    let snapshot = Snapshot {
        leases: vec![pinned.clone()],
        ..Snapshot::default()
    };
    let plan = plan(&dual_stack(&[]), &snapshot).unwrap();
    assert_eq!(plan.container.address, Ipv4Addr::new(172, 16, 0, 3));
    let mut asked = dual_stack(&[]);
    asked.address = Some(Ipv4Addr::new(172, 16, 0, 2));
    assert_eq!(
        super::plan(&asked, &snapshot).unwrap_err().to_string(),
        "IPv6 address fd53:7570:6572::2 is taken by container db (aaaa)"
    );
    asked.address6 = Some("fd53:7570:6572::99".parse().unwrap());
    let plan = super::plan(&asked, &snapshot).unwrap();
    assert_eq!(
        plan.container.ipv6.unwrap().0,
        "fd53:7570:6572::99".parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn a_dual_stack_dry_run_prints_the_ipv6_commands() {
    let plan = plan(&dual_stack(&[]), &Snapshot::default()).unwrap();
    let text = plan.to_string();
    for line in [
        "# container web (0123456789ab) on network sv0 (172.16.0.0/24, fd53:7570:6572::/64)\n",
        "ip link set sv0 up\nip -6 addr add fd53:7570:6572::1/64 dev sv0 nodad\n",
        "sysctl -w net.ipv6.conf.all.forwarding=1\n",
        "# lease 172.16.0.2 and fd53:7570:6572::2 on sv0\n",
        "add element ip6 supervisor subnets6 { fd53:7570:6572::/64 comment \"sv0\" }\n",
        "add element bridge supervisor spoof_guard6 { \"sv-0123456789ab\" . fd53:7570:6572::2 . 02:42:ac:10:00:02 comment \"web 0123456789ab\" }\n",
        "ip netns exec CONTAINER sysctl -w net.ipv6.conf.eth0.accept_ra=0\n\
         ip netns exec CONTAINER sysctl -w net.ipv6.conf.eth0.autoconf=0\n\
         ip netns exec CONTAINER sysctl -w net.ipv6.conf.eth0.accept_dad=0\n\
         ip netns exec CONTAINER sysctl -w net.ipv6.conf.eth0.disable_ipv6=0\n\
         ip -n CONTAINER -6 addr add fe80::42:acff:fe10:2/64 dev eth0 nodad\n\
         ip -n CONTAINER -6 addr add fd53:7570:6572::2/64 dev eth0 nodad\n\
         ip -n CONTAINER link set eth0 up\n\
         ip -n CONTAINER addr add 172.16.0.2/24 dev eth0\n\
         ip -n CONTAINER route add default via 172.16.0.1 dev eth0 proto static\n\
         ip -n CONTAINER -6 route add default via fd53:7570:6572::1 dev eth0 proto static\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    let existing = Snapshot {
        bridge_exists: true,
        ..Snapshot::default()
    };
    let text = super::plan(&dual_stack(&[]), &existing)
        .unwrap()
        .to_string();
    assert!(
        text.contains("ip -6 addr add fd53:7570:6572::1/64 dev sv0 nodad  # unless it is there\n"),
        "{text}"
    );
}

/// `web` with an IPv6 address and its port published on [::] too.
fn dual_stack_plan(publish: &[&str]) -> NetworkPlan {
    let mut plan = plan(&request(publish), &Snapshot::default()).unwrap();
    let publication = &mut plan.container.publication;
    publication.address6 = Some("fd53:7570:6572::2".parse().unwrap());
    let v6: Vec<Port> = publication
        .ports
        .iter()
        .map(|p| Port {
            host_ip: HostIp::AnyV6,
            ..*p
        })
        .collect();
    publication.ports.extend(v6);
    plan
}

#[test]
fn ipv6_elements_render_in_the_ip6_and_bridge_tables() {
    let text = dual_stack_plan(&["8080:8000"]).to_string();
    for line in [
        "add element bridge supervisor spoof_guard6 { \"sv-0123456789ab\" . fd53:7570:6572::2 . 02:42:ac:10:00:02 comment",
        "add element bridge supervisor spoof_guard6 { \"sv-0123456789ab\" . fe80::42:acff:fe10:2 . 02:42:ac:10:00:02 comment",
        "add element ip supervisor tcp_ports { 8080 comment \"web 0123456789ab\" : 172.16.0.2 . 8000 }",
        "add element ip6 supervisor tcp_ports { 8080 comment \"web 0123456789ab\" : fd53:7570:6572::2 . 8000 }",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
}

#[test]
fn an_ipv6_port_someone_published_is_a_conflict_and_the_ipv4_one_is_not() {
    let published = |target, owner| Owned {
        target,
        key: 8080u16.to_be_bytes().to_vec(),
        owner: Some(holder(owner, "feedfeedfeed")),
    };
    let publication = dual_stack_plan(&["8080:8000"]).container.publication;
    let v4_only = publication
        .ports
        .iter()
        .filter(|p| !p.host_ip.is_ipv6())
        .copied()
        .collect::<Vec<_>>();
    let snapshot = Snapshot {
        published: vec![published(Target::Ports6(Protocol::Tcp), "web6")],
        ..Snapshot::default()
    };
    let err = check_elements(&publication, &snapshot).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port [::]:8080->8000/tcp is already published by container web6 (feedfeedfeed)"
    );
    let ipv4_only = Publication {
        ports: v4_only,
        ..publication
    };
    assert!(check_elements(&ipv4_only, &snapshot).is_ok());
}

#[test]
fn a_host_port_published_on_one_ipv6_address_is_not_picked() {
    let mut key = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets()
        .to_vec();
    key.extend([0x9c, 0x40, 0, 0]); // 40000
    let snapshot = Snapshot {
        ephemeral: (40000, 40001),
        published: vec![Owned {
            target: Target::AddrPorts6(Protocol::Tcp),
            key,
            owner: None,
        }],
        ..Snapshot::default()
    };
    let ports = ports(&parse("8000").unwrap(), &snapshot).unwrap();
    assert_eq!(ports[0].host_port, 40001);
}

#[test]
fn a_host_range_picks_its_first_port_not_published_and_names_a_holder_when_none_is_left() {
    let published = |port: u16| Owned {
        target: Target::Ports(Protocol::Tcp),
        key: port.to_be_bytes().to_vec(),
        owner: Some(holder("db", "aaaa")),
    };
    let snapshot = Snapshot {
        published: vec![published(8000)],
        ..Snapshot::default()
    };
    let ports = ports(&parse("8000-8002:80").unwrap(), &snapshot).unwrap();
    assert_eq!(ports[0].host_port, 8001);
    let full = Snapshot {
        published: vec![published(8000), published(8001)],
        ..Snapshot::default()
    };
    let err = plan(&request(&["8000-8001:80"]), &full).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port 0.0.0.0:8000->80/tcp is already published by container db (aaaa)"
    );
}

#[test]
fn a_picked_port_split_per_family_is_one_port_on_both() {
    let both = per_family(&parse("8000-8002:80").unwrap(), true).unwrap();
    let snapshot = Snapshot {
        ephemeral: (40000, 40009),
        ..Snapshot::default()
    };
    let ports = ports(&both, &snapshot).unwrap();
    assert_eq!(ports[0].host_port, 8000);
    assert_eq!(ports[1].host_port, 8000);
    assert_eq!(ports[1].host_ip, HostIp::AnyV6);
    let both = per_family(&parse("80").unwrap(), true).unwrap();
    let picked = super::ports(&both, &snapshot).unwrap();
    assert_eq!(picked[0].host_port, picked[1].host_port);
}
