//! The CNI plugin in routed mode (`"mode": "routed"`): a routed veth per
//! container, on no bridge, its address a /32 and the host routing to it.
//! Driven as an engine drives it (tests/common/cni), each test on a host
//! of its own (tests/common) with its containers as `ip netns add`
//! namespaces.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::cni::{call, conf, netns_add, publishing, reaches, serve};
use common::{HostNs, container_veths, eventually, records, stdout};
use serde_json::{Value, json};

/// A routed network's configuration (bridge rtd0, 10.77.0.0/24), with
/// `extra` fields.
fn routed(extra: Value) -> String {
    let mut doc = json!({"mode": "routed", "bridge": "rtd0", "subnet": "10.77.0.0/24"});
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        doc.extend(extra.clone());
    }
    conf("1.0.0", doc)
}

/// The leases of the routed network's bridge (rtd0), one a line.
fn leases(ns: &HostNs) -> String {
    ns.ok("ls /run/supervisor/leases/rtd0 2>/dev/null || true")
}

/// No record, lease (sv0's or rtd0's), element or container veth is left,
/// and `supervisor check` finds nothing (see tests/common/cni).
fn assert_nothing_left(ns: &HostNs) {
    common::cni::assert_nothing_left(ns);
    // A DEL gives its address back in the background (src/cni/forget.rs).
    eventually("rtd0's leases given back", Duration::from_secs(10), || {
        leases(ns).is_empty().then_some(())
    });
}

/// The host end of container `id`'s attachment, from its ADD result.
fn host_end(result: &Value) -> String {
    result["interfaces"][0]["name"]
        .as_str()
        .expect("the host end's name")
        .to_string()
}

/// The source address a listener on `port` in netns `to` sees on a
/// connection from netns `from` to `address:port`.
fn source_seen(ns: &HostNs, from: &str, to: &str, address: &str, port: u16) -> String {
    let listener = ns
        .command("ip")
        .args(["netns", "exec", to, "timeout", "20", "sh", "-c"])
        .arg(format!(
            "nc -n -v -l -4 -p {port} </dev/null 2>&1 | grep -m1 Connection"
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a listener");
    eventually("a connection", Duration::from_secs(10), || {
        ns.sh(&format!(
            "echo hi | ip netns exec {from} nc -n -N -w2 {address} {port}"
        ))
        .status
        .success()
        .then_some(())
    });
    common::connection_source(&stdout(&listener.wait_with_output().expect("listener")))
}

/// What `nc` in netns `from` reads from `target:port` (busybox, 2 s).
fn read_from(ns: &HostNs, from: Option<&str>, target: &str, port: u16) -> String {
    let inside = from.map_or(String::new(), |n| format!("ip netns exec {n} "));
    stdout(&ns.sh(&format!(
        "{inside}busybox nc -w 2 {target} {port} </dev/null"
    )))
}

#[test]
fn add_makes_a_routed_veth_with_a_32_and_answers_it_and_del_leaves_nothing() {
    let Some(ns) =
        HostNs::new("add_makes_a_routed_veth_with_a_32_and_answers_it_and_del_leaves_nothing")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = routed(publishing(8080, 8000));
    let result = call(&ns, "ADD", "c1", &conf).ok();
    let host = host_end(&result);
    assert!(host.starts_with("sv-"), "{result}");
    assert_eq!(result["interfaces"][0]["mac"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(result["interfaces"][1]["name"], "eth0");
    assert_eq!(result["interfaces"][1]["mac"], "02:42:0a:4d:00:02");
    assert_eq!(result["interfaces"][1]["sandbox"], "/run/netns/c1");
    assert_eq!(result["ips"][0]["address"], "10.77.0.2/32", "{result}");
    assert_eq!(result["ips"][0]["gateway"], "10.77.0.1");
    assert_eq!(result["ips"][0]["interface"], 1);
    assert_eq!(
        result["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}])
    );
    // The host end is on no bridge, the bridge has no port.
    let link = ns.ok(&format!("ip -d link show dev {host}"));
    assert!(!link.contains("master"), "{link}");
    assert!(link.contains("ee:ee:ee:ee:ee:ee"), "{link}");
    assert_eq!(ns.ok("ip -br link show master rtd0"), "");
    assert_eq!(
        ns.ok("ip route show 10.77.0.2/32").trim(),
        format!("10.77.0.2 dev {host} proto static scope link src 10.77.0.1")
    );
    assert!(
        ns.ok("ip -n c1 -br -4 addr show dev eth0")
            .contains("10.77.0.2/32")
    );
    assert_eq!(
        ns.ok("ip -n c1 route").trim(),
        "default via 10.77.0.1 dev eth0 proto static onlink"
    );
    assert_eq!(
        ns.ok("ip -n c1 neigh show 10.77.0.1").trim(),
        "10.77.0.1 dev eth0 lladdr ee:ee:ee:ee:ee:ee PERMANENT"
    );
    assert_eq!(
        ns.ok(&format!(
            "cat /proc/sys/net/ipv4/conf/{host}/route_localnet"
        ))
        .trim(),
        "1"
    );
    let sources = ns.ok("nft list set ip supervisor sources");
    assert!(
        sources.contains(&format!("\"{host}\" . 10.77.0.2 comment \"c1:eth0")),
        "{sources}"
    );
    let pairs = ns.ok("nft list set ip supervisor routed_subnets");
    assert!(
        pairs.contains("10.77.0.0/24 . 10.77.0.0/24 comment \"rtd0\""),
        "{pairs}"
    );
    // No bridge-table guard: the frame never crosses a bridge.
    assert!(
        !ns.ok("nft list set bridge supervisor mac_guard")
            .contains(&host),
        "{}",
        ns.ok("nft list set bridge supervisor mac_guard")
    );
    assert_eq!(call(&ns, "CHECK", "c1", &conf).ok(), Value::Null);
    // `supervisor check` finds the attachment whole: its link on no
    // bridge, its lease, its sources element.
    common::assert_no_drift(&ns);
    assert_eq!(call(&ns, "DEL", "c1", &conf).ok(), Value::Null);
    eventually("the host end gone", Duration::from_secs(10), || {
        container_veths(&ns).is_empty().then_some(())
    });
    assert_eq!(ns.ok("ip route show 10.77.0.2/32"), "");
    assert_nothing_left(&ns);
    assert_eq!(call(&ns, "DEL", "c1", &conf).ok(), Value::Null, "again");
}

#[test]
fn a_published_port_is_reached_from_outside_the_hosts_addresses_and_through_hairpins() {
    let Some(ns) = HostNs::new(
        "a_published_port_is_reached_from_outside_the_hosts_addresses_and_through_hairpins",
    ) else {
        return;
    };
    let outside = ns.outside();
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf1 = routed(publishing(8080, 8000));
    let conf2 = routed(json!({}));
    call(&ns, "ADD", "c1", &conf1).ok();
    call(&ns, "ADD", "c2", &conf2).ok();
    let mut server = serve(&ns, "c1", 8000, "hello-from-c1");
    let reply = "hello-from-c1";
    reaches(
        "the port from outside",
        || stdout(&outside.sh("busybox nc -w 2 192.0.2.1 8080 </dev/null")),
        reply,
    );
    for host_address in ["127.0.0.1", "192.0.2.1", "10.77.0.1"] {
        reaches(
            &format!("the port from the host's {host_address}"),
            || read_from(&ns, None, host_address, 8080),
            reply,
        );
    }
    for host_address in ["192.0.2.1", "10.77.0.1"] {
        reaches(
            &format!("c1's own port through the host's {host_address} (hairpin)"),
            || read_from(&ns, Some("c1"), host_address, 8080),
            reply,
        );
        reaches(
            &format!("c1's port from c2 through the host's {host_address}"),
            || read_from(&ns, Some("c2"), host_address, 8080),
            reply,
        );
    }
    let _ = server.kill();
    let _ = server.wait();
    call(&ns, "DEL", "c1", &conf1).ok();
    call(&ns, "DEL", "c2", &conf2).ok();
    assert_nothing_left(&ns);
}

#[test]
fn containers_of_one_routed_network_reach_each_other_with_their_own_source_addresses() {
    let Some(ns) = HostNs::new(
        "containers_of_one_routed_network_reach_each_other_with_their_own_source_addresses",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = routed(json!({}));
    call(&ns, "ADD", "c1", &conf).ok();
    call(&ns, "ADD", "c2", &conf).ok();
    assert_eq!(source_seen(&ns, "c1", "c2", "10.77.0.3", 8000), "10.77.0.2");
    assert_eq!(source_seen(&ns, "c2", "c1", "10.77.0.2", 8001), "10.77.0.3");
    // The host, by the gateway's address, sees them as themselves too.
    assert_eq!(source_seen(&ns, "c1", "c2", "10.77.0.3", 8002), "10.77.0.2");
    call(&ns, "DEL", "c1", &conf).ok();
    call(&ns, "DEL", "c2", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_bridge_mode_networks_container_reaches_a_routed_one_only_through_a_published_port() {
    let Some(ns) = HostNs::new(
        "a_bridge_mode_networks_container_reaches_a_routed_one_only_through_a_published_port",
    ) else {
        return;
    };
    let _outside = ns.outside();
    netns_add(&ns, "c1");
    netns_add(&ns, "b1");
    let conf1 = routed(publishing(8080, 8000));
    // The default mode, on its own bridge (sv0, 10.88.7.0/24).
    let bridged = conf("1.0.0", json!({"name": "net2"}));
    call(&ns, "ADD", "c1", &conf1).ok();
    call(&ns, "ADD", "b1", &bridged).ok();
    let mut server = serve(&ns, "c1", 8000, "hello-from-c1");
    reaches(
        "c1's published port from b1 through the host",
        || read_from(&ns, Some("b1"), "192.0.2.1", 8080),
        "hello-from-c1",
    );
    // Directly: dropped by the forward chain (`oifname "sv-*" drop`).
    let direct = ns.sh("ip netns exec b1 busybox nc -w 2 10.77.0.2 8000 </dev/null");
    assert!(
        !stdout(&direct).contains("hello-from-c1"),
        "b1 reached c1 directly"
    );
    let _ = server.kill();
    let _ = server.wait();
    // And the other way: c1 to b1 directly is dropped too.
    let mut server = serve(&ns, "b1", 8000, "hello-from-b1");
    reaches(
        "b1's own listener from the host",
        || read_from(&ns, None, "10.88.7.2", 8000),
        "hello-from-b1",
    );
    let direct = ns.sh("ip netns exec c1 busybox nc -w 2 10.88.7.2 8000 </dev/null");
    assert!(
        !stdout(&direct).contains("hello-from-b1"),
        "c1 reached b1 directly"
    );
    let _ = server.kill();
    let _ = server.wait();
    call(&ns, "DEL", "c1", &conf1).ok();
    call(&ns, "DEL", "b1", &bridged).ok();
    assert_nothing_left(&ns);
}

/// How many UDP packets to port 9999 from `source` reached the host's
/// input (a probe table of the test's, after the raw guard).
fn arrived(ns: &HostNs, source: &str) -> u64 {
    let listing = ns.ok("nft list chain ip probe input");
    let line = listing
        .lines()
        .find(|l| l.contains(source))
        .unwrap_or_else(|| panic!("no probe rule for {source}: {listing}"));
    common::counted_packets(line)
}

#[test]
fn a_routed_container_sending_from_another_address_is_dropped_by_its_sources_element() {
    let Some(ns) = HostNs::new(
        "a_routed_container_sending_from_another_address_is_dropped_by_its_sources_element",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = routed(json!({}));
    let result = call(&ns, "ADD", "c1", &conf).ok();
    call(&ns, "ADD", "c2", &conf).ok();
    let host = host_end(&result);
    // No reverse-path filtering (the kernel's default), on the host end
    // too: the guard alone decides. (With 1 or 2 the kernel drops these
    // as well, on a link with no address of its own: loose mode has no
    // address to fall back on there.)
    ns.ok(&format!(
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.{host}.rp_filter=0"
    ));
    ns.ok(
        "nft add table ip probe && nft add chain ip probe input '{ type filter hook input priority 0; }' \
         && nft add rule ip probe input ip saddr 10.77.0.3 udp dport 9999 counter \
         && nft add rule ip probe input ip saddr 10.77.0.99 udp dport 9999 counter \
         && nft add rule ip probe input ip saddr 10.77.0.2 udp dport 9999 counter",
    );
    ns.ok("ip -n c1 addr add 10.77.0.3/32 dev eth0 && ip -n c1 addr add 10.77.0.99/32 dev eth0");
    let send = |source: &str| {
        ns.ok(&format!(
            "echo x | ip netns exec c1 nc -u -w1 -s {source} 10.77.0.1 9999 || true"
        ));
    };
    for source in ["10.77.0.3", "10.77.0.99", "10.77.0.2"] {
        send(source);
    }
    assert_eq!(arrived(&ns, "10.77.0.2"), 1, "its own address passes");
    assert_eq!(arrived(&ns, "10.77.0.3"), 0, "c2's address from c1");
    assert_eq!(arrived(&ns, "10.77.0.99"), 0, "a foreign address");
    // With the element saying the address is c1's, the same packets pass:
    // the guard, not anything else, dropped them.
    ns.ok(&format!(
        "nft add element ip supervisor sources '{{ \"{host}\" . 10.77.0.3, \"{host}\" . 10.77.0.99 }}'"
    ));
    for source in ["10.77.0.3", "10.77.0.99"] {
        send(source);
    }
    assert_eq!(
        arrived(&ns, "10.77.0.3"),
        1,
        "{}",
        ns.ok("nft list ruleset")
    );
    assert_eq!(arrived(&ns, "10.77.0.99"), 1);
    ns.ok(&format!(
        "nft delete element ip supervisor sources '{{ \"{host}\" . 10.77.0.3, \"{host}\" . 10.77.0.99 }}'"
    ));
    ns.ok("nft delete table ip probe");
    call(&ns, "DEL", "c1", &conf).ok();
    call(&ns, "DEL", "c2", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn routed_mode_refuses_ipv6_an_unknown_mode_and_a_bridge_of_the_other_mode() {
    let Some(ns) =
        HostNs::new("routed_mode_refuses_ipv6_an_unknown_mode_and_a_bridge_of_the_other_mode")
    else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    for (extra, field) in [
        (json!({"ipv6": true}), "ipv6:"),
        (json!({"subnet6": "fd00:77::/64"}), "subnet6:"),
    ] {
        let (code, msg) = call(&ns, "ADD", "c1", &routed(extra)).error();
        assert_eq!(code, 7, "{msg}");
        assert!(msg.starts_with(field) && msg.contains("IPv4 only"), "{msg}");
    }
    let (code, msg) = call(&ns, "ADD", "c1", &routed(json!({"mode": "l2"}))).error();
    assert_eq!(
        (code, msg.as_str()),
        (7, "mode: \"l2\" is no mode: \"bridge\" or \"routed\"")
    );
    assert!(!ns.ok("ip -br link").contains("rtd0"));
    // A bridge serving one mode's containers refuses the other's.
    let bridged_on_rtd0 = conf(
        "1.0.0",
        json!({"name": "net2", "bridge": "rtd0", "subnet": "10.77.0.0/24"}),
    );
    let routed_conf = routed(json!({}));
    call(&ns, "ADD", "c1", &routed_conf).ok();
    let (code, msg) = call(&ns, "ADD", "c2", &bridged_on_rtd0).error();
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("bridge rtd0 serves a routed-mode network"),
        "{msg}"
    );
    assert_eq!(
        container_veths(&ns).len(),
        1,
        "the refused ADD made nothing: {}",
        ns.ok("ip -br link")
    );
    call(&ns, "DEL", "c1", &routed_conf).ok();
    assert_nothing_left(&ns);
    // Once it serves none, the other mode may take it, and then holds it.
    call(&ns, "ADD", "c2", &bridged_on_rtd0).ok();
    let (code, msg) = call(&ns, "ADD", "c1", &routed_conf).error();
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("bridge rtd0 serves a bridge-mode network"),
        "{msg}"
    );
    call(&ns, "DEL", "c2", &bridged_on_rtd0).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_failed_routed_add_leaves_nothing_behind() {
    let Some(ns) = HostNs::new("a_failed_routed_add_leaves_nothing_behind") else {
        return;
    };
    netns_add(&ns, "c1");
    // The interface name is taken inside: the veth cannot be made.
    ns.ok("ip -n c1 link add eth0 type veth peer name other0");
    let (code, msg) = call(&ns, "ADD", "c1", &routed(publishing(8080, 8000))).error();
    assert!(code >= 100, "{code}: {msg}");
    assert_eq!(
        msg,
        "CNI_NETNS \"/run/netns/c1\" has an interface eth0 already"
    );
    assert_nothing_left(&ns);
    assert_eq!(ns.ok("ip route show proto static"), "");
    // A port taken by another attachment fails it after the plumbing.
    netns_add(&ns, "c2");
    let conf = routed(publishing(8080, 8000));
    call(&ns, "ADD", "c2", &conf).ok();
    ns.ok("ip netns del c1 && ip netns add c1");
    let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
    assert!(code >= 100, "{code}: {msg}");
    assert!(msg.contains("8080"), "{msg}");
    eventually(
        "the failed ADD's link gone",
        Duration::from_secs(10),
        || (container_veths(&ns).len() == 1).then_some(()),
    );
    assert_eq!(
        ns.ok("ip route show proto static").lines().count(),
        1,
        "{}",
        ns.ok("ip route")
    );
    call(&ns, "DEL", "c2", &conf).ok();
    assert_nothing_left(&ns);
    assert_eq!(records(&ns), "");
    assert_eq!(leases(&ns), "");
}

#[test]
fn check_names_a_routed_attachments_missing_host_end_or_route() {
    let Some(ns) = HostNs::new("check_names_a_routed_attachments_missing_host_end_or_route") else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = routed(json!({}));
    let host = host_end(&call(&ns, "ADD", "c1", &conf).ok());
    ns.ok("ip route del 10.77.0.2/32");
    let (code, msg) = call(&ns, "CHECK", "c1", &conf).error();
    assert_eq!(code, 104, "{msg}");
    assert!(
        msg.contains(&format!("route 10.77.0.2/32 via link {host}")),
        "{msg}"
    );
    ns.ok(&format!("ip link del {host}"));
    let (code, msg) = call(&ns, "CHECK", "c1", &conf).error();
    assert_eq!(code, 104, "{msg}");
    assert!(msg.contains(&format!("link {host}")), "{msg}");
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_route_taking_part_of_a_routed_subnet_after_its_bridge_was_made_refuses_the_addresses_it_takes()
{
    let Some(ns) = HostNs::new("a_route_taking_part_of_a_routed_subnet_refuses_its_addresses")
    else {
        return;
    };
    let _outside = ns.outside();
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = routed(json!({}));
    call(&ns, "ADD", "c1", &conf).ok();
    // A VPN's, say: 10.77.0.0/26 out of another link, more specific than
    // the subnet's own route on the bridge. The bridge exists, so no ADD
    // reads every route any more: the next address is checked alone.
    ns.ok("ip route add 10.77.0.0/26 dev uplink");
    let (code, msg) = call(&ns, "ADD", "c2", &conf).error();
    assert!(code >= 100, "{code}: {msg}");
    assert!(
        msg.contains("subnet 10.77.0.0/24 overlaps the route to 10.77.0.3 on uplink"),
        "{msg}"
    );
    assert_eq!(container_veths(&ns).len(), 1, "{}", ns.ok("ip -br link"));
    // Its lease went back with it (the next ADD takes the next address,
    // round robin); outside that route, addresses are fine.
    assert_eq!(leases(&ns).lines().count(), 1, "{}", leases(&ns));
    ns.ok("ip route del 10.77.0.0/26 dev uplink && ip route add 10.77.0.0/31 dev uplink");
    let result = call(&ns, "ADD", "c2", &conf).ok();
    assert_eq!(result["ips"][0]["address"], "10.77.0.4/32", "{result}");
    ns.ok("ip route del 10.77.0.0/31 dev uplink");
    call(&ns, "DEL", "c1", &conf).ok();
    call(&ns, "DEL", "c2", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn gc_removes_routed_attachments_not_in_valid_attachments_with_their_routes_and_sources() {
    let Some(ns) = HostNs::new("gc_removes_routed_attachments_not_in_valid_attachments") else {
        return;
    };
    let versioned = |extra: Value| {
        let mut doc: Value = serde_json::from_str(&routed(extra)).expect("JSON");
        doc["cniVersion"] = json!("1.1.0");
        doc.to_string()
    };
    for id in ["c1", "c2"] {
        netns_add(&ns, id);
        call(&ns, "ADD", id, &versioned(json!({}))).ok();
    }
    let gc =
        versioned(json!({"cni.dev/valid-attachments": [{"containerID": "c2", "ifname": "eth0"}]}));
    assert_eq!(call(&ns, "GC", "", &gc).ok(), Value::Null);
    assert_eq!(records(&ns).trim(), "c2:eth0.json");
    let sources = ns.ok("nft list set ip supervisor sources");
    assert!(
        !sources.contains("10.77.0.2") && sources.contains("10.77.0.3"),
        "{sources}"
    );
    // The link, and its route with it, go after the answer.
    eventually(
        "only c2's lease, link and route",
        Duration::from_secs(10),
        || {
            (leases(&ns).trim() == "10.77.0.3"
                && container_veths(&ns).len() == 1
                && ns.ok("ip route show proto static").lines().count() == 1)
                .then_some(())
        },
    );
    assert!(
        ns.ok("ip route show proto static")
            .starts_with("10.77.0.3 "),
        "{}",
        ns.ok("ip route")
    );
    // Again: nothing more to do.
    assert_eq!(call(&ns, "GC", "", &gc).ok(), Value::Null);
    call(&ns, "DEL", "c2", &gc).ok();
    assert_nothing_left(&ns);
    assert_eq!(ns.ok("ip route show proto static"), "");
}

#[test]
fn a_routed_networks_elements_outlive_a_reload_of_the_tables_and_go_with_its_bridge() {
    let Some(ns) = HostNs::new("a_routed_networks_elements_outlive_a_reload_of_the_tables") else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = routed(json!({}));
    let host = host_end(&call(&ns, "ADD", "c1", &conf).ok());
    // Tables another version loaded: the next ADD loads them anew,
    // keeping every network's and container's elements.
    ns.ok("nft flush set ip supervisor version && nft add element ip supervisor version '{ 0x1 }'");
    call(&ns, "ADD", "c2", &conf).ok();
    assert!(
        !ns.ok("nft list set ip supervisor version")
            .contains("0x00000001"),
        "the tables were not reloaded"
    );
    let sources = ns.ok("nft list set ip supervisor sources");
    assert!(
        sources.contains(&format!("\"{host}\" . 10.77.0.2")),
        "{sources}"
    );
    let pairs = ns.ok("nft list set ip supervisor routed_subnets");
    assert!(pairs.contains("10.77.0.0/24 . 10.77.0.0/24"), "{pairs}");
    assert_eq!(source_seen(&ns, "c1", "c2", "10.77.0.3", 8000), "10.77.0.2");
    call(&ns, "DEL", "c1", &conf).ok();
    call(&ns, "DEL", "c2", &conf).ok();
    assert_nothing_left(&ns);
    // `gc` takes a gone bridge's network out, its pair with it.
    ns.ok("ip link del rtd0");
    assert!(common::run(ns.supervisor().arg("gc")).status.success());
    assert!(
        !ns.ok("nft list set ip supervisor routed_subnets")
            .contains("10.77.0.0"),
        "{}",
        ns.ok("nft list set ip supervisor routed_subnets")
    );
}

#[test]
fn a_routed_attachments_unmasqueraded_ranges_are_keyed_by_its_host_end_and_go_with_its_del_as_added()
 {
    let Some(ns) = HostNs::new("a_routed_attachments_unmasqueraded_ranges_go_with_its_del") else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = routed(json!({"noMasqueradeCidrs": ["10.244.0.0/16"]}));
    let result = call(&ns, "ADD", "c1", &conf).ok();
    let host = host_end(&result);
    // Its packets are seen on its host end, never on rtd0: a range keyed
    // by the bridge would match none of them.
    let set = || ns.ok("nft list set ip supervisor no_masquerade");
    let listed = set();
    assert!(
        listed.contains(&format!("\"{host}\" . 10.244.0.0/16")),
        "{listed}"
    );
    assert!(!listed.contains("\"rtd0\""), "{listed}");
    // The configuration edited since (GC always has the current one): the
    // DEL still takes what the ADD added, which the record says.
    let edited = routed(json!({"noMasqueradeCidrs": ["10.0.0.0/8"]}));
    assert_eq!(call(&ns, "DEL", "c1", &edited).ok(), Value::Null);
    let listed = set();
    assert!(!listed.contains("10.244.0.0/16"), "{listed}");
    assert_nothing_left(&ns);
}

#[test]
fn a_routed_container_cannot_fill_the_hosts_neighbour_table_with_forged_arp_requests() {
    let Some(ns) = HostNs::new("a_routed_container_cannot_fill_the_hosts_neighbour_table") else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = routed(json!({}));
    let host = host_end(&call(&ns, "ADD", "c1", &conf).ok());
    // As in the spoofing test: no reverse-path filter, which would drop
    // these requests too, so only what the plugin set decides.
    ns.ok(&format!(
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.{host}.rp_filter=0"
    ));
    // ARP requests for the gateway, each from a forged sender address
    // (198.18.0.x): answered, each left a neighbour entry on the host end,
    // and enough of them fill the table every namespace shares.
    let forge = "import socket, struct\n\
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
        s.bind(('eth0', 0))\n\
        me = bytes.fromhex(open('/sys/class/net/eth0/address').read().strip().replace(':', ''))\n\
        for i in range(1, 51):\n\
        \x20   arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + me + bytes([198, 18, 0, i]) + bytes(6) + bytes([10, 77, 0, 1])\n\
        \x20   s.send(b'\\xff' * 6 + me + b'\\x08\\x06' + arp)\n";
    let python = common::python3("forged ARP requests");
    let sent = ns
        .command("ip")
        .args(["netns", "exec", "c1", python, "-c", forge])
        .output()
        .expect("python3");
    assert!(sent.status.success(), "{}", common::stderr(&sent));
    std::thread::sleep(Duration::from_millis(200));
    let neighbours = ns.ok(&format!("ip -4 neigh show dev {host}"));
    assert!(!neighbours.contains("198.18."), "{neighbours}");
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_local_range_taking_a_routed_subnets_addresses_after_its_bridge_was_made_refuses_them() {
    let Some(ns) = HostNs::new("a_local_range_taking_a_routed_subnets_addresses_refuses_them")
    else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = routed(json!({}));
    call(&ns, "ADD", "c1", &conf).ok();
    // AnyIP over the subnet, wider than it; with a policy rule (a VPN's,
    // say) the local table is looked up first, and the host takes every
    // address of the range as its own, the subnet's next ones included.
    ns.ok("ip rule add pref 100 to 192.0.2.0/24 lookup main \
         && ip route add local 10.77.0.0/16 dev lo");
    let (code, msg) = call(&ns, "ADD", "c2", &conf).error();
    assert!(code >= 100, "{code}: {msg}");
    assert!(
        msg.contains("10.77.0.0/24") && msg.contains("on lo"),
        "{msg}"
    );
    assert_eq!(container_veths(&ns).len(), 1, "{}", ns.ok("ip -br link"));
    ns.ok("ip route del local 10.77.0.0/16 dev lo && ip rule del pref 100");
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn gc_removes_a_routed_host_end_no_record_explains_and_leaves_a_users_sv_links() {
    let Some(ns) = HostNs::new("gc_removes_a_routed_host_end_no_record_explains") else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = routed(json!({}));
    let left = host_end(&call(&ns, "ADD", "c1", &conf).ok());
    let live = host_end(&call(&ns, "ADD", "c2", &conf).ok());
    // c1's plugin gone with no record written: its link is all that is left.
    ns.ok("rm /run/supervisor/containers/c1:eth0.json /run/supervisor/leases/rtd0/10.77.0.2");
    // A user's links named as ours: veths, one with the routed MAC but no
    // route of the network, one with such a route but another MAC.
    ns.ok(
        "ip link add sv-user0 address ee:ee:ee:ee:ee:ee type veth peer name user0p \
         && ip link set sv-user0 up \
         && ip link add sv-user1 type veth peer name user1p \
         && ip link set sv-user1 up \
         && ip route add 10.77.0.9/32 dev sv-user1 scope link src 10.77.0.1 proto static",
    );
    let check = common::run(ns.supervisor().arg("check"));
    assert!(
        stdout(&check).contains(&format!(
            "link {left} (bridge rtd0): no live container has it"
        )),
        "{}",
        stdout(&check)
    );
    let gc = common::supervisor(&ns, &["gc", "--bridge", "rtd0", "--subnet", "10.77.0.0/24"]);
    assert!(gc.status.success(), "{gc:?}");
    assert!(
        stdout(&gc).contains(&format!("removed link {left}")),
        "{}",
        stdout(&gc)
    );
    let links = ns.ok("ip -br link");
    assert!(!links.contains(&left), "{links}");
    for kept in [live.as_str(), "sv-user0", "sv-user1"] {
        assert!(links.contains(kept), "{kept} removed:\n{links}");
    }
    ns.ok("ip link del sv-user0 && ip link del sv-user1");
    call(&ns, "DEL", "c2", &conf).ok();
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_routed_container_cannot_have_the_host_resolve_addresses_of_its_subnet_no_container_holds() {
    let Some(ns) = HostNs::new("a_routed_container_cannot_have_the_host_resolve_addresses") else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = routed(json!({}));
    call(&ns, "ADD", "c1", &conf).ok();
    call(&ns, "ADD", "c2", &conf).ok();
    // Its only neighbour is its gateway: every datagram goes to the host,
    // which would route one for an address nobody holds onto the bridge
    // (no port) and make a neighbour entry for it there, in the table
    // every namespace of the machine shares; the forward chain drops what
    // no rule lets onto a bridge first. A few show it.
    let send = |first: u8| {
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             for i in range({first}, {first} + 16): s.sendto(b'x', ('10.77.0.%d' % i, 9))\n"
        );
        let python = common::python3("datagrams to unheld addresses");
        let sent = ns
            .command("ip")
            .args(["netns", "exec", "c1", python, "-c", &script])
            .output()
            .expect("python3");
        assert!(sent.status.success(), "{}", common::stderr(&sent));
        std::thread::sleep(Duration::from_millis(200));
        ns.ok("ip -4 neigh show dev rtd0")
            .lines()
            .filter(|l| {
                l.split('.')
                    .nth(3)
                    .and_then(|h| h.split(' ').next()?.parse::<u8>().ok())
                    .is_some_and(|h| (first..first + 16).contains(&h))
            })
            .count()
    };
    assert_eq!(send(100), 0, "{}", ns.ok("ip -4 neigh show dev rtd0"));
    // A held address is still reached: c2 answers c1.
    assert_eq!(source_seen(&ns, "c1", "c2", "10.77.0.3", 8000), "10.77.0.2");
    // The attack, with the rule off.
    common::forge::delete_rule(
        |script| ns.ok(script),
        "ip supervisor forward",
        "oifname @bridges drop",
    );
    assert!(send(150) > 0, "without the rule the host resolves them");
    call(&ns, "DEL", "c1", &conf).ok();
    call(&ns, "DEL", "c2", &conf).ok();
}
