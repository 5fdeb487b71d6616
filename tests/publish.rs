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
use std::process::{Child, Stdio};
use std::time::Duration;

use common::container::{
    Background, Container, Net, SV0, SV1, answers, ask, connects, host, inside, outside, refused,
    serve_tcp,
};
use common::{HostNs, stderr, stdout};

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
    let dns = Container::on(
        &ns,
        &net,
        &["--ip", &net.ip(2), "-p", "5353:53/udp"],
        "nc -n -u -l -p 53 </dev/null",
    );
    // Sent again until heard: a datagram that arrives before the listener
    // is up is lost. One source port, so nc's first peer stays the peer.
    common::eventually(
        "the container heard udp-hello",
        Duration::from_secs(10),
        || {
            ns.ok("echo udp-hello | timeout 1 nc -n -u -w0 -p 40002 127.0.0.1 5353 || true");
            let line = dns.lines.recv_timeout(Duration::from_millis(100));
            line.is_ok_and(|l| l == "udp-hello").then_some(())
        },
    );
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
    for (specs, expected) in [
        (&["0:80"][..], "\"0:80\""),
        (&["70000:80"], "\"70000:80\""),
        (&["8000-8010:9000-9005"], "\"8000-8010:9000-9005\""),
        (
            &["8002-8000:9000"],
            "invalid --publish \"8002-8000:9000\": range 8002-8000 runs backwards",
        ),
        (&["1.2.3:80:80"], "\"1.2.3:80:80\""),
        (&["80:80/sctp"], "\"80:80/sctp\""),
        (
            &["+80:80"],
            "invalid --publish \"+80:80\": bad port \"+80\"",
        ),
        (
            &["9000:80", "9000:81"],
            "--publish \"9000:80\" and --publish \"9000:81\" both publish host port 9000/tcp: one run",
        ),
    ] {
        let mut cmd = ns.supervisor();
        cmd.arg("run");
        for spec in specs {
            cmd.args(["-p", spec]);
        }
        let out = cmd
            .args(["--", "true"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{specs:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{specs:?}: {err}");
    }
    assert_eq!(ns.ok("ip -br link; nft list ruleset; ls -A /run"), before);
}

fn a_container_port_alone_gets_a_free_host_port_announced_on_stderr(net: Net) {
    let Some(ns) = Host::new("a_container_port_alone_gets_a_free_host_port", net) else {
        return;
    };
    let script = format!("{} & echo ready; read _ || true", serve_tcp("web", 8000));
    let ip = net.ip(2);
    let args = ["--bridge", net.bridge, "--subnet", net.subnet];
    let mut web = spawn_run(
        &ns,
        &[&args[..], &["--ip", &ip, "-p", "8000"]].concat(),
        &script,
    );
    let (port, _) = picked_port(&mut BufReader::new(web.stderr.take().unwrap()));
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

/// Runs `supervisor run ARGS… -- true`, which must be refused with exit 125
/// and one line; returns that line.
fn refused_run(ns: &HostNs, args: &[&str]) -> String {
    let out = ns.run(&[args, &["--", "true"]].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    err
}

/// `supervisor run ARGS… -- sh -c SCRIPT` with every stream piped.
fn spawn_run(ns: &HostNs, args: &[&str], script: &str) -> Child {
    ns.supervisor()
        .arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn supervisor")
}

/// Reads the next "supervisor: published 0.0.0.0:PORT->CTR/PROTO" line of
/// a run's stderr: the picked host port, and whether it is UDP.
fn picked_port(err: &mut impl BufRead) -> (u16, bool) {
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    let (port, rest) = line
        .trim()
        .strip_prefix("supervisor: published 0.0.0.0:")
        .and_then(|rest| rest.split_once("->"))
        .unwrap_or_else(|| panic!("no published port in {line:?}"));
    let port = port.parse().unwrap_or_else(|_| panic!("{line:?}"));
    (port, rest.ends_with("/udp"))
}

/// What a host program gets when it binds `port` (`nc -l`, which sets
/// SO_REUSEADDR): "in use", or "bound" when it could listen.
fn host_bind(ns: &HostNs, udp: bool, addr: Option<&str>, port: u16) -> &'static str {
    let udp = if udp { "-u" } else { "" };
    let addr = addr.map(|a| format!("-s {a}")).unwrap_or_default();
    let out = ns.sh(&format!(
        "timeout 1 nc -n -l {udp} {addr} -p {port} </dev/null 2>&1; echo rc=$?"
    ));
    let text = stdout(&out);
    if text.contains("Address already in use") {
        "in use"
    } else if text.contains("rc=124") {
        "bound"
    } else {
        panic!("nc -l {udp} {addr} -p {port}: {text}")
    }
}

#[test]
fn a_port_on_all_addresses_and_on_one_refuse_each_other_naming_the_container() {
    let Some(ns) = HostNs::new("a_port_on_all_addresses_and_on_one_refuse_each_other") else {
        return;
    };
    for (first, second) in [
        ("8080:8000", "127.0.0.1:8080:8000"),
        ("127.0.0.1:8080:8000", "8080:8000"),
    ] {
        let web = Container::web(&ns, &SV0, "web", "172.16.0.2", &[first]);
        let before = ns.ok("nft list ruleset; ls -R /run/supervisor");
        let err = refused_run(&ns, &["--name", "api", "-p", second]);
        let on = if second.starts_with("127") {
            "127.0.0.1:"
        } else {
            ""
        };
        assert!(
            err.starts_with(&format!(
                "supervisor: cannot publish {on}8080->8000/tcp: host port {on}8080/tcp is in use by container web ("
            )),
            "{first} then {second}: {err}"
        );
        assert_eq!(ns.ok("nft list ruleset; ls -R /run/supervisor"), before);
        answers(&format!("web on {first} untouched"), "from-web", || {
            ask(host(&ns), "127.0.0.1", 8080)
        });
        web.stop();
        common::wait_for_no_veth(&ns);
    }
    // Another address of the host is another socket: both are published.
    let _outside = ns.outside();
    let web = Container::web(&ns, &SV0, "web", "172.16.0.2", &["127.0.0.1:8080:8000"]);
    let api = Container::web(&ns, &SV0, "api", "172.16.0.3", &["192.0.2.1:8080:8000"]);
    answers("127.0.0.1:8080", "from-web", || {
        ask(host(&ns), "127.0.0.1", 8080)
    });
    answers("192.0.2.1:8080", "from-api", || {
        ask(host(&ns), "192.0.2.1", 8080)
    });
    api.stop();
    web.stop();
}

#[test]
fn a_port_a_host_program_listens_on_is_refused_naming_the_program() {
    let Some(ns) = HostNs::new("a_port_a_host_program_listens_on_is_refused_naming_it") else {
        return;
    };
    let before = ns.ok("ip -br link; nft list ruleset 2>&1");
    let _tcp = Background::start(ns.command("timeout"), "nc -n -lk -p 9090 </dev/null");
    let _udp = Background::start(ns.command("timeout"), "nc -n -u -l -p 9091 </dev/null");
    common::eventually("the host listeners", Duration::from_secs(10), || {
        let listening = ns.ok("ss -Hlnt 'sport = :9090'; ss -Hlnu 'sport = :9091'");
        (listening.lines().count() == 2).then_some(())
    });
    for (spec, port) in [("9090:8000", "9090/tcp"), ("9091:53/udp", "9091/udp")] {
        let err = refused_run(&ns, &["-p", spec]);
        assert!(
            err.starts_with("supervisor: cannot publish ")
                && err.contains(&format!(": host port {port} is in use by process ")),
            "{spec}: {err}"
        );
        let pid = ns.ok(&format!(
            "ss -Hlnp{} 'sport = :{}' | grep -o 'pid=[0-9]*' | head -1",
            if port.ends_with("udp") { "u" } else { "t" },
            &port[..4]
        ));
        let pid = pid.trim().trim_start_matches("pid=");
        assert!(
            err.trim_end()
                .ends_with(&format!("is in use by process {pid} (nc)")),
            "{spec}: {err} (holder pid {pid})"
        );
    }
    // On one address too, since the listener has every address.
    let err = refused_run(&ns, &["-p", "127.0.0.1:9090:8000"]);
    assert!(err.contains("(nc)"), "{err}");
    assert_eq!(ns.ok("ip -br link; nft list ruleset 2>&1"), before);
}

#[test]
fn a_host_program_binding_a_published_port_later_gets_eaddrinuse() {
    let Some(ns) = HostNs::new("a_host_program_binding_a_published_port_later_gets_eaddrinuse")
    else {
        return;
    };
    let publish = [
        "-p",
        "8080:8000",
        "-p",
        "5353:53/udp",
        "-p",
        "127.0.0.1:7070:70",
        "-p",
        "8100-8199:9100-9199",
        "-p",
        "8000",
    ];
    let args = [&["--ip", "172.16.0.2"][..], &publish].concat();
    let mut web = spawn_run(&ns, &args, "echo ready; read _ || true");
    let (picked, _) = picked_port(&mut BufReader::new(web.stderr.take().unwrap()));
    let _out = common::wait_ready(&mut web);
    for (udp, addr, port) in [
        (false, None, 8080),
        (false, Some("127.0.0.1"), 8080),
        (true, None, 5353),
        (false, Some("127.0.0.1"), 7070),
        (false, None, 7070),
        (false, None, 8100),
        (false, None, 8150),
        (false, None, 8199),
        (false, None, picked),
    ] {
        assert_eq!(host_bind(&ns, udp, addr, port), "in use", "{addr:?}:{port}");
    }
    // Only what is published: the other protocol and a neighbour are free.
    assert_eq!(host_bind(&ns, true, None, 8080), "bound");
    assert_eq!(host_bind(&ns, false, None, 8200), "bound");
    // The container has none of the reservations.
    let sup = web.id();
    let pid = ns.ok(&format!("cat /proc/{sup}/task/{sup}/children"));
    let fds = ns.ok(&format!("ls -l /proc/{}/fd", pid.trim()));
    assert!(!fds.contains("socket:"), "{fds}");

    drop(web.stdin.take());
    assert!(web.wait().unwrap().success());
    for (udp, port) in [(false, 8080), (true, 5353), (false, 8150), (false, picked)] {
        assert_eq!(
            host_bind(&ns, udp, None, port),
            "bound",
            "{port} given back"
        );
    }
}

#[test]
fn publishing_on_an_address_that_is_not_the_hosts_is_refused() {
    let Some(ns) = HostNs::new("publishing_on_an_address_that_is_not_the_hosts_is_refused") else {
        return;
    };
    let before = ns.ok("ls -A /run; ip -br link");
    let err = refused_run(&ns, &["-p", "192.0.2.99:8080:80"]);
    assert_eq!(
        err,
        "supervisor: cannot publish 192.0.2.99:8080->80/tcp: 192.0.2.99 is not an address of this host \
         (publish on one of its addresses, or on all of them without an address)\n"
    );
    assert_eq!(ns.ok("ls -A /run; ip -br link"), before);
}

#[test]
fn concurrent_runs_picking_host_ports_get_distinct_reserved_ones() {
    let Some(ns) = HostNs::new("concurrent_runs_picking_host_ports_get_distinct_reserved_ones")
    else {
        return;
    };
    let mut runs: Vec<Child> = (0..8)
        .map(|_| {
            let args = ["-p", "8000", "-p", "53/udp"];
            spawn_run(&ns, &args, "echo ready; read _ || true")
        })
        .collect();
    let mut picked = std::collections::BTreeSet::new();
    for run in &mut runs {
        let mut err = BufReader::new(run.stderr.take().unwrap());
        for _ in 0..2 {
            let (port, udp) = picked_port(&mut err);
            assert_eq!(host_bind(&ns, udp, None, port), "in use", "{port}");
            assert!(picked.insert((udp, port)), "{port}: picked twice");
        }
        common::wait_ready(run);
    }
    assert_eq!(picked.len(), 16);
    for mut run in runs {
        drop(run.stdin.take());
        assert!(run.wait().unwrap().success());
    }
}

#[test]
fn a_range_of_thousands_of_ports_is_reserved_within_the_open_file_limit() {
    let Some(ns) = HostNs::new("a_range_of_thousands_of_ports_is_reserved_within_the_file_limit")
    else {
        return;
    };
    let sup = common::SUPERVISOR;
    let range = "20000-22999:20000-22999";
    // The soft limit is raised to the hard one as needed.
    let out = ns.sh(&format!(
        "ulimit -Sn 1024; {sup} run -p {range} -- true && echo ok"
    ));
    assert_eq!(stdout(&out), "ok\n", "{}", stderr(&out));
    let out = ns.sh(&format!("ulimit -n 1024; {sup} run -p {range} -- true"));
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out),
        "supervisor: publishing 3000 host ports holds a socket each: 3256 open files with \
         the supervisor's own, and the limit is 1024 (raise it with `ulimit -n`)\n"
    );
    assert_eq!(common::elements(&ns), 0);
}

#[test]
fn a_picked_port_with_an_element_but_no_socket_is_picked_again() {
    let Some(ns) = HostNs::new("a_picked_port_with_an_element_but_no_socket_is_picked_again")
    else {
        return;
    };
    let out = ns.run(&["true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Two ephemeral ports; bind(0) prefers the even one, which an element
    // without a socket (a hand-made one) already has.
    ns.ok("sysctl -qw net.ipv4.ip_local_port_range='40001 40002' \
           && nft add element ip supervisor tcp_ports '{ 40002 : 172.16.0.99 . 80 }'");
    let mut web = spawn_run(&ns, &["-p", "8000"], "echo ready; read _ || true");
    let (port, _) = picked_port(&mut BufReader::new(web.stderr.take().unwrap()));
    assert_eq!(port, 40001);
    common::wait_ready(&mut web);
    drop(web.stdin.take());
    assert!(web.wait().unwrap().success());
}

#[test]
fn a_published_port_is_free_for_a_host_program_as_soon_as_run_returns() {
    let Some(ns) =
        HostNs::new("a_published_port_is_free_for_a_host_program_as_soon_as_run_returns")
    else {
        return;
    };
    // Whatever the supervisor leaves running after its exit (the holder of
    // its netfilter socket) must not hold the port: run at the idle
    // priority, which its children inherit, such a process runs only after
    // the host program here, as on a loaded machine.
    for round in 0..8 {
        let out = ns
            .command("chrt")
            .args(["--idle", "0", common::SUPERVISOR])
            .args(["run", "-p", "8080:8000", "--", "true"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("spawn supervisor");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            host_bind(&ns, false, None, 8080),
            "bound",
            "round {round}: 8080 given back"
        );
    }
}

/// A host program listening on TCP `port` on every address (`nc -l`), and
/// its pid, once it listens.
fn host_listens(ns: &HostNs, port: u16) -> (Background, String) {
    let nc = Background::start(
        ns.command("timeout"),
        &format!("nc -n -lk -p {port} </dev/null"),
    );
    let pid = common::eventually("the host listener", Duration::from_secs(10), || {
        let listening = ns.ok(&format!("ss -Hlntp 'sport = :{port}'"));
        let pid = listening.split("pid=").nth(1)?.split(',').next()?;
        Some(pid.to_string())
    });
    (nc, pid)
}

/// Ends a run started by `spawn_run`, which must succeed.
fn end(mut run: Child) {
    drop(run.stdin.take());
    assert!(run.wait().unwrap().success());
}

/// The host port of the next "supervisor: published ADDR:PORT->…" line of
/// a run's stderr, on `addr` (`0.0.0.0`, `127.0.0.1`, `[::]`).
fn published_on(err: &mut impl BufRead, addr: &str) -> u16 {
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    line.trim()
        .strip_prefix(&format!("supervisor: published {addr}:"))
        .and_then(|rest| rest.split_once("->"))
        .and_then(|(port, _)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port published on {addr} in {line:?}"))
}

#[test]
fn a_host_range_publishes_on_its_first_free_port_shown_by_ps_and_inspect() {
    let Some(ns) = HostNs::new("a_host_range_publishes_on_its_first_free_port") else {
        return;
    };
    let _nc = host_listens(&ns, 8000);
    let script = format!("{} & echo ready; read _ || true", serve_tcp("web", 8000));
    let mut web = spawn_run(
        &ns,
        &[
            "--name",
            "web",
            "--ip",
            "172.16.0.2",
            "-p",
            "8000-8002:8000",
            "-p",
            "53-54:53/udp",
        ],
        &script,
    );
    let mut err = BufReader::new(web.stderr.take().unwrap());
    assert_eq!(
        published_on(&mut err, "0.0.0.0"),
        8001,
        "8000 is the host's"
    );
    assert_eq!(published_on(&mut err, "0.0.0.0"), 53, "UDP is free");
    let _out = common::wait_ready(&mut web);
    answers("the first free port of the range", "from-web", || {
        ask(host(&ns), "127.0.0.1", 8001)
    });
    // One address: the first port free there.
    let mut api = spawn_run(
        &ns,
        &["--ip", "172.16.0.3", "-p", "127.0.0.1:8000-8002:8000"],
        &script,
    );
    let mut api_err = BufReader::new(api.stderr.take().unwrap());
    assert_eq!(published_on(&mut api_err, "127.0.0.1"), 8002);
    let _api_out = common::wait_ready(&mut api);
    let ps = ns.ok(&format!("{} ps", common::SUPERVISOR));
    assert!(ps.contains("0.0.0.0:8001->8000/tcp"), "{ps}");
    assert!(ps.contains("127.0.0.1:8002->8000/tcp"), "{ps}");
    let inspect = ns.ok(&format!("{} inspect web", common::SUPERVISOR));
    let view: serde_json::Value = serde_json::from_str(&inspect).expect("inspect's JSON");
    assert_eq!(view["ports"][0]["host_port"], 8001, "{inspect}");
    end(web);
    end(api);
}

#[test]
fn concurrent_runs_with_one_host_range_get_distinct_ports_and_the_next_is_refused_naming_holders() {
    let Some(ns) = HostNs::new("concurrent_runs_with_one_host_range_get_distinct_ports") else {
        return;
    };
    let (_nc, nc) = host_listens(&ns, 8000);
    let mut runs: Vec<Child> = (0..4)
        .map(|_| spawn_run(&ns, &["-p", "8000-8004:9000"], "echo ready; read _ || true"))
        .collect();
    let mut picked = std::collections::BTreeSet::new();
    for run in &mut runs {
        let port = published_on(&mut BufReader::new(run.stderr.take().unwrap()), "0.0.0.0");
        assert!(picked.insert(port), "{port}: picked twice");
        common::wait_ready(run);
    }
    assert_eq!(
        picked.into_iter().collect::<Vec<_>>(),
        [8001, 8002, 8003, 8004]
    );
    let before = ns.ok("nft list ruleset; ip -br link");
    let err = refused_run(&ns, &["-p", "8000-8004:9000"]);
    assert!(
        err.starts_with(&format!(
            "supervisor: cannot publish 8000-8004->9000/tcp: every host port of 8000-8004/tcp \
             is in use: 8000/tcp by process {nc} (nc), 8001/tcp by container "
        )) && err.trim_end().ends_with(", and 2 more"),
        "{err}"
    );
    assert_eq!(ns.ok("nft list ruleset; ip -br link"), before);
    runs.into_iter().for_each(end);
}

#[test]
fn a_dry_run_with_a_host_range_plans_its_first_port_not_published() {
    let Some(ns) = HostNs::new("a_dry_run_with_a_host_range_plans_its_first_port") else {
        return;
    };
    let web = Container::web(&ns, &SV0, "web", "172.16.0.2", &["8000:8000"]);
    let out = ns.run(&[
        "--dry-run",
        "-p",
        "8000-8002:80",
        "-p",
        "127.0.0.1:9000-9001:53/udp",
        "--",
        "true",
    ]);
    let plan = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(plan.contains("tcp_ports { 8001 comment"), "{plan}");
    assert!(
        plan.contains("udp_addr_ports { 127.0.0.1 . 9000 comment"),
        "{plan}"
    );
    web.stop();
}
