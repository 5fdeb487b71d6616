//! Several networks at once: containers on different bridges each keep their
//! masquerade and their closed ports whatever runs on the others, cannot
//! reach each other directly, and reach each other's published ports through
//! the host address (docker's isolation between networks).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::container::{
    Container, Net, SV0, SV1, SV2, answers, ask, connects, inside, outside, refused,
};
use common::{HostNs, Outside, stderr};

/// A container on `net` at `.2` serving `from-NAME` on 8000 and publishing
/// it on host port `host_port`.
fn web_on(ns: &HostNs, net: &Net, name: &str, host_port: u16) -> Container {
    Container::web(ns, net, name, &net.ip(2), &[&format!("{host_port}:8000")])
}

/// The outside machine, routing every container subnet to the host, as a
/// neighbour on the host's uplink could.
fn outside_routing(ns: &HostNs, nets: &[Net]) -> Outside {
    let out = ns.outside();
    for net in nets {
        out.ok(&format!("ip route add {} via 192.0.2.1", net.subnet));
    }
    out
}

/// What the outside machine sees as the source of a connection from `c`.
fn source_seen_outside(out: &Outside, c: &Container, port: u16) -> String {
    let listener = out
        .command("timeout")
        .args(["20", "sh", "-c"])
        .arg(format!(
            "nc -n -v -l -p {port} </dev/null 2>&1 | grep -m1 Connection"
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a listener outside");
    connects("container -> outside", || {
        c.sh(&format!("echo hi | nc -n -N -w2 192.0.2.2 {port}"))
    });
    common::stdout(&listener.wait_with_output().expect("listener"))
}

/// Every network's own guarantees, checked with all of `nets` running:
/// outbound traffic leaves masqueraded, the unpublished port is closed to
/// the outside, the published one open.
fn each_network_keeps_its_own_rules(out: &Outside, containers: &[(Net, Container, u16)]) {
    for (i, (net, c, host_port)) in containers.iter().enumerate() {
        let seen = source_seen_outside(out, c, 9000 + i as u16);
        assert!(
            seen.starts_with("Connection received on 192.0.2.1 "),
            "{}: outbound must leave with the host's address: {seen}",
            net.bridge
        );
        refused(&format!("outside -> {} 8000 directly", net.bridge), || {
            ask(outside(out), &net.ip(2), 8000)
        });
        answers(
            &format!("outside -> {} published {host_port}", net.bridge),
            &format!("from-{}", net.bridge),
            || ask(outside(out), "192.0.2.1", *host_port),
        );
    }
}

#[test]
fn a_second_network_leaves_the_first_ones_masquerade_and_closed_ports_alone() {
    let Some(ns) = HostNs::new("a_second_network_leaves_the_first_ones_masquerade") else {
        return;
    };
    let out = outside_routing(&ns, &[SV0, SV1]);
    let first = web_on(&ns, &SV0, "sv0", 8080);
    let second = web_on(&ns, &SV1, "sv1", 8081);
    each_network_keeps_its_own_rules(&out, &[(SV0, first, 8080), (SV1, second, 8081)]);
}

#[test]
fn three_networks_at_once_are_isolated_from_each_other_but_reach_published_ports() {
    let Some(ns) = HostNs::new("three_networks_at_once_are_isolated_from_each_other") else {
        return;
    };
    let out = outside_routing(&ns, &[SV0, SV1, SV2]);
    let nets = [(SV0, 8080), (SV1, 8081), (SV2, 8082)];
    let containers: Vec<(Net, Container, u16)> = nets
        .iter()
        .map(|&(net, port)| (net, web_on(&ns, &net, net.bridge, port), port))
        .collect();
    for (from_net, from, _) in &containers {
        for (to_net, _, to_port) in &containers {
            let expected = format!("from-{}", to_net.bridge);
            answers(
                &format!("{} -> host:{to_port}", from_net.bridge),
                &expected,
                || ask(inside(from), "192.0.2.1", *to_port),
            );
            let what = format!("{} -> {} directly", from_net.bridge, to_net.bridge);
            if from_net == to_net {
                answers(&what, &expected, || ask(inside(from), &to_net.ip(2), 8000));
            } else {
                refused(&what, || ask(inside(from), &to_net.ip(2), 8000));
            }
        }
    }
    each_network_keeps_its_own_rules(&out, &containers);
    let listed = ns.ok("nft list set ip supervisor bridges");
    for (net, _, _) in &containers {
        assert!(listed.contains(&format!("\"{}\"", net.bridge)), "{listed}");
    }
    for (_, c, _) in containers {
        c.stop();
    }
}

#[test]
fn a_run_on_another_network_rewrites_no_rule() {
    let Some(ns) = HostNs::new("a_run_on_another_network_rewrites_no_rule") else {
        return;
    };
    let web = web_on(&ns, &SV0, "sv0", 8080);
    let rules = || {
        ns.ok(
            "nft -a list chain ip supervisor forward; nft -a list chain ip supervisor postrouting",
        )
    };
    let before = rules();
    let out = ns.run(&["--bridge", "sv1", "--subnet", "10.1.0.0/24", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rules(), before, "the rules (with their handles) stay");
    answers("sv0 still published", "from-sv0", || {
        ask(|s| ns.sh(s), "127.0.0.1", 8080)
    });
    // The new network is there as elements, and stays with its bridge.
    let bridges = ns.ok("nft list set ip supervisor bridges");
    assert!(bridges.contains("\"sv1\""), "{bridges}");
    web.stop();
}

#[test]
fn a_host_port_is_published_once_whatever_the_network() {
    let Some(ns) = HostNs::new("a_host_port_is_published_once_whatever_the_network") else {
        return;
    };
    let web = web_on(&ns, &SV0, "sv0", 8080);
    let out = ns.run(&[
        "--bridge",
        "sv1",
        "--subnet",
        "10.1.0.0/24",
        "-p",
        "8080:80",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("container sv0 ("), "{}", stderr(&out));
    web.stop();
}

#[test]
fn a_networks_elements_stay_with_its_bridge_and_gc_takes_them_when_it_is_gone() {
    let Some(ns) = HostNs::new("a_networks_elements_stay_with_its_bridge_and_gc_takes_them") else {
        return;
    };
    let web = web_on(&ns, &SV0, "sv0", 8080);
    for net in [SV1, SV2] {
        let out = ns.run(&["--bridge", net.bridge, "--subnet", net.subnet, "--", "true"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let networks =
        || ns.ok("nft list set ip supervisor bridges; nft list set ip supervisor subnets");
    let listed = networks();
    for net in [SV0, SV1, SV2] {
        assert!(
            listed.contains(&format!("{} comment \"{}\"", net.subnet, net.bridge)),
            "{listed}"
        );
    }
    ns.ok("ip link del sv1");
    let out = common::run(ns.supervisor().arg("gc"));
    assert!(out.status.success(), "{}", stderr(&out));
    let report = common::stdout(&out);
    assert!(
        report.contains("removed network sv1 (10.1.0.0/24): its bridge is gone"),
        "{report}"
    );
    let listed = networks();
    assert!(
        !listed.contains("sv1") && !listed.contains("10.1.0.0/24"),
        "{listed}"
    );
    for net in [SV0, SV2] {
        assert!(
            listed.contains(&format!("{} comment \"{}\"", net.subnet, net.bridge)),
            "{listed}"
        );
    }
    answers("sv0 still published", "from-sv0", || {
        ask(|s| ns.sh(s), "127.0.0.1", 8080)
    });
    web.stop();
}

#[test]
fn a_bridge_made_again_with_another_subnet_replaces_its_stale_network() {
    let Some(ns) = HostNs::new("a_bridge_made_again_with_another_subnet") else {
        return;
    };
    let run = |subnet: &str| {
        let out = ns.run(&["--bridge", "sv1", "--subnet", subnet, "--", "true"]);
        assert!(out.status.success(), "{subnet}: {}", stderr(&out));
    };
    // The same network start with a wider prefix overlaps the stale one.
    run("10.1.0.0/24");
    ns.ok("ip link del sv1");
    run("10.1.0.0/16");
    let subnets = ns.ok("nft list set ip supervisor subnets");
    assert!(
        subnets.contains(r#"10.1.0.0/16 comment "sv1""#),
        "{subnets}"
    );
    assert!(!subnets.contains("10.1.0.0/24"), "{subnets}");
    // Another bridge on a gone network's subnet.
    ns.ok("ip link del sv1");
    let out = ns.run(&["--bridge", "sv2", "--subnet", "10.1.0.0/20", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let networks = ns.ok("nft list set ip supervisor subnets; nft list set ip supervisor bridges");
    assert!(
        networks.contains(r#"10.1.0.0/20 comment "sv2""#),
        "{networks}"
    );
    assert!(!networks.contains("sv1"), "{networks}");
}

#[test]
fn a_bridge_made_again_with_a_disjoint_subnet_takes_out_its_old_one_alone() {
    let Some(ns) = HostNs::new("a_bridge_made_again_with_a_disjoint_subnet") else {
        return;
    };
    let run = |bridge: &str, subnet: &str| {
        let out = ns.run(&["--bridge", bridge, "--subnet", subnet, "--", "true"]);
        assert!(out.status.success(), "{subnet}: {}", stderr(&out));
    };
    run("sv2", "10.2.0.0/24");
    run("sv1", "10.1.0.0/24");
    ns.ok("ip link del sv1");
    // The kernel takes both: the old subnet would stay masqueraded and
    // accepted for a bridge that no longer serves it.
    run("sv1", "10.3.0.0/24");
    let subnets = ns.ok("nft list set ip supervisor subnets");
    assert!(
        subnets.contains(r#"10.3.0.0/24 comment "sv1""#),
        "{subnets}"
    );
    assert!(!subnets.contains("10.1.0.0/24"), "{subnets}");
    assert!(
        subnets.contains(r#"10.2.0.0/24 comment "sv2""#),
        "{subnets}"
    );
}

#[test]
fn a_second_state_directory_on_a_bridge_in_use_is_refused_naming_both_and_leaves_the_first_alone() {
    let Some(ns) = HostNs::new("a_second_state_directory_on_a_bridge_in_use_is_refused") else {
        return;
    };
    let web = web_on(&ns, &SV0, "first", 8080);
    // Its own leases say nothing of the first's: it leases .2 too.
    let out = ns
        .supervisor()
        .args(["--state-dir", "/run/other", "run", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn supervisor");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for part in [
        "bridge sv0",
        "172.16.0.2",
        "container first (",
        "another state directory",
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    // Nothing of the refused run is left, and the first still answers.
    assert_eq!(
        ns.ok("ls /run/other/containers /run/other/leases/sv0 | grep -v -e : -e '^$' || true"),
        ""
    );
    // The refused container's veth goes with its namespace, which the
    // kernel tears down in the background.
    common::eventually(
        "the refused container's veth gone",
        Duration::from_secs(10),
        || (common::container_veths(&ns).len() == 1).then_some(()),
    );
    answers("host -> first", "from-first", || {
        ask(common::container::host(&ns), "172.16.0.2", 8000)
    });
    answers("host -> first's published port", "from-first", || {
        ask(common::container::host(&ns), "127.0.0.1", 8080)
    });
    web.stop();
}
