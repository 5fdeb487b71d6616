//! `supervisor --ipv6 run` end to end (issue 14): the container's IPv6
//! address, route and sysctls, leases and records, and publishing on IPv6;
//! each test in its own throwaway host (see common/mod.rs).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::container::{
    Background, Container, answers, ask, connects, host, inside, outside, refused, until_listening,
};
use common::loopback6::{
    TestCgroup, assert_direct, assert_relayed, client, seen, server_reporting_the_client,
};
use common::{HostNs, eventually, leases, stderr, stdout, wait_for_no_veth};
use std::os::fd::AsFd;
use supervisor::ebpf::sys::{CGROUP_INET6_CONNECT, Object, fd_by_id, prog_query};

const GATEWAY6: &str = "fd53:7570:6572::1";

/// `supervisor --ipv6 run ARGS…` here, to its end.
fn run6(ns: &HostNs, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--ipv6"];
    all.extend_from_slice(args);
    ns.run(&all)
}

/// Starts `supervisor --ipv6 run ARGS…`, whose command prints "ready" first.
fn start6(ns: &HostNs, args: &[&str]) -> (std::process::Child, impl Sized) {
    let mut all = vec!["--ipv6"];
    all.extend_from_slice(args);
    ns.start(&all)
}

#[test]
fn a_dual_stack_container_has_its_address_and_default_route_without_slaac_or_dad() {
    let Some(ns) = HostNs::new(
        "a_dual_stack_container_has_its_address_and_default_route_without_slaac_or_dad",
    ) else {
        return;
    };
    let out = run6(
        &ns,
        &[
            "--name",
            "web",
            "sh",
            "-c",
            "ip -6 -o addr show dev eth0; ip -6 route show default; \
             for s in accept_ra autoconf accept_dad disable_ipv6; do \
               echo $s=$(cat /proc/sys/net/ipv6/conf/eth0/$s); done; \
             ip -4 -o addr show dev eth0; cat /etc/hosts",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("inet6 fd53:7570:6572::2/64 scope global"),
        "the address derived from 172.16.0.2: {text}"
    );
    // No DAD wait for its address, nor for its link-local one.
    assert!(!text.contains("tentative"), "no DAD wait: {text}");
    assert!(!text.contains("dynamic"), "nothing from SLAAC: {text}");
    assert!(
        text.contains(&format!("default via {GATEWAY6} dev eth0")),
        "{text}"
    );
    for setting in [
        "accept_ra=0",
        "autoconf=0",
        "accept_dad=0",
        "disable_ipv6=0",
    ] {
        assert!(text.contains(setting), "{setting}: {text}");
    }
    assert!(text.contains("172.16.0.2/24"), "IPv4 as before: {text}");
    assert!(
        text.contains("172.16.0.2\tweb\n") && text.contains("fd53:7570:6572::2\tweb\n"),
        "/etc/hosts names both: {text}"
    );
    let bridge = ns.ok("ip -6 -o addr show scope global dev sv0");
    assert!(
        bridge.contains(&format!("inet6 {GATEWAY6}/64 scope global"))
            && !bridge.contains("tentative"),
        "{bridge}"
    );
    assert_eq!(
        ns.ok("cat /proc/sys/net/ipv6/conf/all/forwarding").trim(),
        "1"
    );
    assert_eq!(
        leases(&ns).trim(),
        "",
        "the lease and its IPv6 link go at exit"
    );
    wait_for_no_veth(&ns);
}

#[test]
fn without_ipv6_nothing_ipv6_is_configured() {
    let Some(ns) = HostNs::new("without_ipv6_nothing_ipv6_is_configured") else {
        return;
    };
    let out = ns.run(&[
        "sh",
        "-c",
        "ip -6 -o addr show dev eth0; ip -6 route show; \
         echo disable_ipv6=$(cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6)",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.trim(), "disable_ipv6=1", "{text}");
    let bridge = ns.ok("ip -6 -o addr show scope global dev sv0");
    assert_eq!(bridge.trim(), "", "no IPv6 address on the bridge");
    assert_eq!(
        ns.ok("cat /proc/sys/net/ipv6/conf/all/forwarding").trim(),
        "0"
    );
    // Published on IPv4 alone: no IPv6 element, reservation or proxy.
    let web = Container::start(&ns, &["-p", "8080:8000"], "true");
    let ruleset = ns.ok("nft list ruleset");
    let elements6: Vec<&str> = ruleset
        .lines()
        // (fe80::/10 is the guard's rule on link-local destinations)
        .filter(|l| l.contains("fd53:") || (l.contains("fe80:") && !l.contains("fe80::/10")))
        .collect();
    assert!(elements6.is_empty(), "{elements6:?}");
    let listening = ns.ok("ss -Hltn 'sport = :8080'");
    assert!(!listening.contains("[::"), "{listening}");
    refused("host -> [::1]:8080", || ask(host(&ns), "::1", 8080));
    web.stop();
    // SUPERVISOR_IPV6=0 is off too.
    let out = ns
        .supervisor()
        .env("SUPERVISOR_IPV6", "0")
        .args(["run", "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "1", "{}", stderr(&out));
}

/// The container's namespace holds eth0's IPv6 settings as its defaults,
/// which eth0 is born with (the plumbing writes none of its own): off on
/// an IPv4-only network; on a dual-stack one on, without router
/// advertisements, SLAAC or DAD. An interface the container makes itself
/// starts the same way.
#[test]
fn a_containers_interfaces_are_born_with_the_ipv6_settings_of_its_eth0() {
    let Some(ns) =
        HostNs::new("a_containers_interfaces_are_born_with_the_ipv6_settings_of_its_eth0")
    else {
        return;
    };
    let script = "for s in accept_ra autoconf accept_dad disable_ipv6; do \
                    echo $s=$(cat /proc/sys/net/ipv6/conf/default/$s) \
                      $(cat /proc/sys/net/ipv6/conf/eth0/$s); done";
    let out = ns.run(&["sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("disable_ipv6=1 1\n"), "IPv4 only: {text}");
    let out = run6(&ns, &["sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for setting in [
        "accept_ra=0 0\n",
        "autoconf=0 0\n",
        "accept_dad=0 0\n",
        "disable_ipv6=0 0\n",
    ] {
        assert!(text.contains(setting), "dual stack: {setting}: {text}");
    }
}

#[test]
fn supervisor_ipv6_in_the_environment_turns_it_on() {
    let Some(ns) = HostNs::new("supervisor_ipv6_in_the_environment_turns_it_on") else {
        return;
    };
    let out = ns
        .supervisor()
        .env("SUPERVISOR_IPV6", "1")
        .args(["run", "ip", "-6", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("fd53:7570:6572::2/64"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn an_ipv6_address_is_usable_as_soon_as_the_command_starts() {
    let Some(ns) = HostNs::new("an_ipv6_address_is_usable_as_soon_as_the_command_starts") else {
        return;
    };
    // The bridge and its gateway address exist after a first run.
    assert!(run6(&ns, &["true"]).status.success());
    let mut listener = common::background(
        ns.command("timeout")
            .args(["5", "nc", "-n", "-l", "-s", GATEWAY6, "-p", "9000"]),
    );
    ns.ok(&until_listening(9000));
    // The command's very first acts: show its address, then bind it and
    // connect from it. A tentative address (DAD) refuses both with
    // EADDRNOTAVAIL; an address added without IFA_F_NODAD would have made
    // the supervisor wait out DAD (a second or more) for the same result,
    // which the flag rules out without timing the run on a busy machine.
    let out = run6(
        &ns,
        &[
            "--ip6",
            "fd53:7570:6572::2",
            "sh",
            "-c",
            &format!(
                "ip -6 -o addr show dev eth0 scope global; \
                 echo hi | nc -n -N -w 2 -s fd53:7570:6572::2 {GATEWAY6} 9000 && echo sent"
            ),
        ],
    );
    let shown = stdout(&out);
    let address = shown
        .lines()
        .find(|l| l.contains("fd53:7570:6572::2/"))
        .unwrap_or_else(|| panic!("no address at start: {shown}{}", stderr(&out)));
    assert!(
        address.contains("nodad") && !address.contains("tentative"),
        "{address}"
    );
    assert!(shown.contains("sent"), "{shown}{}", stderr(&out));
    let _ = listener.kill();
    let _ = listener.wait();
}

#[test]
fn two_dual_stack_containers_talk_over_ipv6() {
    let Some(ns) = HostNs::new("two_dual_stack_containers_talk_over_ipv6") else {
        return;
    };
    // The server answers every connection: see `serve_tcp`.
    let server = Container::start(
        &ns,
        &["--ipv6", "--name", "server", "--ip6", "fd53:7570:6572::abc"],
        "while :; do echo from-server | nc -6 -n -l -p 8000 -N >/dev/null 2>&1; done",
    );
    answers(
        "the client reads the server's answer over IPv6",
        "from-server",
        || {
            ask(
                |script| run6(&ns, &["--name", "client", "sh", "-c", script]),
                "fd53:7570:6572::abc",
                8000,
            )
        },
    );
    server.stop();
}

#[test]
fn a_pinned_ipv6_address_in_use_is_refused_naming_its_holder() {
    let Some(ns) = HostNs::new("a_pinned_ipv6_address_in_use_is_refused_naming_its_holder") else {
        return;
    };
    let (_web, _out) = start6(
        &ns,
        &[
            "--name",
            "web",
            "--ip6",
            "fd53:7570:6572::3",
            "--",
            "sh",
            "-c",
            "echo ready; read line",
        ],
    );
    let out = run6(&ns, &["--ip6", "fd53:7570:6572::3", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("IPv6 address fd53:7570:6572::3 is in use by container web"),
        "{}",
        stderr(&out)
    );
    // The IPv4 address whose derived address web pinned is skipped.
    let out = run6(&ns, &["ip", "-o", "addr", "show", "dev", "eth0"]);
    let text = stdout(&out);
    assert!(
        text.contains("172.16.0.4/24") && text.contains("fd53:7570:6572::4/64"),
        "{text}{}",
        stderr(&out)
    );
    // ps and inspect show it.
    let ps = ns.ok(&format!(
        "{} ps --format '{{{{.Name}}}} {{{{.Address6}}}}'",
        common::SUPERVISOR
    ));
    assert!(ps.contains("web fd53:7570:6572::3"), "{ps}");
    let inspect = ns.ok(&format!("{} inspect web", common::SUPERVISOR));
    assert!(
        inspect.contains(r#""address6": "fd53:7570:6572::3""#)
            || inspect.contains(r#""address6":"fd53:7570:6572::3""#),
        "{inspect}"
    );
    assert!(
        inspect.contains("fd53:7570:6572::3"),
        "live addresses: {inspect}"
    );
}

#[test]
fn bad_ipv6_options_change_nothing_and_name_the_value() {
    let Some(ns) = HostNs::new("bad_ipv6_options_change_nothing_and_name_the_value") else {
        return;
    };
    for (args, message) in [
        (
            vec!["--subnet6", "fd53::1/64", "true"],
            "invalid --subnet6 \"fd53::1/64\": host bits set",
        ),
        (
            vec!["--subnet6", "fd53::/48", "true"],
            "invalid --subnet6 \"fd53::/48\": prefix length /48",
        ),
        (
            vec!["--subnet6", "ff05::/64", "true"],
            "invalid --subnet6 \"ff05::/64\": inside ff00::/8 (multicast)",
        ),
        (
            vec!["--ip6", "fd00::5", "true"],
            "invalid --ip6: address fd00::5 is outside the subnet fd53:7570:6572::/64",
        ),
    ] {
        let out = run6(&ns, &args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(message) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let out = ns.run(&["--ip6", "fd53:7570:6572::5", "true"]);
    assert!(
        stderr(&out).contains("--ip6 needs --ipv6"),
        "{}",
        stderr(&out)
    );
    assert!(
        ns.sh("ip link show sv0").status.code() != Some(0),
        "no bridge was made"
    );
}

/// The IPv6 twin of publish.rs's
/// `publishing_on_an_address_that_is_not_the_hosts_is_refused`, with a
/// link-local address besides (unbindable without a zone, never DNATed).
#[test]
fn publishing_on_an_ipv6_address_not_the_hosts_or_link_local_is_refused_and_makes_nothing() {
    let Some(ns) = HostNs::new(
        "publishing_on_an_ipv6_address_not_the_hosts_or_link_local_is_refused_and_makes_nothing",
    ) else {
        return;
    };
    let before = ns.ok("ls -A /run; ip -br link");
    for (spec, message) in [
        (
            "[2001:db8::99]:8080:80",
            "supervisor: cannot publish [2001:db8::99]:8080->80/tcp: 2001:db8::99 is not an \
             address of this host (publish on one of its addresses, or on all of them without an \
             address)",
        ),
        (
            "[fe80::1]:8080:80",
            "supervisor: invalid --publish \"[fe80::1]:8080:80\": [fe80::1] is a link-local \
             address, which is no host address to publish on: use a global or unique local one",
        ),
    ] {
        let out = run6(&ns, &["-p", spec, "true"]);
        assert_eq!(out.status.code(), Some(125), "{spec}");
        assert_eq!(stderr(&out).trim_end(), message);
    }
    assert_eq!(ns.ok("ls -A /run; ip -br link"), before);
}

#[test]
fn a_bridge_serving_another_subnet6_is_refused_naming_its_address() {
    let Some(ns) = HostNs::new("a_bridge_serving_another_subnet6_is_refused_naming_its_address")
    else {
        return;
    };
    assert!(run6(&ns, &["true"]).status.success());
    let out = run6(&ns, &["--subnet6", "fd00:9::/64", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains(
            "bridge sv0 has address fd53:7570:6572::1/64, not fd00:9::1/64; choose the matching subnet or another bridge"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(leases(&ns).trim(), "");
    // An IPv4-only container still runs on the dual-stack bridge.
    assert!(ns.run(&["true"]).status.success());
}

#[test]
fn a_new_bridge_on_the_subnet6_another_bridge_holds_is_refused_naming_subnet6() {
    let Some(ns) =
        HostNs::new("a_new_bridge_on_the_subnet6_another_bridge_holds_is_refused_naming_subnet6")
    else {
        return;
    };
    assert!(run6(&ns, &["true"]).status.success());
    // Another bridge and subnet, but the default subnet6 again: "choose
    // another subnet" read as wrong, the user had.
    let out = run6(
        &ns,
        &["--bridge", "sv1", "--subnet", "172.17.0.0/24", "true"],
    );
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out).trim(),
        "supervisor: subnet6 fd53:7570:6572::/64 overlaps the route fd53:7570:6572::/64 on sv0; \
         choose another subnet6 (--subnet6)"
    );
    assert!(!ns.ok("ip -br link").contains("sv1"));
    assert_eq!(leases(&ns).trim(), "");
}

// Publishing on IPv6. The outside machine gets 2001:db8::2/64 (a
// documentation prefix) beside its IPv4 address, the host's uplink
// 2001:db8::1/64.

const HOST6: &str = "2001:db8::1";
const OUTSIDE6: &str = "2001:db8::2";
const WEB6: &str = "fd53:7570:6572::2";

/// Serves `from-NAME` on TCP port `port` over both families.
fn serve_both(name: &str, port: u16) -> String {
    format!(
        "while :; do echo from-{name} | nc -6 -n -l -p {port} -N >/dev/null 2>&1; done & \
         while :; do echo from-{name} | nc -4 -n -l -p {port} -N >/dev/null 2>&1; done"
    )
}

/// A dual-stack container `name` at 172.16.0.2 and `WEB6` answering on
/// TCP port 8000, with `publish` (each a `-p` value).
fn web6(ns: &HostNs, name: &str, publish: &[&str]) -> Container {
    let mut args = vec!["--ipv6", "--name", name, "--ip", "172.16.0.2"];
    for p in publish {
        args.extend(["-p", p]);
    }
    Container::start(ns, &args, &serve_both(name, 8000))
}

#[test]
fn the_host_reaches_a_port_published_on_ipv6_on_its_own_address_the_gateway_and_loopback() {
    let Some(ns) = HostNs::new(
        "the_host_reaches_a_port_published_on_ipv6_on_its_own_address_the_gateway_and_loopback",
    ) else {
        return;
    };
    let _outside = ns.outside6();
    let web = web6(&ns, "web", &["8080:8000"]);
    for addr in [HOST6, GATEWAY6, "::1", "127.0.0.1", "192.0.2.1"] {
        answers(&format!("host -> [{addr}]:8080"), "from-web", || {
            ask(host(&ns), addr, 8080)
        });
    }
    web.stop();
}

#[test]
fn the_outside_reaches_a_port_published_on_ipv6_and_the_container_sees_its_address() {
    let Some(ns) = HostNs::new(
        "the_outside_reaches_a_port_published_on_ipv6_and_the_container_sees_its_address",
    ) else {
        return;
    };
    let out = ns.outside6();
    let mut web = Container::start(
        &ns,
        &["--ipv6", "-p", "8080:8000"],
        "nc -6 -n -v -l -p 8000 </dev/null 2>&1 | grep --line-buffered Connection",
    );
    connects("outside -> [2001:db8::1]:8080", || {
        outside(&out)(&format!("echo hi | nc -n -N -w2 {HOST6} 8080"))
    });
    let seen = web.line();
    assert!(
        seen.starts_with(&format!("Connection received on {OUTSIDE6} ")),
        "{seen}"
    );
    web.stop();
}

#[test]
fn another_container_reaches_it_over_ipv6_through_the_host_address_and_directly() {
    let Some(ns) =
        HostNs::new("another_container_reaches_it_over_ipv6_through_the_host_address_and_directly")
    else {
        return;
    };
    let _outside = ns.outside6();
    let web = web6(&ns, "web", &["8080:8000"]);
    let client = Container::start(&ns, &["--ipv6", "--ip", "172.16.0.3"], "true");
    answers("client -> [host]:8080", "from-web", || {
        ask(inside(&client), HOST6, 8080)
    });
    answers("client -> [web]:8000", "from-web", || {
        ask(inside(&client), WEB6, 8000)
    });
    client.stop();
    web.stop();
}

#[test]
fn a_container_reaches_its_own_port_published_on_ipv6_with_br_netfilter_on_and_off() {
    let Some(ns) = HostNs::new(
        "a_container_reaches_its_own_port_published_on_ipv6_with_br_netfilter_on_and_off",
    ) else {
        return;
    };
    let _outside = ns.outside6();
    let web = web6(&ns, "web", &["8080:8000"]);
    for setting in ["1", "0"] {
        ns.ok(&format!(
            "echo {setting} > /proc/sys/net/bridge/bridge-nf-call-ip6tables"
        ));
        for addr in [HOST6, GATEWAY6] {
            answers(
                &format!("web -> [{addr}]:8080 (br_netfilter {setting})"),
                "from-web",
                || ask(inside(&web), addr, 8080),
            );
        }
    }
    web.stop();
}

#[test]
fn outbound_ipv6_connections_leave_with_the_hosts_address() {
    let Some(ns) = HostNs::new("outbound_ipv6_connections_leave_with_the_hosts_address") else {
        return;
    };
    let out = ns.outside6();
    let client = Container::start(&ns, &["--ipv6"], "true");
    let listener = out
        .command("timeout")
        .args([
            "30",
            "sh",
            "-c",
            "nc -6 -n -v -l -p 9000 </dev/null 2>&1 | grep Connection",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    connects("container -> [outside]:9000", || {
        client.sh(&format!("echo hi | nc -n -N -w2 {OUTSIDE6} 9000"))
    });
    let seen = stdout(&listener.wait_with_output().unwrap());
    assert!(
        seen.starts_with(&format!("Connection received on {HOST6} ")),
        "{seen}"
    );
    client.stop();
}

#[test]
fn udp_is_published_on_ipv6() {
    let Some(ns) = HostNs::new("udp_is_published_on_ipv6") else {
        return;
    };
    let out = ns.outside6();
    let mut dns = Container::start(
        &ns,
        &["--ipv6", "-p", "5353:53/udp"],
        "nc -6 -n -u -l -p 53 </dev/null",
    );
    let _client = Background::start(
        out.command("timeout"),
        &format!("while :; do echo udp-hello | nc -n -u -w0 {HOST6} 5353; sleep 0.1; done"),
    );
    assert_eq!(dns.line(), "udp-hello");
    drop(_client);
    dns.stop();
}

#[test]
fn a_port_published_on_one_ipv6_address_is_not_reachable_on_another() {
    let Some(ns) = HostNs::new("a_port_published_on_one_ipv6_address_is_not_reachable_on_another")
    else {
        return;
    };
    let out = ns.outside6();
    // The gateway's address is the host's once the bridge holds it.
    assert!(run6(&ns, &["true"]).status.success());
    let web = web6(
        &ns,
        "web",
        &[&format!("[{GATEWAY6}]:8080:8000"), "[::1]:8081:8000"],
    );
    answers("host -> [gateway]:8080", "from-web", || {
        ask(host(&ns), GATEWAY6, 8080)
    });
    answers("host -> [::1]:8081", "from-web", || {
        ask(host(&ns), "::1", 8081)
    });
    refused("outside -> [host]:8080", || ask(outside(&out), HOST6, 8080));
    refused("host -> [host]:8080", || ask(host(&ns), HOST6, 8080));
    refused("outside -> [host]:8081", || ask(outside(&out), HOST6, 8081));
    refused("host -> 127.0.0.1:8080 (IPv6 only)", || {
        ask(host(&ns), "127.0.0.1", 8080)
    });
    web.stop();
}

#[test]
fn new_ipv6_connections_from_outside_to_an_unpublished_container_port_are_dropped() {
    let Some(ns) = HostNs::new(
        "new_ipv6_connections_from_outside_to_an_unpublished_container_port_are_dropped",
    ) else {
        return;
    };
    let out = ns.outside6();
    // The outside routes the subnet6 through the host, as a neighbour on
    // its link could.
    out.ok(&format!("ip -6 route add fd53:7570:6572::/64 via {HOST6}"));
    let web = web6(&ns, "web", &["8080:8000"]);
    answers("outside -> [host]:8080", "from-web", || {
        ask(outside(&out), HOST6, 8080)
    });
    refused("outside -> [web]:8000 directly", || {
        ask(outside(&out), WEB6, 8000)
    });
    web.stop();
}

#[test]
fn a_dual_stack_container_keeps_its_ipv4_behaviour() {
    let Some(ns) = HostNs::new("a_dual_stack_container_keeps_its_ipv4_behaviour") else {
        return;
    };
    let out = ns.outside6();
    let web = web6(&ns, "web", &["8080:8000", "0.0.0.0:8090:8000"]);
    for addr in ["127.0.0.1", "192.0.2.1", "172.16.0.1"] {
        answers(&format!("host -> {addr}:8080"), "from-web", || {
            ask(host(&ns), addr, 8080)
        });
    }
    answers("outside -> 192.0.2.1:8090", "from-web", || {
        ask(outside(&out), "192.0.2.1", 8090)
    });
    refused("outside -> [host]:8090 (IPv4 only)", || {
        ask(outside(&out), HOST6, 8090)
    });
    web.stop();
}

#[test]
fn a_pinned_ipv6_address_reused_by_another_container_is_reached_at_once() {
    let Some(ns) =
        HostNs::new("a_pinned_ipv6_address_reused_by_another_container_is_reached_at_once")
    else {
        return;
    };
    // Keeps the bridge's carrier up: with its last port gone, the kernel
    // flushes its neighbour entries.
    let beside = Container::start(&ns, &["--ipv6", "--name", "beside"], "true");
    let pinned = "fd53:7570:6572::99";
    let serve = |ip: &str, name: &str| {
        Container::start(
            &ns,
            &["--ipv6", "--ip", ip, "--ip6", pinned],
            &format!("while :; do echo from-{name} | nc -6 -n -l -p 8000 -N >/dev/null 2>&1; done"),
        )
    };
    let first = serve("172.16.0.10", "first");
    answers("host -> first", "from-first", || {
        ask(host(&ns), pinned, 8000)
    });
    first.stop();
    // Another container, so another MAC, on the same IPv6 address: the
    // host's neighbour entry still names the first one's MAC unless the
    // supervisor sets it.
    let second = serve("172.16.0.11", "second");
    // Asked once, as soon as it listens: a retry would outlast a stale
    // neighbour entry.
    let listening = second.sh(&until_listening(8000));
    assert!(listening.status.success(), "the second server listens");
    let got = ask(host(&ns), pinned, 8000);
    assert_eq!(got, "from-second", "{}", ns.ok("ip -6 neigh show dev sv0"));
    second.stop();
    beside.stop();
}

#[test]
fn a_container_sending_from_an_ipv6_address_other_than_its_own_is_dropped() {
    let Some(ns) =
        HostNs::new("a_container_sending_from_an_ipv6_address_other_than_its_own_is_dropped")
    else {
        return;
    };
    let out = ns.outside6();
    let web = web6(&ns, "web", &[]);
    let spoofer = Container::start(&ns, &["--ipv6", "--ip", "172.16.0.3"], "true");
    // Root in its namespace (nsenter) adds any address it likes.
    let add = spoofer.sh("ip -6 addr add fd53:7570:6572::99/64 dev eth0 nodad");
    assert!(add.status.success(), "{}", stderr(&add));
    let _server = Background::start(
        out.command("timeout"),
        "while :; do echo from-outside | nc -6 -n -l -p 9000 -N >/dev/null 2>&1; done",
    );
    // From each address in turn: IPv6 would pick the newest one itself.
    let from = |source: &str, addr: &str, port: u16| {
        let out = spoofer.sh(&format!(
            "timeout 3 nc -n -N -w2 -s {source} {addr} {port} </dev/null"
        ));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let own = "fd53:7570:6572::3";
    answers("own address -> web", "from-web", || from(own, WEB6, 8000));
    answers("own address -> outside", "from-outside", || {
        from(own, OUTSIDE6, 9000)
    });
    let spoofed = "fd53:7570:6572::99";
    refused("spoofed -> web", || from(spoofed, WEB6, 8000));
    refused("spoofed -> outside", || from(spoofed, OUTSIDE6, 9000));
    spoofer.stop();
    web.stop();
}

#[test]
fn a_dual_stack_containers_link_local_address_is_never_tentative_when_its_command_starts() {
    let Some(ns) = HostNs::new(
        "a_dual_stack_containers_link_local_address_is_never_tentative_when_its_command_starts",
    ) else {
        return;
    };
    // accept_dad=0 must be written before eth0 comes up: the kernel adds
    // the link-local address then, and runs DAD on it (about a second)
    // unless it is off. Several containers, as the race was not always
    // lost.
    for round in 0..5 {
        let out = run6(&ns, &["sh", "-c", "ip -6 -o addr show dev eth0"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("scope link"),
            "round {round}: a link-local address: {text}"
        );
        assert!(
            !text.contains("tentative"),
            "round {round}: no DAD on any address: {text}"
        );
        // Added by the supervisor without DAD, not left to the kernel,
        // which adds it tentative and clears that from a work item: on a
        // busy machine, after the command had started.
        let link_local = text.lines().find(|l| l.contains("scope link")).unwrap();
        assert!(link_local.contains("nodad"), "round {round}: {link_local}");
    }
}

/// The ip and ip6 tables' network sets, as nft lists them.
fn network_sets(ns: &HostNs) -> String {
    ns.ok(
        "nft list set ip supervisor subnets; nft list set ip supervisor bridges; \
         nft list set ip6 supervisor subnets6; nft list set ip6 supervisor bridges",
    )
}

#[test]
fn a_bridge_made_again_with_another_subnet6_replaces_its_stale_ipv6_subnet_alone() {
    let Some(ns) = HostNs::new("a_bridge_made_again_with_another_subnet6") else {
        return;
    };
    let run = |bridge: &str, subnet: &str, subnet6: &str| {
        let out = run6(
            &ns,
            &[
                "--bridge",
                bridge,
                "--subnet",
                subnet,
                "--subnet6",
                subnet6,
                "--",
                "true",
            ],
        );
        assert!(out.status.success(), "{subnet6}: {}", stderr(&out));
    };
    // Another network, live: none of its elements may go.
    run("sv2", "10.2.0.0/24", "fd00:2::/64");
    run("sv1", "10.1.0.0/24", "fd00:1::/64");
    ns.ok("ip link del sv1");
    // Not overlapping: the kernel takes both, the old one stays unless
    // taken out.
    run("sv1", "10.1.0.0/24", "fd00:11::/64");
    let sets = network_sets(&ns);
    assert!(sets.contains(r#"fd00:11::/64 comment "sv1""#), "{sets}");
    assert!(
        !sets.contains("fd00:1::/64"),
        "the stale subnet6 went: {sets}"
    );
    for kept in [
        r#"fd00:2::/64 comment "sv2""#,
        r#"10.2.0.0/24 comment "sv2""#,
        r#"10.1.0.0/24 comment "sv1""#,
    ] {
        assert!(sets.contains(kept), "{kept}: {sets}");
    }
    // Overlapping (the same start, a narrower prefix): refused by the
    // kernel until the stale one is taken out, on a bridge someone else
    // made again.
    ns.ok("ip link del sv1 && ip link add sv1 type bridge");
    run("sv1", "10.1.0.0/24", "fd00:11::/80");
    let sets = network_sets(&ns);
    assert!(sets.contains(r#"fd00:11::/80 comment "sv1""#), "{sets}");
    assert!(!sets.contains("fd00:11::/64"), "{sets}");
    assert!(sets.contains(r#"fd00:2::/64 comment "sv2""#), "{sets}");
    // The stale subnet6 is no longer masqueraded.
    let nat = ns.ok("nft list ruleset");
    assert!(!nat.contains("fd00:11::/64"), "{nat}");
}

#[test]
fn a_udp_client_that_keeps_sending_over_ipv6_reaches_the_next_container_on_that_port() {
    let Some(ns) = HostNs::new("a_udp_client_that_keeps_sending_over_ipv6") else {
        return;
    };
    let out = ns.outside6();
    // One client (fixed source port: one conntrack entry) sending every
    // 50 ms from outside, before, between and after the containers.
    let _client = Background::start(
        out.command("timeout"),
        &format!(
            "while :; do echo ping | timeout 0.3 nc -6 -n -u -w0 -p 40000 {HOST6} 5353; \
             sleep 0.05; done"
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    for (name, ip) in [("first", "172.16.0.2"), ("second", "172.16.0.3")] {
        let mut c = Container::start(
            &ns,
            &[
                "--ipv6",
                "--name",
                name,
                "--ip",
                ip,
                "-p",
                "[::]:5353:53/udp",
            ],
            "nc -6 -n -u -l -p 53 </dev/null",
        );
        assert_eq!(c.line(), "ping", "{name} container hears the client");
        c.stop();
    }
}

#[test]
fn a_host_range_is_published_on_its_first_port_free_on_each_family_it_takes() {
    let Some(ns) = HostNs::new("a_host_range_is_published_on_its_first_port_free_on_each_family")
    else {
        return;
    };
    // 8000 is taken on IPv4 alone.
    let _nc = Background::start(ns.command("timeout"), "nc -4 -n -lk -p 8000 </dev/null");
    eventually("the host listener", Duration::from_secs(10), || {
        (ns.ok("ss -Hlnt 'sport = :8000'").lines().count() == 1).then_some(())
    });
    let web = web6(&ns, "web", &["8000-8002:8000", "[::]:8000-8002:8000"]);
    for (addr, port) in [("127.0.0.1", 8001), ("::1", 8001), ("::1", 8000)] {
        answers(&format!("host -> [{addr}]:{port}"), "from-web", || {
            ask(host(&ns), addr, port)
        });
    }
    let err = web.stop();
    for line in [
        "supervisor: published 0.0.0.0:8001->8000/tcp",
        "supervisor: published [::]:8001->8000/tcp",
        "supervisor: published [::]:8000->8000/tcp",
    ] {
        assert!(err.lines().any(|l| l == line), "{line}: {err}");
    }
}

// `[::1]` through the kernel: the connect hook (`--loopback6-cgroup`).

/// The ids of the BPF objects process `pid` holds, by kind (`prog_id`,
/// `map_id`, `link_id`), from its /proc/PID/fdinfo.
fn bpf_ids(pid: u32) -> Vec<(String, u32)> {
    let mut ids = Vec::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        // A link's fdinfo names its program too: the kind its own type says.
        let own = ["link", "prog", "map"]
            .into_iter()
            .find(|kind| info.contains(&format!("{kind}_type:")));
        let Some(kind) = own else { continue };
        let key = format!("{kind}_id:");
        if let Some(id) = info
            .lines()
            .find_map(|line| line.strip_prefix(&key))
            .and_then(|id| id.trim().parse().ok())
        {
            ids.push((kind.to_string(), id));
        }
    }
    ids.sort();
    ids
}

fn object_of(kind: &str) -> Object {
    match kind {
        "prog" => Object::Prog,
        "map" => Object::Map,
        _ => Object::Link,
    }
}

#[test]
fn loopback6_from_the_hooked_cgroup_reaches_the_container_with_the_clients_own_port_and_nothing_stays()
 {
    let test = "loopback6_from_the_hooked_cgroup_reaches_the_container_with_the_clients_own_port_and_nothing_stays";
    let Some(ns) = HostNs::new(test) else {
        return;
    };
    let cgroup = TestCgroup::new("e2e-hook");
    let (web, ids) = hooked_web(&ns, &cgroup);

    let in_cgroup = |bind| seen(&ns.ok(&format!("{}{}", cgroup.enter(), client(8080, bind))));
    // The server may still be starting.
    let direct = eventually("an answer on [::1]:8080", Duration::from_secs(10), || {
        let out = ns.sh(&format!("{}{}", cgroup.enter(), client(8080, false)));
        out.status.success().then(|| seen(&stdout(&out)))
    });
    assert_direct(&direct, &format!("[{WEB6}]:8000"), "in the hooked cgroup");
    assert_relayed(
        &seen(&ns.ok(&client(8080, false))),
        8080,
        "outside the cgroup",
    );
    assert_relayed(&in_cgroup(true), 8080, "bound to ::1");
    // The container's own [::1]:8080, from a process of the cgroup in its
    // namespace: its own loopback, where nothing listens on 8080.
    let own = web.sh(&format!("{}{}", cgroup.enter(), client(8080, false)));
    assert!(!own.status.success(), "{}", stdout(&own));
    assert!(
        stderr(&own).contains("ConnectionRefused"),
        "{}",
        stderr(&own)
    );

    web.stop();
    assert_all_gone(&ids, &cgroup);
}

#[test]
fn a_killed_supervisor_leaves_no_hook_program_map_or_link() {
    let Some(ns) = HostNs::new("a_killed_supervisor_leaves_no_hook_program_map_or_link") else {
        return;
    };
    let cgroup = TestCgroup::new("e2e-hook-killed");
    let (mut web, ids) = hooked_web(&ns, &cgroup);
    web.supervisor.kill().expect("SIGKILL the supervisor");
    web.supervisor.wait().expect("reap the supervisor");
    assert_all_gone(&ids, &cgroup);
    eventually("the container gone", Duration::from_secs(10), || {
        matches!(common::process_state(web.pid), None | Some('Z')).then_some(())
    });
}

/// A container at `WEB6` publishing 8080:8000, its server reporting its
/// clients, hooked on `cgroup`; and the ids of the hook's link, map and
/// program once its supervisor holds them.
fn hooked_web(ns: &HostNs, cgroup: &TestCgroup) -> (Container, Vec<(String, u32)>) {
    let web = Container::start(
        ns,
        &[
            "--ipv6",
            "--loopback6-cgroup",
            &cgroup.arg(),
            "--ip",
            "172.16.0.2",
            "-p",
            "8080:8000",
        ],
        &server_reporting_the_client(8000),
    );
    let supervisor = web.supervisor.id();
    // Set up once the command runs: until then, the relay.
    let ids = eventually(
        "the hook's map, program and link",
        Duration::from_secs(10),
        || {
            let ids = bpf_ids(supervisor);
            (ids.len() == 3).then_some(ids)
        },
    );
    let kinds: Vec<&str> = ids.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["link", "map", "prog"]);
    let prog = ids.iter().find(|(kind, _)| kind == "prog").unwrap().1;
    assert_eq!(attached(cgroup), [prog]);
    (web, ids)
}

/// The programs attached to `cgroup` for connect6.
fn attached(cgroup: &TestCgroup) -> Vec<u32> {
    let dir = std::fs::File::open(cgroup.path()).unwrap();
    prog_query(dir.as_fd(), CGROUP_INET6_CONNECT).unwrap()
}

/// Each of `ids` names nothing any more, and nothing is attached to
/// `cgroup`: the kernel frees them a moment after their last fd closes.
fn assert_all_gone(ids: &[(String, u32)], cgroup: &TestCgroup) {
    for (kind, id) in ids {
        eventually(
            &format!("{kind} {id} gone"),
            Duration::from_secs(5),
            || match fd_by_id(object_of(kind), *id) {
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Some(()),
                _ => None,
            },
        );
    }
    assert_eq!(attached(cgroup), Vec::<u32>::new());
}

/// The hook is set up once the command has run a few milliseconds: one
/// that ends at once never pays its set-up and removal (0.4-0.7 ms its
/// exit waited for). Five runs, so that one stalled past the delay by a
/// loaded machine cannot fail the test: all five hooked is the inline
/// set-up.
#[test]
fn a_command_that_ends_at_once_never_sets_the_connect_hook_up() {
    let Some(ns) = HostNs::new("a_command_that_ends_at_once_never_sets_the_connect_hook_up") else {
        return;
    };
    let cgroup = TestCgroup::new("e2e-at-once");
    let hooked = (0..5)
        .filter(|_| {
            let out = ns.run(&[
                "--verbose",
                "--ipv6",
                "--loopback6-cgroup",
                &cgroup.arg(),
                "-p",
                "8080:8000",
                "true",
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(stderr(&out).contains("[::1] proxies"), "{}", stderr(&out));
            stderr(&out).contains("[::1] connect hook")
        })
        .count();
    assert!(hooked < 5, "every run of `true` set the hook up");
}

#[test]
fn with_loopback6_cgroup_none_every_client_of_loopback6_is_relayed() {
    let Some(ns) = HostNs::new("with_loopback6_cgroup_none_every_client_of_loopback6_is_relayed")
    else {
        return;
    };
    let cgroup = TestCgroup::new("e2e-none");
    let web = Container::start(
        &ns,
        &["--ipv6", "--loopback6-cgroup", "none", "-p", "8080:8000"],
        &server_reporting_the_client(8000),
    );
    let supervisor = web.supervisor.id();
    let answered = eventually("an answer on [::1]:8080", Duration::from_secs(10), || {
        let out = ns.sh(&format!("{}{}", cgroup.enter(), client(8080, false)));
        out.status.success().then(|| seen(&stdout(&out)))
    });
    assert_eq!(answered.peer, "[::1]:8080", "{answered:?}");
    assert_eq!(bpf_ids(supervisor), []);
    web.stop();
}

/// A container's forged neighbour advertisement for the gateway (override
/// set, the gateway's address as its target, its own MAC), sent to another
/// container from its own address: the ARP guard stops IPv4's form (a
/// forged ARP reply), but the bridge cannot read an advertisement's target
/// (nft 1.0.6). On main the victim's entry for the gateway moved to the
/// forger's MAC, and its IPv6 traffic out of the network went to the
/// forger's port, dropped there: cut off for as long as the forger kept
/// sending. The gateway's entry in a container is PERMANENT, which no
/// advertisement moves.
#[test]
fn a_forged_advertisement_for_the_gateway_does_not_move_another_containers_gateway_entry() {
    let Some(ns) = HostNs::new(
        "a_forged_advertisement_for_the_gateway_does_not_move_another_containers_gateway_entry",
    ) else {
        return;
    };
    let _outside = ns.outside6();
    let victim = Container::start(&ns, &["--ipv6", "--ip", "172.16.0.12"], "sleep 600");
    let evil = Container::start(&ns, &["--ipv6", "--ip", "172.16.0.13"], "sleep 600");
    let forge = format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, "{GATEWAY6}")
na += bytes([2, 1]) + bytes.fromhex("0242ac10000d")
for _ in range(3): s.sendto(na, ("fd53:7570:6572::c", 0))
"#
    );
    let sent = evil.sh(&format!("python3 -c '{forge}'"));
    assert!(sent.status.success(), "{}", stderr(&sent));
    // A round trip with the forger after it: the victim has taken in
    // what the forger sent before.
    let back = victim.sh("busybox ping -c1 -W2 fd53:7570:6572::d >/dev/null");
    assert!(back.status.success(), "victim -> evil");
    let entry = stdout(&victim.sh(&format!("ip -6 neigh show {GATEWAY6}")));
    assert!(
        entry.contains("02:42:ac:10:00:01") && entry.contains("PERMANENT"),
        "the victim's gateway entry: {entry}"
    );
    let out = victim.sh(&format!("busybox ping -c1 -W2 {OUTSIDE6} >/dev/null"));
    assert!(out.status.success(), "victim -> outside");
    victim.stop();
    evil.stop();
}
