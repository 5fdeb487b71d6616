//! `--publish` end to end: where a published port must be reachable, where
//! it must not, and what publishing must refuse. Each test is its own host
//! namespace with, where it needs one, an "outside" machine joined to it by
//! a veth pair (host 192.0.2.1, outside 192.0.2.2).
//!
//! Every case that runs containers runs on the default network (sv0) and on
//! another (sv1), each time with a container of the other network running
//! beside it: networks must neither break nor open each other's ports.

mod common;

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::process::Stdio;
use std::time::Duration;

use common::container::{
    Background, Container, Net, SV0, SV1, answers, ask, connects, host, inside, outside, refused,
    serve_tcp,
};
use common::{HostNs, stderr};

/// A host for one case on `net`, with a container of another network
/// running beside it for the whole case.
struct Host {
    _beside: Container,
    beside: Net,
    ns: HostNs,
}

impl Host {
    fn new(test: &str, net: Net) -> Option<Host> {
        let ns = HostNs::new(test)?;
        let beside = if net == SV0 { SV1 } else { SV0 };
        let container = Container::on(&ns, &beside, &["--name", "beside"], "true");
        Some(Host {
            _beside: container,
            beside,
            ns,
        })
    }
}

impl Deref for Host {
    type Target = HostNs;
    fn deref(&self) -> &HostNs {
        &self.ns
    }
}

/// `on_each_network!(case, ...)`: the tests `case::on_sv0` and
/// `case::on_sv1`, each running `fn case(net: Net)`.
macro_rules! on_each_network {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn on_sv0() {
                super::$case(super::SV0)
            }
            #[test]
            fn on_sv1() {
                super::$case(super::SV1)
            }
        }
    )*};
}

on_each_network!(
    the_host_reaches_a_published_port_on_loopback_its_own_address_and_the_gateway,
    the_outside_reaches_a_published_port_and_the_container_sees_the_clients_address,
    another_container_reaches_it_through_the_host_address_and_directly,
    a_container_reaches_its_own_published_port_with_br_netfilter_on_and_off,
    outbound_connections_leave_with_the_hosts_address,
    udp_is_published,
    a_port_published_on_127_0_0_1_is_not_reachable_from_outside,
    ranges_publish_every_port_of_the_range,
    a_bridge_neighbour_cannot_reach_services_on_the_hosts_loopback_cve_2020_8558,
    a_container_sending_from_an_address_other_than_its_own_is_dropped,
    new_connections_from_outside_to_an_unpublished_container_port_are_dropped,
    a_udp_client_that_keeps_sending_reaches_the_next_container_on_that_port,
    publishing_a_taken_port_fails_125_naming_the_port_and_its_holder,
    a_container_port_alone_gets_a_free_host_port_announced_on_stderr,
    teardown_removes_the_containers_elements,
    teardown_forgets_the_connections_of_its_published_ports,
);

fn the_host_reaches_a_published_port_on_loopback_its_own_address_and_the_gateway(net: Net) {
    let Some(ns) = Host::new(
        "the_host_reaches_a_published_port_on_loopback_its_own_address",
        net,
    ) else {
        return;
    };
    let _outside = ns.outside();
    let web = Container::web(&ns, &net, "web", &net.ip(2), &["8080:8000"]);
    for addr in ["127.0.0.1", "192.0.2.1", &net.gateway()] {
        answers(&format!("host -> {addr}:8080"), "from-web", || {
            ask(host(&ns), addr, 8080)
        });
    }
    web.stop();
}

fn the_outside_reaches_a_published_port_and_the_container_sees_the_clients_address(net: Net) {
    let Some(ns) = Host::new(
        "the_outside_reaches_a_published_port_and_the_container_sees",
        net,
    ) else {
        return;
    };
    let out = ns.outside();
    let mut web = Container::on(
        &ns,
        &net,
        &["--ip", &net.ip(2), "-p", "8080:8000"],
        "nc -n -v -l -p 8000 </dev/null 2>&1 | grep --line-buffered Connection",
    );
    connects("outside -> 192.0.2.1:8080", || {
        outside(&out)("echo hi | nc -n -N -w2 192.0.2.1 8080")
    });
    let seen = web.line();
    assert!(
        seen.starts_with("Connection received on 192.0.2.2 "),
        "{seen}"
    );
    web.stop();
}

fn another_container_reaches_it_through_the_host_address_and_directly(net: Net) {
    let Some(ns) = Host::new("another_container_reaches_it_through_the_host_address", net) else {
        return;
    };
    let _outside = ns.outside();
    let web = Container::web(&ns, &net, "web", &net.ip(2), &["8080:8000"]);
    let client = Container::on(&ns, &net, &["--ip", &net.ip(3)], "true");
    answers("client -> host:8080", "from-web", || {
        ask(inside(&client), "192.0.2.1", 8080)
    });
    answers("client -> web:8000", "from-web", || {
        ask(inside(&client), &net.ip(2), 8000)
    });
    client.stop();
    web.stop();
}

fn a_container_reaches_its_own_published_port_with_br_netfilter_on_and_off(net: Net) {
    let Some(ns) = Host::new("a_container_reaches_its_own_published_port", net) else {
        return;
    };
    let _outside = ns.outside();
    let web = Container::web(&ns, &net, "web", &net.ip(2), &["8080:8000"]);
    for setting in ["1", "0"] {
        ns.ok(&format!(
            "echo {setting} > /proc/sys/net/bridge/bridge-nf-call-iptables"
        ));
        for addr in ["192.0.2.1", &net.gateway()] {
            answers(
                &format!("web -> {addr}:8080 (br_netfilter {setting})"),
                "from-web",
                || ask(inside(&web), addr, 8080),
            );
        }
    }
    web.stop();
}

fn outbound_connections_leave_with_the_hosts_address(net: Net) {
    let Some(ns) = Host::new("outbound_connections_leave_with_the_hosts_address", net) else {
        return;
    };
    let out = ns.outside();
    let client = Container::on(&ns, &net, &["--ip", &net.ip(2)], "true");
    let listener = out
        .command("timeout")
        .args([
            "30",
            "sh",
            "-c",
            "nc -n -v -l -p 9000 </dev/null 2>&1 | grep Connection",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    connects("container -> outside:9000", || {
        client.sh("echo hi | nc -n -N -w2 192.0.2.2 9000")
    });
    let seen = common::stdout(&listener.wait_with_output().unwrap());
    assert!(
        seen.starts_with("Connection received on 192.0.2.1 "),
        "{seen}"
    );
    client.stop();
}

fn udp_is_published(net: Net) {
    let Some(ns) = Host::new("udp_is_published", net) else {
        return;
    };
    let mut dns = Container::on(
        &ns,
        &net,
        &["--ip", &net.ip(2), "-p", "5353:53/udp"],
        "nc -n -u -l -p 53 </dev/null",
    );
    ns.ok("echo udp-hello | timeout 2 nc -n -u -w1 127.0.0.1 5353 || true");
    assert_eq!(dns.line(), "udp-hello");
    dns.stop();
}

fn a_port_published_on_127_0_0_1_is_not_reachable_from_outside(net: Net) {
    let Some(ns) = Host::new(
        "a_port_published_on_127_0_0_1_is_not_reachable_from_outside",
        net,
    ) else {
        return;
    };
    let out = ns.outside();
    let web = Container::web(&ns, &net, "web", &net.ip(2), &["127.0.0.1:8080:8000"]);
    answers("host -> 127.0.0.1:8080", "from-web", || {
        ask(host(&ns), "127.0.0.1", 8080)
    });
    refused("outside -> 192.0.2.1:8080", || {
        ask(outside(&out), "192.0.2.1", 8080)
    });
    refused("host -> 192.0.2.1:8080", || {
        ask(host(&ns), "192.0.2.1", 8080)
    });
    web.stop();
}

fn ranges_publish_every_port_of_the_range(net: Net) {
    let Some(ns) = Host::new("ranges_publish_every_port_of_the_range", net) else {
        return;
    };
    let script = (9000..=9002)
        .map(|p| format!("({}) &", serve_tcp(&format!("port{p}"), p)))
        .collect::<Vec<_>>()
        .join(" ");
    let web = Container::on(
        &ns,
        &net,
        &["--ip", &net.ip(2), "-p", "8000-8002:9000-9002"],
        &format!("{script} true"),
    );
    for (host_port, port) in (8000..=8002).zip(9000..=9002) {
        answers(
            &format!("host -> {host_port}"),
            &format!("from-port{port}"),
            || ask(host(&ns), "127.0.0.1", host_port),
        );
    }
    web.stop();
}

fn a_bridge_neighbour_cannot_reach_services_on_the_hosts_loopback_cve_2020_8558(net: Net) {
    let Some(ns) = Host::new("a_bridge_neighbour_cannot_reach_the_hosts_loopback", net) else {
        return;
    };
    let web = Container::web(&ns, &net, "web", &net.ip(2), &["127.0.0.1:8081:8000"]);
    let _secret = Background::start(
        ns.command("timeout"),
        "while :; do echo SECRET | nc -n -l -s 127.0.0.1 -p 9999 -N; done",
    );
    // The attacker: a neighbour on the bridge routing 127.0.0.1 to the gateway.
    let attacker = Container::on(&ns, &net, &["--ip", &net.ip(3)], "true");
    let setup = attacker.sh(&format!(
        "ip addr flush dev lo && ip route add 127.0.0.1/32 via {} dev eth0 \
             && sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1",
        net.gateway()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    answers("host's own secret", "SECRET", || {
        ask(host(&ns), "127.0.0.1", 9999)
    });
    refused("neighbour -> host 127.0.0.1:9999", || {
        ask(inside(&attacker), "127.0.0.1", 9999)
    });
    refused("neighbour -> host 127.0.0.1:8081", || {
        ask(inside(&attacker), "127.0.0.1", 8081)
    });
    // Proof that the attack is real: without the guard chain it succeeds.
    ns.ok("nft delete chain ip supervisor guard");
    answers("the attack without the guard", "SECRET", || {
        ask(inside(&attacker), "127.0.0.1", 9999)
    });
    attacker.stop();
    web.stop();
}

fn a_container_sending_from_an_address_other_than_its_own_is_dropped(net: Net) {
    let Some(ns) = Host::new(
        "a_container_sending_from_an_address_other_than_its_own",
        net,
    ) else {
        return;
    };
    let out = ns.outside();
    let web = Container::web(&ns, &net, "web", &net.ip(2), &[]);
    let spoofer = Container::on(&ns, &net, &["--ip", &net.ip(3)], "true");
    // Root in its namespace could add any address (a container with NET_RAW
    // can forge one without it).
    let add = spoofer.sh(&format!("ip addr add {}/24 dev eth0", net.ip(99)));
    assert!(add.status.success(), "{}", stderr(&add));
    let _server = Background::start(out.command("timeout"), &serve_tcp("outside", 9000));
    answers("own address -> web", "from-web", || {
        ask(inside(&spoofer), &net.ip(2), 8000)
    });
    answers("own address -> outside", "from-outside", || {
        ask(inside(&spoofer), "192.0.2.2", 9000)
    });
    let spoofed = |addr: &str, port: u16| {
        let out = spoofer.sh(&format!(
            "timeout 3 nc -n -N -w2 -s {} {addr} {port} </dev/null",
            net.ip(99)
        ));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    refused("spoofed -> web", || spoofed(&net.ip(2), 8000));
    refused("spoofed -> outside", || spoofed("192.0.2.2", 9000));
    spoofer.stop();
    web.stop();
}

fn new_connections_from_outside_to_an_unpublished_container_port_are_dropped(net: Net) {
    let Some(ns) = Host::new("new_connections_from_outside_to_an_unpublished_port", net) else {
        return;
    };
    let out = ns.outside();
    out.ok(&format!("ip route add {} via 192.0.2.1", net.subnet));
    let web = Container::web(&ns, &net, "web", &net.ip(2), &["8080:8000"]);
    answers("published", "from-web", || {
        ask(outside(&out), "192.0.2.1", 8080)
    });
    refused("outside -> web:8000 directly", || {
        ask(outside(&out), &net.ip(2), 8000)
    });
    web.stop();
}

fn a_udp_client_that_keeps_sending_reaches_the_next_container_on_that_port(net: Net) {
    let Some(ns) = Host::new(
        "a_udp_client_that_keeps_sending_reaches_the_next_container",
        net,
    ) else {
        return;
    };
    // One client socket (fixed source port) sending a datagram every 50 ms.
    // One client (fixed source port: one conntrack entry) sending every
    // 50 ms, before, between and after the containers.
    let _client = Background::start(
        ns.command("timeout"),
        "while :; do echo ping | timeout 0.3 nc -n -u -w0 -p 40000 127.0.0.1 5353; sleep 0.05; done",
    );
    std::thread::sleep(Duration::from_millis(200));
    for (name, ip) in [("first", net.ip(2)), ("second", net.ip(3))] {
        let mut c = Container::on(
            &ns,
            &net,
            &["--name", name, "--ip", &ip, "-p", "5353:53/udp"],
            "nc -n -u -l -p 53 </dev/null",
        );
        assert_eq!(c.line(), "ping", "{name} container hears the client");
        c.stop();
    }
}

fn publishing_a_taken_port_fails_125_naming_the_port_and_its_holder(net: Net) {
    let Some(ns) = Host::new("publishing_a_taken_port_fails_125_naming_the_port", net) else {
        return;
    };
    let web = Container::web(&ns, &net, "web", &net.ip(2), &["8080:8000"]);
    let before = ns.ok("nft list ruleset");
    let out = ns
        .supervisor()
        // On the other network: host ports are one keyspace for all.
        .args([
            "run",
            "--bridge",
            ns.beside.bridge,
            "--subnet",
            ns.beside.subnet,
        ])
        .args([
            "--name",
            "api",
            "-p",
            "9090:9000",
            "-p",
            "8080:80",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("8080->80/tcp") && err.contains("container web ("),
        "{err}"
    );
    assert_eq!(ns.ok("nft list ruleset"), before, "nothing of api applied");
    answers("web untouched", "from-web", || {
        ask(host(&ns), "127.0.0.1", 8080)
    });
    web.stop();
}

#[test]
fn bad_publish_specs_are_one_line_exit_125_and_create_nothing() {
    let Some(ns) = HostNs::new("bad_publish_specs_are_one_line_exit_125_and_create_nothing") else {
        return;
    };
    let before = ns.ok("ip -br link; nft list ruleset; ls -A /run");
    for spec in [
        "0:80",
        "70000:80",
        "8000-8010:9000-9005",
        "1.2.3:80:80",
        "80:80/sctp",
    ] {
        let out = ns
            .supervisor()
            .args(["run", "-p", spec, "--", "true"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{spec}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("{spec:?}")), "{err}");
    }
    assert_eq!(ns.ok("ip -br link; nft list ruleset; ls -A /run"), before);
}

fn a_container_port_alone_gets_a_free_host_port_announced_on_stderr(net: Net) {
    let Some(ns) = Host::new("a_container_port_alone_gets_a_free_host_port", net) else {
        return;
    };
    let mut web = ns
        .supervisor()
        .args(["run", "--bridge", net.bridge, "--subnet", net.subnet])
        .args(["--ip", &net.ip(2), "-p", "8000", "--", "sh", "-c"])
        .arg(format!(
            "{} & echo ready; read _ || true",
            serve_tcp("web", 8000)
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(web.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    // "supervisor: published 0.0.0.0:NNNNN->8000/tcp"
    let port: u16 = line
        .split("0.0.0.0:")
        .nth(1)
        .and_then(|rest| rest.split("->").next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no published port in {line:?}"));
    assert!(port >= 1024, "{port}");
    answers("the picked port", "from-web", || {
        ask(host(&ns), "127.0.0.1", port)
    });
    drop(web.stdin.take());
    assert!(web.wait().unwrap().success());
}

fn teardown_removes_the_containers_elements(net: Net) {
    let Some(ns) = Host::new("teardown_removes_the_containers_elements", net) else {
        return;
    };
    let web = Container::web(&ns, &net, "web", &net.ip(2), &["8080:8000", "5353:53/udp"]);
    let listing = ns.ok("nft list ruleset");
    assert!(listing.contains("8080 comment \"web "), "{listing}");
    web.stop();
    let listing = ns.ok("nft list ruleset");
    assert!(!listing.contains("comment \"web "), "{listing}");
    assert!(
        listing.contains("table ip supervisor"),
        "the table stays for the next container"
    );
}

#[test]
fn another_tables_forward_drop_policy_is_warned_about() {
    let Some(ns) = HostNs::new("another_tables_forward_drop_policy_is_warned_about") else {
        return;
    };
    ns.ok(
        "nft add table inet firewalld && nft add chain inet firewalld filter_FORWARD \
           '{ type filter hook forward priority filter + 10; policy drop; }'",
    );
    let out = ns
        .supervisor()
        .args(["run", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("inet firewalld") && err.contains("policy drop"),
        "{err}"
    );
}

fn teardown_forgets_the_connections_of_its_published_ports(net: Net) {
    let Some(ns) = Host::new(
        "teardown_forgets_the_connections_of_its_published_ports",
        net,
    ) else {
        return;
    };
    let dns = Container::on(
        &ns,
        &net,
        &["--ip", &net.ip(2), "-p", "5353:53/udp"],
        "nc -n -u -l -p 53 </dev/null",
    );
    let entries = || ns.ok("conntrack -L -p udp --orig-port-dst 5353 2>/dev/null || true");
    let src = format!("src={}", net.ip(2));
    // Sent again until the container has heard it and an entry stays: the
    // listener may not be up yet, and the run forgets the port's entries
    // once more just after the container starts (see `forget_udp`).
    let mut heard = false;
    let what = "the client heard, with its conntrack entry";
    common::eventually(what, Duration::from_secs(10), || {
        ns.ok("echo hello | timeout 1 nc -n -u -w0 -p 40001 127.0.0.1 5353 || true");
        let line = dns.lines.recv_timeout(Duration::from_millis(100));
        heard |= line.is_ok_and(|l| l == "hello");
        (heard && entries().contains(&src)).then_some(())
    });
    dns.stop();
    assert!(!entries().contains(&src), "{}", entries());
}
