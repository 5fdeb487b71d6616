//! `supervisor --ipv6 run` end to end (issue 14): the container's IPv6
//! address, route and sysctls, leases and records, and publishing on IPv6;
//! each test in its own throwaway host (see common/mod.rs).

mod common;

use std::time::{Duration, Instant};

use common::{HostNs, eventually, leases, stderr, stdout, wait_for_no_veth};

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
    // SUPERVISOR_IPV6=0 is off too.
    let out = ns
        .supervisor()
        .env("SUPERVISOR_IPV6", "0")
        .args(["run", "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "1", "{}", stderr(&out));
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
    std::thread::sleep(Duration::from_millis(200));
    // The command's very first act: bind its own address and connect from
    // it. A tentative address (DAD) refuses both with EADDRNOTAVAIL.
    let started = Instant::now();
    let out = run6(
        &ns,
        &[
            "sh",
            "-c",
            &format!("echo hi | nc -n -N -w 2 -s fd53:7570:6572::2 {GATEWAY6} 9000 && echo sent"),
        ],
    );
    assert!(
        stdout(&out).contains("sent"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "no DAD wait: {:?}",
        started.elapsed()
    );
    let _ = listener.kill();
    let _ = listener.wait();
}

#[test]
fn two_dual_stack_containers_talk_over_ipv6() {
    let Some(ns) = HostNs::new("two_dual_stack_containers_talk_over_ipv6") else {
        return;
    };
    let (_server, _out) = start6(
        &ns,
        &[
            "--name",
            "server",
            "--ip6",
            "fd53:7570:6572::abc",
            "--",
            "sh",
            "-c",
            "echo ready; echo answer-from-server | nc -6 -n -l -p 8000 >/dev/null",
        ],
    );
    let answer = eventually(
        "the client reads the server's answer over IPv6",
        Duration::from_secs(10),
        || {
            let out = run6(
                &ns,
                &[
                    "--name",
                    "client",
                    "nc",
                    "-n",
                    "-N",
                    "-w",
                    "2",
                    "fd53:7570:6572::abc",
                    "8000",
                ],
            );
            let text = stdout(&out);
            text.contains("answer-from-server").then_some(text)
        },
    );
    assert!(answer.contains("answer-from-server"));
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
