//! The firewall's tables: the base ruleset loaded only when it changed,
//! and per-container elements, one batch in, one batch out, conflicts
//! decided by the kernel. Each test runs in a fresh network namespace of its
//! own.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;

use supervisor::firewall::{Base, Error, Firewall, Publication};
use supervisor::plan::apply::publish_mappings;
use supervisor::values::{HostIp, Owner, Port, PortTaken, Protocol, Subnet};

fn nft(args: &[&str]) -> String {
    let out = Command::new("nft")
        .args(args)
        .output()
        .expect("nft is installed");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn subnet(text: &str) -> Subnet {
    text.parse().unwrap()
}

/// Loads the base ruleset as `run` does, with network sv0's elements.
fn load_base() {
    let fw = Firewall::open(&state_dir()).unwrap();
    fw.ensure_network("sv0", &subnet("172.16.0.0/24"), None)
        .unwrap();
}

/// Makes the loaded tables look loaded by another version of the file.
fn age_the_base() {
    nft(&["flush", "set", "ip", "supervisor", "version"]);
    nft(&["add", "element", "ip", "supervisor", "version", "{ 0x1 }"]);
}

/// A state directory of the test's own (the firewall keeps its lock there):
/// its thread's, under one of this run's. Not named by the pid alone: each
/// run of the suite starts in a pid namespace of its own, where pids
/// repeat, and an earlier run's directories stay.
/// The run's directory goes when the test binary exits (libtest exits
/// through `exit`, passed or failed): each run left one in /tmp before.
fn state_dir() -> std::path::PathBuf {
    static RUN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    extern "C" fn remove_run() {
        if let Some(run) = RUN.get() {
            let _ = std::fs::remove_dir_all(run);
        }
    }
    let run = RUN.get_or_init(|| {
        // SAFETY: `remove_run` is a plain function that only reads a
        // static once it is set; registering it has no other effect.
        unsafe { libc::atexit(remove_run) };
        common::unique_temp_path("firewall")
    });
    let dir = run.join(format!("{:?}", std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn owner_named(name: &str) -> Owner {
    Owner {
        name: name.into(),
        id: format!("{name}-id"),
    }
}

fn container(owner: &str, last: u8, ports: &[(u16, u16, Protocol)]) -> Publication {
    Publication {
        owner: owner_named(owner),
        address: Ipv4Addr::new(172, 16, 0, last),
        address6: None,
        veth: format!("sv-{owner}"),
        ports: ports
            .iter()
            .map(|&(host_port, container_port, protocol)| Port {
                host_ip: HostIp::AnyV4,
                host_port,
                container_port,
                protocol,
            })
            .collect(),
        generation: None,
        routed: false,
    }
}

#[test]
fn publishing_adds_the_ports_and_the_spoof_guard_with_the_owner_as_comment() {
    common::in_fresh_netns(
        "publishing_adds_the_ports_and_the_spoof_guard_with_the_owner_as_comment",
        || {
            load_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            let web = container(
                "web",
                2,
                &[(8080, 8000, Protocol::Tcp), (5353, 53, Protocol::Udp)],
            );
            fw.publish(&web).unwrap();
            let tcp = nft(&["list", "map", "ip", "supervisor", "tcp_ports"]);
            assert!(
                tcp.contains(r#"8080 comment "web web-id" : 172.16.0.2 . 8000"#),
                "{tcp}"
            );
            let udp = nft(&["list", "map", "ip", "supervisor", "udp_ports"]);
            assert!(
                udp.contains(r#"5353 comment "web web-id" : 172.16.0.2 . 53"#),
                "{udp}"
            );
            let guard = nft(&["list", "set", "bridge", "supervisor", "spoof_guard"]);
            assert!(
                guard.contains(r#""sv-web" . 172.16.0.2 . 02:42:ac:10:00:02 comment "web web-id""#),
                "{guard}"
            );
            let macs = nft(&["list", "set", "bridge", "supervisor", "mac_guard"]);
            assert!(
                macs.contains(r#""sv-web" . 02:42:ac:10:00:02 comment "web web-id""#),
                "{macs}"
            );
        },
    );
}

#[test]
fn publishing_a_taken_port_fails_whole_naming_its_holder() {
    common::in_fresh_netns(
        "publishing_a_taken_port_fails_whole_naming_its_holder",
        || {
            load_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            fw.publish(&container("web", 2, &[(8080, 8000, Protocol::Tcp)]))
                .unwrap();
            let before = nft(&["list", "ruleset"]);
            let other = container(
                "api",
                3,
                &[(9090, 9000, Protocol::Tcp), (8080, 80, Protocol::Tcp)],
            );
            match fw.publish(&other) {
                Err(Error::PortTaken(PortTaken {
                    port,
                    holder,
                    owner,
                })) => {
                    assert_eq!(port.host_port, 8080);
                    assert_eq!(holder, "container web (web-id)");
                    assert_eq!(owner.map(|o| o.id), Some("web-id".to_string()));
                }
                other => panic!("expected PortTaken, got {other:?}"),
            }
            assert_eq!(
                nft(&["list", "ruleset"]),
                before,
                "nothing of api may be applied"
            );
            let err = fw.publish(&other).unwrap_err().to_string();
            assert_eq!(
                err,
                "port 0.0.0.0:8080->80/tcp is already published by container web (web-id)"
            );
        },
    );
}

#[test]
fn a_refused_element_that_is_no_port_is_named_as_nft_prints_it() {
    common::in_fresh_netns(
        "a_refused_element_that_is_no_port_is_named_as_nft_prints_it",
        || {
            load_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            fw.publish(&container("web", 2, &[(8080, 8000, Protocol::Tcp)]))
                .unwrap();
            // The same veth and address: its guards are taken, its port is not.
            let again = container("web", 2, &[(9090, 8000, Protocol::Tcp)]);
            let err = fw.publish(&again).unwrap_err().to_string();
            assert!(
                err.contains(
                    r#"add element to set bridge supervisor spoof_guard: "sv-web" . 172.16.0.2 . 02:42:ac:10:00:02: File exists"#
                ),
                "{err}"
            );
        },
    );
}

#[test]
fn the_same_port_number_over_udp_is_a_different_port() {
    common::in_fresh_netns("the_same_port_number_over_udp_is_a_different_port", || {
        load_base();
        let fw = Firewall::open(&state_dir()).unwrap();
        fw.publish(&container("web", 2, &[(8080, 8000, Protocol::Tcp)]))
            .unwrap();
        fw.publish(&container("dns", 3, &[(8080, 53, Protocol::Udp)]))
            .unwrap();
    });
}

#[test]
fn a_firewall_makes_the_directory_of_its_lock_when_it_is_missing() {
    common::in_fresh_netns(
        "a_firewall_makes_the_directory_of_its_lock_when_it_is_missing",
        || {
            load_base();
            let dir = state_dir().join("not-yet/deeper");
            assert!(!dir.exists());
            let fw = Firewall::open(&dir).unwrap();
            let web = container("web", 2, &[(8080, 8000, Protocol::Tcp)]);
            fw.publish(&web).unwrap();
            assert!(dir.join("firewall.lock").is_file());
            fw.unpublish(&web).unwrap();
        },
    );
}

#[test]
fn unpublishing_removes_only_the_containers_own_elements_and_may_repeat() {
    common::in_fresh_netns(
        "unpublishing_removes_only_the_containers_own_elements_and_may_repeat",
        || {
            load_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            let web = container("web", 2, &[(8080, 8000, Protocol::Tcp)]);
            let api = container("api", 3, &[(9090, 9000, Protocol::Tcp)]);
            fw.publish(&web).unwrap();
            fw.publish(&api).unwrap();
            fw.unpublish(&web).unwrap();
            fw.unpublish(&web).unwrap();
            let listing = nft(&["list", "ruleset"]);
            assert!(!listing.contains("\"web web-id\""), "{listing}");
            assert!(
                listing.contains(r#"9090 comment "api api-id""#),
                "{listing}"
            );
            // The port is free again.
            fw.publish(&container("web2", 4, &[(8080, 8000, Protocol::Tcp)]))
                .unwrap();
        },
    );
}

#[test]
fn a_containers_elements_are_looked_up_by_key_and_the_first_missing_one_is_named() {
    common::in_fresh_netns(
        "a_containers_elements_are_looked_up_by_key_and_the_first_missing_one_is_named",
        || {
            let fw = Firewall::open(&state_dir()).unwrap();
            let web = container(
                "web",
                2,
                &[(8080, 8000, Protocol::Tcp), (5353, 53, Protocol::Udp)],
            );
            let elements = web.elements();
            // No tables yet: the first is missing.
            let missing = fw.first_missing(&elements).unwrap();
            assert_eq!(missing.map(|e| &e.label), Some(&elements[0].label));
            load_base();
            fw.publish(&container("api", 3, &[(9090, 9000, Protocol::Tcp)]))
                .unwrap();
            fw.publish(&web).unwrap();
            assert_eq!(fw.first_missing(&elements).unwrap(), None);
            nft(&[
                "delete",
                "element",
                "ip",
                "supervisor",
                "udp_ports",
                "{ 5353 }",
            ]);
            let missing = fw.first_missing(&elements).unwrap().expect("one missing");
            assert_eq!(missing.target.name(), "udp_ports");
            assert_eq!(missing.label, "5353 : 172.16.0.2 . 53", "{missing:?}");
            // Another container's elements are not web's.
            let api = container("api", 3, &[(9090, 9000, Protocol::Tcp)]).elements();
            assert_eq!(fw.first_missing(&api).unwrap(), None);
        },
    );
}

#[test]
fn a_missing_host_port_is_picked_from_the_ephemeral_range_and_not_reused() {
    common::in_fresh_netns(
        "a_missing_host_port_is_picked_from_the_ephemeral_range_and_not_reused",
        || {
            load_base();
            // A tiny range: two ports, so the second pick must avoid the first.
            std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40001").unwrap();
            let fw = Firewall::open(&state_dir()).unwrap();
            let mapping = supervisor::publish::parse("8000").unwrap();
            let a = publish_mappings(
                &fw,
                &owner_named("a"),
                Ipv4Addr::new(172, 16, 0, 2),
                "sv-a",
                &mapping,
            )
            .unwrap();
            let b = publish_mappings(
                &fw,
                &owner_named("b"),
                Ipv4Addr::new(172, 16, 0, 3),
                "sv-b",
                &mapping,
            )
            .unwrap();
            let mut ports = [a.ports[0].host_port, b.ports[0].host_port];
            ports.sort();
            assert_eq!(ports, [40000, 40001]);
            let err = publish_mappings(
                &fw,
                &owner_named("c"),
                Ipv4Addr::new(172, 16, 0, 4),
                "sv-c",
                &mapping,
            )
            .unwrap_err();
            assert_eq!(err.to_string(), "no free host port left for tcp");
        },
    );
}

#[test]
fn the_base_is_created_once_then_left_alone() {
    common::in_fresh_netns("the_base_is_created_once_then_left_alone", || {
        let fw = Firewall::open(&state_dir()).unwrap();
        assert_eq!(fw.ensure_base().unwrap(), Base::Created);
        let listing = nft(&["list", "ruleset"]);
        assert_eq!(fw.ensure_base().unwrap(), Base::Current);
        assert_eq!(nft(&["list", "ruleset"]), listing);
    });
}

#[test]
fn a_changed_base_is_replaced_keeping_every_networks_and_containers_elements() {
    common::in_fresh_netns(
        "a_changed_base_is_replaced_keeping_every_networks_and_containers_elements",
        || {
            let fw = Firewall::open(&state_dir()).unwrap();
            fw.ensure_base().unwrap();
            fw.add_network("sv0", &subnet("172.16.0.0/24")).unwrap();
            fw.add_network("sv1", &subnet("10.1.0.0/24")).unwrap();
            fw.publish(&container("web", 2, &[(8080, 8000, Protocol::Tcp)]))
                .unwrap();
            fw.publish(&container("dns", 3, &[(5353, 53, Protocol::Udp)]))
                .unwrap();
            let before = nft(&["list", "ruleset"]);
            age_the_base();
            let base = fw.ensure_base().unwrap();
            assert_eq!(base, Base::Replaced);
            let listing = nft(&["list", "ruleset"]);
            assert_eq!(listing, before, "every element is back");
            for element in [
                r#"8080 comment "web web-id" : 172.16.0.2 . 8000"#,
                r#"5353 comment "dns dns-id" : 172.16.0.3 . 53"#,
                r#""sv-web" . 172.16.0.2 . 02:42:ac:10:00:02 comment "web web-id""#,
                r#"elements = { "sv0","#,
                r#""sv1" }"#,
                r#"172.16.0.0/24 comment "sv0""#,
                r#"10.1.0.0/24 comment "sv1""#,
            ] {
                assert!(listing.contains(element), "{element}: {listing}");
            }
            assert_eq!(listing.matches("table ip supervisor").count(), 1);
        },
    );
}

#[test]
fn ensuring_a_network_on_current_tables_puts_back_its_missing_elements_and_nothing_else() {
    common::in_fresh_netns(
        "ensuring_a_network_on_current_tables_puts_back_its_missing_elements_and_nothing_else",
        || {
            load_base();
            let listing = nft(&["list", "ruleset"]);
            nft(&[
                "delete",
                "element",
                "ip",
                "supervisor",
                "bridges",
                "{ \"sv0\" }",
            ]);
            nft(&[
                "delete",
                "element",
                "ip",
                "supervisor",
                "subnets",
                "{ 172.16.0.0/24 }",
            ]);
            let fw = Firewall::open(&state_dir()).unwrap();
            let base = fw.ensure_network("sv0", &subnet("172.16.0.0/24"), None);
            assert_eq!(base.unwrap(), Base::Current);
            assert_eq!(
                nft(&["list", "ruleset"]),
                listing,
                "the version stays, the rest is back"
            );
        },
    );
}

#[test]
fn ensuring_a_network_on_another_versions_tables_replaces_them_rather_than_adding_to_them() {
    common::in_fresh_netns(
        "ensuring_a_network_on_another_versions_tables_replaces_them_rather_than_adding_to_them",
        || {
            load_base();
            age_the_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            let base = fw.ensure_network("sv1", &subnet("10.1.0.0/24"), None);
            assert_eq!(base.unwrap(), Base::Replaced);
            let version = nft(&["list", "set", "ip", "supervisor", "version"]);
            assert!(!version.contains("0x00000001"), "{version}");
            assert!(fw.is_current().unwrap(), "{version}");
            let subnets = nft(&["list", "set", "ip", "supervisor", "subnets"]);
            for element in [
                r#"172.16.0.0/24 comment "sv0""#,
                r#"10.1.0.0/24 comment "sv1""#,
            ] {
                assert!(subnets.contains(element), "{element}: {subnets}");
            }
        },
    );
}

#[test]
fn adding_a_network_again_changes_nothing_and_another_network_adds_to_it() {
    common::in_fresh_netns(
        "adding_a_network_again_changes_nothing_and_another_network_adds_to_it",
        || {
            load_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            let listing = nft(&["list", "ruleset"]);
            fw.add_network("sv0", &subnet("172.16.0.0/24")).unwrap();
            assert_eq!(nft(&["list", "ruleset"]), listing);
            fw.add_network("sv1", &subnet("10.1.0.0/24")).unwrap();
            let subnets = nft(&["list", "set", "ip", "supervisor", "subnets"]);
            assert!(
                subnets.contains(r#"elements = { 10.1.0.0/24 comment "sv1","#),
                "{subnets}"
            );
            let pairs = nft(&["list", "set", "ip", "supervisor", "same_bridge"]);
            assert!(pairs.contains(r#""sv1" . "sv1""#), "{pairs}");
        },
    );
}

#[test]
fn an_upgrade_keeps_the_old_guards_with_the_containers_mac_and_adds_the_network() {
    common::in_fresh_netns(
        "an_upgrade_keeps_the_old_guards_with_the_containers_mac_and_adds_the_network",
        || {
            // The bridge table as the version before ARP checking had it.
            let old = r#"table ip supervisor { set version { type mark; elements = { 0x1 }; }; }
table bridge supervisor {
	set spoof_guard {
		type ifname . ipv4_addr
		elements = { "sv-old" . 172.16.0.5 comment "old old-id" }
	}
}
"#;
            let path = state_dir().join("old.nft");
            std::fs::write(&path, old).unwrap();
            nft(&["-f", path.to_str().unwrap()]);
            let fw = Firewall::open(&state_dir()).unwrap();
            let base = fw.ensure_network("sv0", &subnet("172.16.0.0/24"), None);
            assert_eq!(base.unwrap(), Base::Replaced);
            let subnets = nft(&["list", "set", "ip", "supervisor", "subnets"]);
            assert!(
                subnets.contains(r#"172.16.0.0/24 comment "sv0""#),
                "{subnets}"
            );
            let guard = nft(&["list", "table", "bridge", "supervisor"]);
            for element in [
                r#""sv-old" . 172.16.0.5 . 02:42:ac:10:00:05 comment "old old-id""#,
                r#""sv-old" . 02:42:ac:10:00:05 comment "old old-id""#,
            ] {
                assert!(guard.contains(element), "{element}: {guard}");
            }
        },
    );
}

#[test]
fn a_table_not_loaded_from_our_file_is_replaced() {
    common::in_fresh_netns("a_table_not_loaded_from_our_file_is_replaced", || {
        nft(&["add", "table", "ip", "supervisor"]);
        nft(&["add", "chain", "ip", "supervisor", "stray"]);
        let fw = Firewall::open(&state_dir()).unwrap();
        assert_eq!(fw.ensure_base().unwrap(), Base::Replaced);
        assert!(!nft(&["list", "ruleset"]).contains("stray"));
    });
}

#[test]
fn concurrent_supervisors_load_the_base_once_and_keep_each_others_elements() {
    common::in_fresh_netns(
        "concurrent_supervisors_load_the_base_once_and_keep_each_others_elements",
        || {
            let dir = state_dir();
            let threads: Vec<_> = (0..16u8)
                .map(|i| {
                    let dir = dir.clone();
                    std::thread::spawn(move || {
                        let fw = Firewall::open(&dir).unwrap();
                        // Some threads find the tables loaded by another
                        // version, so replacements race with publications;
                        // half come on another network.
                        if i % 4 == 1 {
                            let _ = Command::new("sh")
                                .args(["-c", "nft flush set ip supervisor version"])
                                .status();
                        }
                        fw.ensure_base().unwrap();
                        let (bridge, net) = if i % 2 == 0 {
                            ("sv0", "172.16.0.0/24")
                        } else {
                            ("sv1", "10.1.0.0/24")
                        };
                        fw.add_network(bridge, &subnet(net)).unwrap();
                        let name = format!("c{i}");
                        fw.publish(&container(
                            &name,
                            10 + i,
                            &[(9000 + u16::from(i), 80, Protocol::Tcp)],
                        ))
                        .unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let listing = nft(&["list", "map", "ip", "supervisor", "tcp_ports"]);
            for i in 0..16 {
                assert!(
                    listing.contains(&format!("{} comment", 9000 + i)),
                    "port {}: {listing}",
                    9000 + i
                );
            }
            let bridges = nft(&["list", "set", "ip", "supervisor", "bridges"]);
            assert!(
                bridges.contains(r#""sv0""#) && bridges.contains(r#""sv1""#),
                "{bridges}"
            );
        },
    );
}

#[test]
fn removing_a_gone_network_keeps_an_adjacent_subnet_whole() {
    common::in_fresh_netns(
        "removing_a_gone_network_keeps_an_adjacent_subnet_whole",
        || {
            load_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            fw.add_network("sv1", &subnet("10.1.0.0/24")).unwrap();
            // Its start shares a key with sv1's end element.
            fw.add_network("sv2", &subnet("10.1.1.0/24")).unwrap();
            let gone = fw.remove_gone_networks(|bridge| bridge != "sv1").unwrap();
            let gone: Vec<String> = gone.iter().map(|g| g.to_string()).collect();
            assert_eq!(gone, ["network sv1 (10.1.0.0/24)"]);
            let subnets = nft(&["list", "set", "ip", "supervisor", "subnets"]);
            assert!(!subnets.contains("10.1.0.0"), "{subnets}");
            for kept in [
                r#"172.16.0.0/24 comment "sv0""#,
                r#"10.1.1.0/24 comment "sv2""#,
            ] {
                assert!(subnets.contains(kept), "{kept}: {subnets}");
            }
            let bridges = nft(&["list", "set", "ip", "supervisor", "bridges"]);
            assert!(!bridges.contains("\"sv1\""), "{bridges}");
            let pairs = nft(&["list", "set", "ip", "supervisor", "same_bridge"]);
            assert!(!pairs.contains("\"sv1\""), "{pairs}");
        },
    );
}

#[test]
fn a_networks_pending_elements_go_in_with_its_containers_and_a_taken_port_keeps_both_out() {
    common::in_fresh_netns(
        "a_networks_pending_elements_go_in_with_its_containers_and_a_taken_port_keeps_both_out",
        || {
            load_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            fw.publish(&container("web", 2, &[(8080, 8000, Protocol::Tcp)]))
                .unwrap();
            // Current tables: sv1's elements are left for the publish batch.
            let pending = fw
                .ensure_base_for("sv1", &subnet("10.1.0.0/24"), None)
                .unwrap();
            assert!(!pending.is_empty());
            let in_sv1 = || {
                let subnets = nft(&["list", "set", "ip", "supervisor", "subnets"]);
                let bridges = nft(&["list", "set", "ip", "supervisor", "bridges"]);
                (
                    subnets.contains(r#"10.1.0.0/24 comment "sv1""#),
                    bridges.contains(r#""sv1""#),
                )
            };
            assert_eq!(in_sv1(), (false, false), "not before the publish batch");
            let mut api = container("api", 3, &[(8080, 8000, Protocol::Tcp)]);
            api.address = Ipv4Addr::new(10, 1, 0, 3);
            let refused = fw.publish_with(&api, &pending);
            assert!(matches!(refused, Err(Error::PortTaken(_))), "{refused:?}");
            assert_eq!(in_sv1(), (false, false), "a refused batch adds neither");
            api.ports[0].host_port = 8081;
            fw.publish_with(&api, &pending).unwrap();
            assert_eq!(in_sv1(), (true, true));
            let tcp = nft(&["list", "map", "ip", "supervisor", "tcp_ports"]);
            assert!(tcp.contains(r#"8081 comment "api api-id""#), "{tcp}");
        },
    );
}

#[test]
fn a_pending_network_overlapping_a_gone_bridges_subnet_replaces_it_and_publishes() {
    common::in_fresh_netns(
        "a_pending_network_overlapping_a_gone_bridges_subnet_replaces_it_and_publishes",
        || {
            load_base();
            let fw = Firewall::open(&state_dir()).unwrap();
            // A network whose bridge is gone, its subnet overlapping sv1's.
            fw.add_network("gone0", &subnet("10.1.0.0/16")).unwrap();
            let pending = fw
                .ensure_base_for("sv1", &subnet("10.1.0.0/24"), None)
                .unwrap();
            let mut api = container("api", 3, &[(8081, 8000, Protocol::Tcp)]);
            api.address = Ipv4Addr::new(10, 1, 0, 3);
            fw.publish_with(&api, &pending).unwrap();
            let subnets = nft(&["list", "set", "ip", "supervisor", "subnets"]);
            assert!(
                subnets.contains(r#"10.1.0.0/24 comment "sv1""#),
                "{subnets}"
            );
            assert!(!subnets.contains("gone0"), "{subnets}");
            let tcp = nft(&["list", "map", "ip", "supervisor", "tcp_ports"]);
            assert!(tcp.contains(r#"8081 comment "api api-id""#), "{tcp}");
        },
    );
}

/// An older version's tables, whose `no_masquerade` sets held address
/// intervals for every bridge at once, each tagged by its comment.
const SHARED_NO_MASQUERADE: &str = r#"
table ip supervisor {
	set version { type mark; elements = { 0x1 } }
	set no_masquerade {
		type ipv4_addr
		flags interval
		elements = { 10.244.0.0/16 comment "cni0", 192.0.2.0/24 comment "sv1" }
	}
}
table ip6 supervisor {
	set no_masquerade6 {
		type ipv6_addr
		flags interval
		elements = { fd00:10::/56 comment "cni0" }
	}
}
"#;

#[test]
fn an_older_versions_shared_no_masquerade_ranges_come_back_keyed_by_their_bridge() {
    common::in_fresh_netns(
        "an_older_versions_shared_no_masquerade_ranges_come_back_keyed_by_their_bridge",
        || {
            let file = common::unique_temp_path("no-masquerade.nft");
            std::fs::write(&file, SHARED_NO_MASQUERADE).unwrap();
            nft(&["-f", &file.to_string_lossy()]);
            let _ = std::fs::remove_file(&file);
            let fw = Firewall::open(&state_dir()).unwrap();
            assert_eq!(fw.ensure_base().unwrap(), Base::Replaced);
            let v4 = nft(&["list", "set", "ip", "supervisor", "no_masquerade"]);
            for element in [
                r#""cni0" . 10.244.0.0/16 comment "cni0""#,
                r#""sv1" . 192.0.2.0/24 comment "sv1""#,
            ] {
                assert!(v4.contains(element), "{element}: {v4}");
            }
            let v6 = nft(&["list", "set", "ip6", "supervisor", "no_masquerade6"]);
            let element = r#""cni0" . fd00:10::/56 comment "cni0""#;
            assert!(v6.contains(element), "{element}: {v6}");
        },
    );
}
