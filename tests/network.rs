//! `supervisor run --network bridge` (the default) end to end: the built
//! binary in its own throwaway host each (see common/mod.rs).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use common::container::{Background, Container, SV0, answers, ask, serve_tcp};
use common::{
    HostNs, container_veths, eth0_address, eventually, leases, neighbour_entries, stderr, stdout,
    stop, wait_for_no_veth,
};

#[test]
fn bridge_is_the_default_with_address_route_and_gateway_mac() {
    let Some(ns) = HostNs::new("bridge_is_the_default_with_address_route_and_gateway_mac") else {
        return;
    };
    let out = ns.run(&[
        "sh",
        "-c",
        "ip -br -4 addr show dev eth0; ip -4 route show default; ip -br link show dev eth0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("172.16.0.2/24"), "{text}");
    assert!(text.contains("default via 172.16.0.1 dev eth0"), "{text}");
    assert!(text.contains("02:42:ac:10:00:02"), "{text}");
    // Administratively up (its carrier comes and goes with its ports).
    let bridge = ns.ok("ip -4 -o addr show dev sv0; ip -o link show dev sv0");
    assert!(
        bridge.contains("172.16.0.1/24") && bridge.contains(",UP"),
        "{bridge}"
    );
    assert_eq!(ns.ok("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(
        ns.ok("cat /proc/sys/net/ipv4/conf/sv0/route_localnet")
            .trim(),
        "1"
    );
    assert_eq!(
        ns.ok("cat /proc/sys/net/ipv4/conf/all/route_localnet")
            .trim(),
        "0"
    );
    assert_eq!(leases(&ns).trim(), "", "the lease is released at exit");
    wait_for_no_veth(&ns);
}

#[test]
fn two_containers_on_the_bridge_talk_by_address() {
    let Some(ns) = HostNs::new("two_containers_on_the_bridge_talk_by_address") else {
        return;
    };
    // The server answers every connection: see `serve_tcp`.
    let server = Container::start(
        &ns,
        &["--name", "server", "--ip", "172.16.0.10"],
        &serve_tcp("server", 8000),
    );
    answers(
        "the client reads the server's answer",
        "from-server",
        || {
            ask(
                |script| ns.run(&["--name", "client", "sh", "-c", script]),
                "172.16.0.10",
                8000,
            )
        },
    );
    server.stop();
}

#[test]
fn a_container_reaches_the_gateway() {
    let Some(ns) = HostNs::new("a_container_reaches_the_gateway") else {
        return;
    };
    // A host service on every address, the bridge's included, answering
    // every connection: see `serve_tcp`.
    let _host_server = Background::start(ns.command("timeout"), &serve_tcp("the-host", 7000));
    answers(
        "the container reads the host's answer",
        "from-the-host",
        || ask(|script| ns.run(&["sh", "-c", script]), "172.16.0.1", 7000),
    );
}

#[test]
fn a_pinned_address_is_honoured_and_its_conflict_names_the_holder() {
    let Some(ns) = HostNs::new("a_pinned_address_is_honoured_and_its_conflict_names_the_holder")
    else {
        return;
    };
    let (holder, mut out) = ns.start(&[
        "--name",
        "holder",
        "--ip",
        "172.16.0.30",
        "--",
        "sh",
        "-c",
        "echo ready; ip -br -4 addr show dev eth0; read _ || true",
    ]);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("172.16.0.30/24"), "{line}");
    let lease = ns.ok("cat /run/supervisor/leases/sv0/172.16.0.30");
    // nsenter execs the supervisor: the child's pid is the supervisor's.
    assert!(lease.contains("name=holder\n"), "{lease}");
    assert!(
        lease.contains(&format!("\npid={}\n", holder.id())),
        "{lease}"
    );
    assert!(lease.contains("pid_start="), "{lease}");

    let before = container_veths(&ns);
    let out = ns.run(&["--name", "second", "--ip", "172.16.0.30", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("supervisor: address 172.16.0.30 is in use by container holder (id "),
        "{err}"
    );
    assert_eq!(
        container_veths(&ns),
        before,
        "the refused run created no link"
    );
    stop(holder);
    assert_eq!(leases(&ns).trim(), "");
    // Free again.
    let out = ns.run(&["--ip", "172.16.0.30", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn fifty_concurrent_runs_get_distinct_addresses_and_release_them() {
    let Some(ns) = HostNs::new("fifty_concurrent_runs_get_distinct_addresses_and_release_them")
    else {
        return;
    };
    // All fifty stay up until every one has its address: a container that
    // ended early would hand its address to a later one.
    let mut runs: Vec<(Child, BufReader<ChildStdout>)> = (0..50)
        .map(|_| {
            let mut child = ns
                .supervisor()
                .args(["run", "--", "sh", "-c"])
                .arg("ip -4 -o addr show dev eth0; read _ || true")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn supervisor");
            let out = BufReader::new(child.stdout.take().expect("stdout"));
            (child, out)
        })
        .collect();
    let mut addresses = BTreeSet::new();
    for (_, out) in &mut runs {
        let mut line = String::new();
        out.read_line(&mut line).expect("read address line");
        let addr = line
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        addresses.insert(addr);
    }
    for (child, _) in runs {
        stop(child);
    }
    assert_eq!(addresses.len(), 50, "{addresses:?}");
    assert_eq!(leases(&ns).trim(), "", "every lease released");
    wait_for_no_veth(&ns);
}

#[test]
fn bad_ip_subnet_or_bridge_is_one_line_exit_125_and_creates_nothing() {
    let Some(ns) = HostNs::new("bad_ip_subnet_or_bridge_is_one_line_exit_125_and_creates_nothing")
    else {
        return;
    };
    let before = ns.ok("ip -br link; ls -A /run");
    for (args, expected) in [
        (
            &["--ip", "10.0.0.5", "true"][..],
            "supervisor: invalid --ip: address 10.0.0.5 is outside the subnet 172.16.0.0/24",
        ),
        (
            &["--ip", "172.16.0.1", "true"],
            "supervisor: invalid --ip: address 172.16.0.1 is the gateway address",
        ),
        (
            &["--ip", "172.16.0.0", "true"],
            "supervisor: invalid --ip: address 172.16.0.0 is the network address",
        ),
        (
            &["--ip", "172.16.0.x", "true"],
            "supervisor: invalid --ip: \"172.16.0.x\" is not an IPv4 address",
        ),
        (
            &["--subnet", "172.16.0.0/33", "true"],
            "supervisor: invalid subnet \"172.16.0.0/33\"",
        ),
        (
            &["--subnet", "172.16.0.1/24", "true"],
            "supervisor: invalid subnet \"172.16.0.1/24\": host bits set, did you mean 172.16.0.0/24?",
        ),
        (
            &["--subnet", "bogus", "true"],
            "supervisor: invalid subnet \"bogus\"",
        ),
        (
            &["--bridge", "much-too-long-name", "true"],
            "supervisor: invalid --bridge \"much-too-long-name\": longer than 15 bytes",
        ),
        (
            &["--network", "none", "--ip", "172.16.0.5", "true"],
            "supervisor: --ip needs --network bridge",
        ),
    ] {
        let out = ns.run(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(expected), "{args:?}: {err}");
    }
    let out = ns
        .supervisor()
        .env("SUPERVISOR_SUBNET", "10.0.0.0/40")
        .args(["run", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).starts_with("supervisor: invalid subnet \"10.0.0.0/40\""));
    assert_eq!(ns.ok("ip -br link; ls -A /run"), before);
}

#[test]
fn unusable_subnets_and_bridge_names_are_refused_before_anything_is_created() {
    let Some(ns) = HostNs::new("unusable_subnets_and_bridge_names_are_refused_before_anything")
    else {
        return;
    };
    // A network in use: its bridge, base ruleset and state directory exist,
    // and none of it may change.
    let out = ns.run(&["true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for_no_veth(&ns);
    let system = "ip -o link | cut -d' ' -f2; ip -o -4 addr | cut -d' ' -f2-7; ip route | sed 's/ linkdown//'; \
                  nft list ruleset; find /run | sort; \
                  sysctl -a 2>/dev/null | grep -E 'forwarding|route_localnet'";
    let before = ns.ok(system);
    let subnet = "supervisor: invalid subnet";
    for (args, expected) in [
        (
            &["--subnet", "127.0.0.0/24"][..],
            format!("{subnet} \"127.0.0.0/24\": overlaps 127.0.0.0/8 (loopback)"),
        ),
        (
            &["--subnet", "224.0.0.0/24"],
            format!("{subnet} \"224.0.0.0/24\": overlaps 224.0.0.0/4 (multicast)"),
        ),
        (
            &["--subnet", "0.0.0.0/24"],
            format!("{subnet} \"0.0.0.0/24\": overlaps 0.0.0.0/8"),
        ),
        (
            &["--subnet", "255.255.255.0/30"],
            format!("{subnet} \"255.255.255.0/30\": overlaps 240.0.0.0/4 (reserved"),
        ),
        (
            &["--subnet", "169.254.0.0/16"],
            format!("{subnet} \"169.254.0.0/16\": overlaps 169.254.0.0/16 (link-local)"),
        ),
        (
            &["--subnet", "10.1.0.0/31"],
            format!("{subnet} \"10.1.0.0/31\": prefix /31 leaves no container addresses"),
        ),
        (
            &["--subnet", "10.1.0.1/32"],
            format!("{subnet} \"10.1.0.1/32\": prefix /32"),
        ),
        (
            &["--bridge", "br\u{e0}"],
            "supervisor: invalid --bridge \"br\u{e0}\": contains".to_string(),
        ),
        (
            &["--bridge", "a\x0bb"],
            "supervisor: invalid --bridge \"a\\u{b}b\": contains".to_string(),
        ),
        (
            &["--bridge", "a:b"],
            "supervisor: invalid --bridge \"a:b\": contains".to_string(),
        ),
        (
            &["--bridge", "a b"],
            "supervisor: invalid --bridge \"a b\": contains".to_string(),
        ),
        (
            &["--bridge", "a/b"],
            "supervisor: invalid --bridge \"a/b\": contains".to_string(),
        ),
        (
            &["--bridge", ".."],
            "supervisor: invalid --bridge \"..\": reserved".to_string(),
        ),
        (
            &["--bridge", ""],
            "supervisor: invalid --bridge \"\": empty".to_string(),
        ),
        (
            &["--bridge", "0123456789abcdef"],
            "supervisor: invalid --bridge \"0123456789abcdef\": longer than 15 bytes".to_string(),
        ),
        (
            &["--bridge", ".hidden"],
            "supervisor: invalid --bridge \".hidden\": starts with '.'".to_string(),
        ),
        (
            &["--bridge", "lo", "--subnet", "10.9.9.0/24"],
            "supervisor: lo exists and is not a bridge".to_string(),
        ),
    ] {
        // A bridge of their own for the subnets: without the checks, one
        // would be created.
        let bridge: &[&str] = match args[0] {
            "--subnet" => &["--bridge", "sv9"],
            _ => &[],
        };
        let out = ns.run(&[bridge, args, &["--", "true"]].concat());
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(&expected), "{args:?}: {err}");
        assert_eq!(ns.ok(system), before, "{args:?} changed the system");
    }
}

#[test]
fn a_subnet_overlapping_a_host_route_is_refused_naming_the_interface() {
    let Some(ns) = HostNs::new("a_subnet_overlapping_a_host_route_is_refused_naming_the_interface")
    else {
        return;
    };
    ns.ok("ip link add uplink0 type veth peer name uplink1 && ip addr add 172.16.9.9/16 dev uplink0 && ip link set uplink0 up");
    let out = ns.run(&["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert_eq!(
        err.trim(),
        "supervisor: subnet 172.16.0.0/24 overlaps the route 172.16.0.0/16 on uplink0; choose another subnet"
    );
    assert!(!ns.ok("ip -br link").contains("sv0"));
    assert_eq!(
        leases(&ns).trim(),
        "",
        "the lease taken first is given back"
    );
    let eth0 = eth0_address(&ns, &["--subnet", "10.77.0.0/24"]);
    assert!(eth0.contains("10.77.0.2/24"), "{eth0}");
}

#[test]
fn a_subnet_holding_an_address_of_the_host_on_another_interface_is_refused_naming_it() {
    let Some(ns) = HostNs::new("a_subnet_holding_an_address_of_the_host_is_refused_naming_it")
    else {
        return;
    };
    // A virtual address of the host's (keepalived's, kube-ipvs0's): it
    // routes nothing, but a container given it could not be reached, and
    // its published ports would lead to the host's own services.
    ns.ok("ip link add vip0 type bridge && ip link set vip0 up \
         && ip addr add 172.16.0.2/32 dev vip0 \
         && ip -6 addr add fd53:7570:6572::7/128 dev vip0 nodad noprefixroute");
    let out = ns.run(&["-p", "8080:22", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "supervisor: subnet 172.16.0.0/24 holds 172.16.0.2, an address of this host on vip0; \
         choose another subnet"
    );
    assert!(!ns.ok("ip -br link").contains("sv0"));
    assert_eq!(
        leases(&ns).trim(),
        "",
        "the lease taken first is given back"
    );
    let out = ns.run(&["--ipv6", "--subnet", "10.77.0.0/24", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "supervisor: subnet6 fd53:7570:6572::/64 holds fd53:7570:6572::7, an address of this \
         host on vip0; choose another subnet6 (--subnet6)"
    );
    let eth0 = eth0_address(&ns, &["--subnet", "10.77.0.0/24"]);
    assert!(eth0.contains("10.77.0.2/24"), "{eth0}");
}

#[test]
fn a_local_route_of_a_range_overlapping_the_subnet_is_refused_naming_its_interface() {
    let Some(ns) = HostNs::new("a_local_route_of_a_range_overlapping_the_subnet_is_refused") else {
        return;
    };
    // AnyIP: every address of the range is the host's own, though the
    // route's destination (its first address) is outside the subnet.
    ns.ok("ip route add local 172.16.0.0/16 dev lo table local \
         && ip -6 route add local fd53:7570::/32 dev lo table local");
    let out = ns.run(&["--subnet", "172.16.5.0/24", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "supervisor: subnet 172.16.5.0/24 overlaps 172.16.0.0/16, addresses of this host \
         (a local route) on lo; choose another subnet"
    );
    assert!(!ns.ok("ip -br link").contains("sv0"));
    let out = ns.run(&["--ipv6", "--subnet", "10.77.0.0/24", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "supervisor: subnet6 fd53:7570:6572::/64 overlaps fd53:7570::/32, addresses of this \
         host (a local route) on lo; choose another subnet6 (--subnet6)"
    );
    let eth0 = eth0_address(&ns, &["--subnet", "10.77.0.0/24"]);
    assert!(eth0.contains("10.77.0.2/24"), "{eth0}");
}

#[test]
fn another_tables_forward_chain_with_policy_drop_is_warned_of_naming_the_bridge() {
    let Some(ns) = HostNs::new("another_tables_forward_chain_with_policy_drop_is_warned_of") else {
        return;
    };
    ns.ok("nft add table inet other \
           && nft add chain inet other guard '{ type filter hook forward priority 0; policy drop; }'");
    let out = ns.run(&["true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("table inet other has a forward chain with policy drop")
            && err.contains(r#"`iifname "sv0" accept`"#),
        "{err}"
    );
}

/// A Linux bridge takes 1,023 ports; the kernel refuses one more with
/// EXFULL, which the user read as "creating veth sv-…: Exchange full".
#[test]
fn a_full_bridge_is_refused_naming_it_and_its_limit_and_leaves_nothing() {
    let Some(ns) =
        HostNs::new("a_full_bridge_is_refused_naming_it_and_its_limit_and_leaves_nothing")
    else {
        return;
    };
    assert!(ns.run(&["true"]).status.success());
    ns.ok(
        "for i in $(seq 1 1023); do echo \"link add p$i master sv0 type veth peer name q$i\"; \
         done | ip -batch -",
    );
    let out = ns.run(&["-p", "8080:80", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out),
        "supervisor: bridge sv0 has 1023 ports already, the most a Linux bridge takes: put \
         more containers on another bridge (another network)\n"
    );
    assert_eq!(container_veths(&ns), Vec::<String>::new());
    assert_eq!(leases(&ns).trim(), "", "the lease is given back");
}

#[test]
fn network_none_keeps_only_lo_and_creates_no_bridge() {
    let Some(ns) = HostNs::new("network_none_keeps_only_lo_and_creates_no_bridge") else {
        return;
    };
    let out = ns.run(&["--network", "none", "ip", "-br", "link"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let links: Vec<_> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(links, ["lo"]);
    assert!(!ns.ok("ip -br link").contains("sv0"));
}

#[test]
fn the_veth_goes_with_the_container_even_when_killed() {
    let Some(ns) = HostNs::new("the_veth_goes_with_the_container_even_when_killed") else {
        return;
    };
    let (child, _out) = ns.start(&["--", "sh", "-c", "echo ready; read _"]);
    assert_eq!(container_veths(&ns).len(), 1);
    // SIGKILL the supervisor: PR_SET_PDEATHSIG takes the container along,
    // and its namespace the veth.
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for_no_veth(&ns);
}

/// A killed service's connection with unsent data to a peer that reads
/// nothing outlives it: the kernel keeps the orphaned socket, which keeps
/// probing the closed window for minutes, and the socket holds the
/// namespace, and with it eth0, its address and its MAC, the pair's host
/// end still up on the bridge. Once `run` has ended, the pair goes all the
/// same: without it being deleted, the veth stayed there minutes.
#[test]
fn the_veth_goes_with_the_container_even_when_a_socket_outlives_it() {
    let Some(ns) = HostNs::new("the_veth_goes_with_the_container_even_when_a_socket_outlives_it")
    else {
        return;
    };
    let (peer, container) = stuck_sender(&ns);
    container.stop();
    eventually("the container's veth gone", Duration::from_secs(3), || {
        container_veths(&ns).is_empty().then_some(())
    });
    assert_eq!(ns.ok("ip -br link show master sv0"), "");
    drop(peer);
}

/// The same for a supervisor killed with SIGKILL: its container dies with
/// it, the socket keeps the namespace, and the pair stays until `gc` (or
/// a run that reclaims its address) deletes it.
#[test]
fn gc_deletes_a_killed_supervisors_veth_even_when_a_socket_holds_its_namespace() {
    let Some(ns) = HostNs::new("gc_deletes_a_killed_supervisors_veth_even_when_a_socket_holds")
    else {
        return;
    };
    let peer = killed_with_its_veth_held(&ns);
    assert_eq!(container_veths(&ns).len(), 1, "the namespace outlives it");
    gc(&ns);
    assert_eq!(container_veths(&ns), Vec::<String>::new());
    assert_eq!(ns.ok("ip -br link show master sv0"), "");
    drop(peer);
}

#[test]
fn gc_deletes_a_killed_supervisors_veth_before_giving_back_its_address() {
    let Some(ns) = HostNs::new("gc_deletes_a_killed_supervisors_veth_before_giving_back") else {
        return;
    };
    let peer = killed_with_its_veth_held(&ns);
    let leased = common::leases(&ns);
    assert!(leased.contains("172.16.0.2"), "{leased}");
    let mut gc = common::background(
        ns.supervisor()
            .env("SUPERVISOR_TEST_PAUSE_AT", "unlinked")
            .arg("gc"),
    );
    let pid = gc.id();
    eventually(
        "gc stopping between the link and the lease",
        Duration::from_secs(30),
        || (common::process_state(pid) == Some('T')).then_some(()),
    );
    // No one can be given the address while the old veth is on the bridge.
    assert_eq!(container_veths(&ns), Vec::<String>::new());
    assert_eq!(common::leases(&ns), leased, "the lease is still held");
    ns.ok(&format!("kill -CONT {pid}"));
    let status = gc.wait().unwrap();
    assert!(status.success(), "gc: {status}");
    assert_eq!(common::leases(&ns), "");
    drop(peer);
}

/// A stuck sender whose supervisor is killed (SIGKILL) and whose container
/// is gone: its namespace, held by the unsent data's socket, keeps its veth
/// until `gc` deletes it. The peer holds the connection until dropped.
fn killed_with_its_veth_held(ns: &HostNs) -> Sluggard {
    let (peer, mut container) = stuck_sender(ns);
    container.supervisor.kill().unwrap();
    container.supervisor.wait().unwrap();
    eventually("the container gone", Duration::from_secs(10), || {
        matches!(common::process_state(container.pid), None | Some('Z')).then_some(())
    });
    peer
}

/// A container on sv0 whose service has a connection to a peer in the
/// host that reads nothing, its window closed and data left unsent.
fn stuck_sender(ns: &HostNs) -> (Sluggard, Container) {
    let peer = Sluggard::listen(ns, 9000);
    let gateway = SV0.gateway();
    let container = Container::on(
        ns,
        &SV0,
        &[],
        &format!("busybox nc {gateway} 9000 </dev/zero"),
    );
    eventually(
        "unsent data in the container",
        Duration::from_secs(10),
        || {
            let out = stdout(&container.sh(&format!("ss -tnH dst {gateway}:9000")));
            let unsent = out.split_whitespace().nth(2)?.parse::<u64>().ok()?;
            (unsent > 0).then_some(())
        },
    );
    assert_eq!(container_veths(ns).len(), 1);
    (peer, container)
}

/// A peer that accepts one connection on `port` in a host and never
/// reads from it, until dropped.
struct Sluggard {
    _until: std::sync::mpsc::Sender<()>,
}

impl Sluggard {
    fn listen(ns: &HostNs, port: u16) -> Sluggard {
        let netns = ns.netns_path();
        let (until, dropped) = std::sync::mpsc::channel::<()>();
        let (bound, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&netns).expect("open the host's netns");
            setns(ns, CloneFlags::CLONE_NEWNET).expect("setns into the host");
            let listener = TcpListener::bind(("0.0.0.0", port)).expect("listen");
            bound.send(()).expect("the test waits");
            let (_stream, _) = listener.accept().expect("accept");
            // Holds the connection, unread, until the Sluggard is dropped.
            let _ = dropped.recv();
        });
        listening.recv().expect("the peer listening");
        Sluggard { _until: until }
    }
}

/// The supervisor holds the container's network namespace by one fd, so
/// a SYN its elements still send there after the container ends is refused
/// rather than lost (tests/churn.rs); it keeps no socket inside it.
#[test]
fn the_supervisor_holds_the_containers_namespace_by_one_fd_and_no_socket_in_it() {
    let Some(ns) = HostNs::new("the_supervisor_holds_the_containers_namespace_by_one_fd") else {
        return;
    };
    let (child, _out) = ns.start(&["--", "sh", "-c", "echo ready; read _ || true"]);
    let supervisor = child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children")).unwrap();
    let container: u32 = children.trim().parse().expect("one container pid");
    let theirs = std::fs::read_link(format!("/proc/{container}/ns/net")).unwrap();
    // Its own namespace it may hold, to come back to after plumbing.
    let own = std::fs::read_link(format!("/proc/{supervisor}/ns/net")).unwrap();
    let held: Vec<_> = std::fs::read_dir(format!("/proc/{supervisor}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("net:[") && *target != own)
        .collect();
    assert_eq!(held, vec![theirs], "namespace fds held by the supervisor");
    // No netlink socket of ours inside it (ss lists its own netns's).
    let sockets = ns.ok(&format!(
        "nsenter --target={container} --net ss -f netlink -a -p"
    ));
    assert!(!sockets.contains("supervisor"), "{sockets}");
    stop(child);
    wait_for_no_veth(&ns);
}

/// Off means off: without IPv6, the container's eth0 has it disabled, so
/// a stray router advertisement configures nothing and it has no
/// link-local address either.
#[test]
fn without_ipv6_eth0_has_ipv6_disabled_and_no_ipv6_address() {
    let Some(ns) = HostNs::new("without_ipv6_eth0_has_ipv6_disabled_and_no_ipv6_address") else {
        return;
    };
    let out = ns.run(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; echo addresses:; ip -6 addr show dev eth0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (disabled, addresses) = text.split_once("addresses:").unwrap();
    assert_eq!(disabled.trim(), "1", "{text}");
    assert_eq!(addresses.trim(), "", "no IPv6 address on eth0: {text}");
}

/// The host's neighbour entry for a container is exempt from the kernel's
/// table limit (extern_learn: see netlink::neighbours), so nothing but
/// our teardown takes it out: `run`'s end does, a dead supervisor's is
/// taken by `gc`.
#[test]
fn a_containers_neighbour_entry_is_exempt_from_the_table_limit_and_goes_with_it_or_at_gc() {
    let Some(ns) = HostNs::new("a_containers_neighbour_entry_is_exempt_from_the_table_limit")
    else {
        return;
    };
    // A bystander keeps the bridge's carrier: the kernel flushes the
    // bridge's entries, ours too, when its last port goes.
    let (bystander, _bystander_out) = ns.start(&[
        "--ip",
        "172.16.0.69",
        "--",
        "sh",
        "-c",
        "echo ready; read _ || true",
    ]);
    let (child, _out) = ns.start(&[
        "--ip",
        "172.16.0.70",
        "--",
        "sh",
        "-c",
        "echo ready; read _ || true",
    ]);
    let entry = neighbour_entries(&ns, "172.16.0.70");
    assert!(
        entry.contains("lladdr 02:42:ac:10:00:46") && entry.contains("extern_learn"),
        "{entry}"
    );
    stop(child);
    assert_eq!(neighbour_entries(&ns, "172.16.0.70"), "", "run's end");

    // A supervisor killed: its record stays for gc, which takes the entry.
    killed_after_plumbing(&ns, "172.16.0.71");
    assert!(neighbour_entries(&ns, "172.16.0.71").contains("extern_learn"));
    gc(&ns);
    assert_eq!(neighbour_entries(&ns, "172.16.0.71"), "", "gc");

    // Only an entry still pointing at the container's MAC: one the
    // address's next holder (another MAC here) set stays.
    killed_after_plumbing(&ns, "172.16.0.72");
    ns.ok("ip neigh replace 172.16.0.72 lladdr 02:00:00:00:00:01 dev sv0 nud stale");
    gc(&ns);
    assert!(
        neighbour_entries(&ns, "172.16.0.72").contains("02:00:00:00:00:01"),
        "another's entry kept"
    );
    stop(bystander);
}

/// A container on `ip` whose supervisor is killed once it runs.
fn killed_after_plumbing(ns: &HostNs, ip: &str) {
    let args = ["--ip", ip, "--", "sh", "-c", "echo ready; read _ || true"];
    let (mut child, _out) = ns.start(&args);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn gc(ns: &HostNs) {
    let out = ns.supervisor().arg("gc").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
