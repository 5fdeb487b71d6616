//! Past one machine, by simulation: two Kubernetes-style nodes, each a
//! throwaway host (`HostNs`) with its own pod subnet (10.244.1.0/24 on
//! node A at 192.0.2.1, 10.244.2.0/24 on node B at 192.0.2.2), joined by a
//! veth link with static routes to each other's pod subnet, as a cluster's
//! network (or its cloud's routes) gives them. Each node runs one pod, a
//! netns attached by the plugin driven as an engine drives it (environment
//! and config on stdin, through `cni_engine`), with the README's conflist
//! for a Kubernetes node: `noMasqueradeCidrs` covering the cluster range
//! 10.244.0.0/16.

mod common;

#[path = "../src/bench/cni_engine.rs"]
#[allow(dead_code)]
mod cni_engine;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cni_engine::{Attachment, Network};
use common::container::{Background, answers, ask, connects, serve_tcp};
use common::{HostNs, SUPERVISOR, stdout};

const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// A directory holding the plugin as `supervisor`, on the machine's disk
/// so every namespace sees it.
fn plugin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cni-plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    let link = dir.join("supervisor");
    if std::fs::read_link(&link).ok().as_deref() != Some(Path::new(SUPERVISOR)) {
        let _ = std::fs::remove_file(&link);
        // Another test may have made it in between.
        let _ = std::os::unix::fs::symlink(SUPERVISOR, &link);
    }
    dir
}

/// The cluster's IPv6 pod range, and node `n`'s pod subnet6 in it.
const CLUSTER_CIDR6: &str = "fd00:10:244::/56";
fn subnet6(n: u8) -> String {
    format!("fd00:10:244:{n}::/64")
}

/// The README's conflist for a Kubernetes node (routed mode), for node
/// `n`: its subnet the node's, and without `noMasqueradeCidrs` for the
/// control; with `dual_stack` also the node's subnet6 and the cluster's
/// IPv6 range exempt from masquerading, in bridge mode.
fn conflist(n: u8, no_masquerade: bool, dual_stack: bool) -> String {
    let readme = include_str!("../README.md");
    let json = readme
        .split("### On a Kubernetes node")
        .nth(1)
        .and_then(|section| section.split("```json\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("the README's conflist for a Kubernetes node");
    let mut conflist: serde_json::Value =
        serde_json::from_str(json).expect("the README's conflist is JSON");
    let plugin = conflist["plugins"][0]
        .as_object_mut()
        .expect("the README's conflist has a plugin");
    assert_eq!(plugin["subnet"], "10.244.1.0/24", "the README's pod subnet");
    assert_eq!(
        plugin["noMasqueradeCidrs"],
        serde_json::json!([CLUSTER_CIDR]),
        "the README's cluster range"
    );
    assert_eq!(plugin["mode"], "routed", "the README's mode");
    plugin.insert("subnet".into(), format!("10.244.{n}.0/24").into());
    if dual_stack {
        // Routed mode is IPv4 only: a dual-stack node is in bridge mode.
        plugin.remove("mode");
        plugin.insert("subnet6".into(), subnet6(n).into());
        plugin.insert(
            "noMasqueradeCidrs".into(),
            serde_json::json!([CLUSTER_CIDR, CLUSTER_CIDR6]),
        );
    }
    if !no_masquerade {
        plugin.remove("noMasqueradeCidrs");
    }
    conflist.to_string()
}

/// One node: its host, its number (1 for A, 2 for B), its network as the
/// engine sees it, and its pod once attached.
struct Node {
    host: HostNs,
    n: u8,
    network: Network,
    pod: Option<(Attachment, serde_json::Value)>,
}

impl Node {
    fn new(test: &str, n: u8, no_masquerade: bool, dual_stack: bool) -> Option<Node> {
        let host = HostNs::new(test)?;
        let conflist = conflist(n, no_masquerade, dual_stack);
        let dir = plugin_dir();
        let mut network = Network::from_conflist(&conflist, &[dir.as_path()]).expect("conflist");
        network.launcher = vec![
            "nsenter".into(),
            format!("--target={}", host.pid()),
            "--net".into(),
            "--mount".into(),
            "--".into(),
        ];
        // A node forwards: Kubernetes requires it of every node.
        host.ok("sysctl -qw net.ipv4.ip_forward=1");
        Some(Node {
            host,
            n,
            network,
            pod: None,
        })
    }

    /// The node's address on the link between the nodes.
    fn address(&self) -> String {
        format!("192.0.2.{}", self.n)
    }

    /// Makes the pod's netns and attaches it, publishing `ports`; its
    /// (IPv4) address.
    fn attach_pod(&mut self, ports: &[(u16, u16)]) -> String {
        self.host.ok("ip netns add pod");
        let attachment =
            Attachment::publishing(&format!("pod-on-node-{}", self.n), "/run/netns/pod", ports);
        let result = self
            .network
            .add(&attachment)
            .unwrap_or_else(|e| panic!("node {}: {e}", self.n));
        self.pod = Some((attachment, result));
        let address = self.pod_address(0);
        assert!(
            address.starts_with(&format!("10.244.{}.", self.n)),
            "node {}'s pod got {address}, outside its subnet",
            self.n
        );
        address
    }

    /// The address of `ips[index]` of the pod's ADD result.
    fn pod_address(&self, index: usize) -> String {
        let (_, result) = self.pod.as_ref().expect("an attached pod");
        result["ips"][index]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .unwrap_or_else(|| panic!("no address {index} in the ADD result: {result}"))
            .to_string()
    }

    /// A command run inside the pod.
    fn in_pod(&self, program: &str) -> Command {
        let mut cmd = self.host.command("ip");
        cmd.args(["netns", "exec", "pod", program]);
        cmd
    }

    fn pod_sh(&self, script: &str) -> Output {
        self.in_pod("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("run sh in the pod")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some((attachment, result)) = self.pod.take()
            && let Err(e) = self.network.del(&attachment, Some(&result))
            && !std::thread::panicking()
        {
            panic!("node {}: {e}", self.n);
        }
    }
}

/// Nodes A and B joined by a link, each routing the other's pod subnet
/// through it.
fn cluster(test: &str, no_masquerade: bool) -> Option<(Node, Node)> {
    cluster_of(test, no_masquerade, false)
}

/// `cluster`, with `dual_stack` also 2001:db8::N on the link and routes
/// to each other's pod subnet6.
fn cluster_of(test: &str, no_masquerade: bool, dual_stack: bool) -> Option<(Node, Node)> {
    let a = Node::new(&format!("{test} (node A)"), 1, no_masquerade, dual_stack)?;
    let b = Node::new(&format!("{test} (node B)"), 2, no_masquerade, dual_stack)?;
    a.host.ok(&format!(
        "ip link add eth0 type veth peer name eth0 netns {}",
        b.host.netns_path()
    ));
    for (node, other) in [(&a, &b), (&b, &a)] {
        node.host.ok(&format!(
            "ip addr add {}/24 dev eth0 && ip link set eth0 up \
             && ip route add 10.244.{}.0/24 via {}",
            node.address(),
            other.n,
            other.address()
        ));
        if dual_stack {
            node.host.ok(&format!(
                "ip -6 addr add 2001:db8::{}/64 dev eth0 nodad \
                 && ip -6 route add {} via 2001:db8::{}",
                node.n,
                subnet6(other.n),
                other.n
            ));
        }
    }
    Some((a, b))
}

/// The source address `to`'s pod sees on a connection from `from`'s pod
/// to `to_address:port`.
fn source_seen(from: &Node, to: &Node, to_address: &str, port: u16) -> String {
    let listener = to
        .in_pod("timeout")
        .args(["20", "sh", "-c"])
        .arg(format!(
            "nc -n -v -l {family} -p {port} </dev/null 2>&1 | grep -m1 Connection",
            family = if to_address.contains(':') { "-6" } else { "-4" }
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a listener in the pod");
    connects("pod -> pod", || {
        from.pod_sh(&format!("echo hi | nc -n -N -w2 {to_address} {port}"))
    });
    common::connection_source(&stdout(&listener.wait_with_output().expect("listener")))
}

#[test]
fn pods_on_two_nodes_reach_each_other_directly_with_their_own_source_addresses() {
    let Some((mut a, mut b)) = cluster(
        "pods_on_two_nodes_reach_each_other_directly_with_their_own_source_addresses",
        true,
    ) else {
        return;
    };
    let pod_a = a.attach_pod(&[]);
    let pod_b = b.attach_pod(&[]);
    assert_eq!(source_seen(&a, &b, &pod_b, 8000), pod_a, "A -> B");
    assert_eq!(source_seen(&b, &a, &pod_a, 8001), pod_b, "B -> A");
}

/// Records the source address of every TCP packet to `port` arriving on
/// `node`'s link, in a probe table of the test's own (before anything of
/// ours sees it); returns what it recorded after `send`.
fn sources_arriving(node: &Node, port: u16, send: impl Fn()) -> Vec<String> {
    node.host.ok(&format!(
        "nft add table ip probe && nft add set ip probe seen '{{ type ipv4_addr; }}' \
         && nft add chain ip probe pre '{{ type filter hook prerouting priority -400; }}' \
         && nft add rule ip probe pre iifname eth0 tcp dport {port} add @seen '{{ ip saddr }}'"
    ));
    send();
    let listed = node.host.ok("nft list set ip probe seen");
    listed
        .split_once("elements = {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(elements, _)| {
            elements
                .split(',')
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The control: the same cluster without `noMasqueradeCidrs` masquerades
/// pod-to-pod traffic (and node B, exempting no range, drops it), so a
/// passing test above is one that can fail.
#[test]
fn without_no_masquerade_cidrs_pod_traffic_leaves_the_node_with_the_nodes_address() {
    let Some((mut a, mut b)) = cluster(
        "without_no_masquerade_cidrs_pod_traffic_leaves_the_node_with_the_nodes_address",
        false,
    ) else {
        return;
    };
    a.attach_pod(&[]);
    let pod_b = b.attach_pod(&[]);
    let seen = sources_arriving(&b, 8000, || {
        a.pod_sh(&format!("nc -n -z -w1 {pod_b} 8000"));
    });
    assert_eq!(seen, [a.address()]);
}

#[test]
fn a_nodeport_style_published_port_on_node_a_answers_node_b_and_its_pod_at_node_as_address() {
    let Some((mut a, mut b)) = cluster(
        "a_nodeport_style_published_port_on_node_a_answers_node_b_and_its_pod_at_node_as_address",
        true,
    ) else {
        return;
    };
    a.attach_pod(&[(30080, 8000)]);
    b.attach_pod(&[]);
    let _server = Background::start(a.in_pod("timeout"), &serve_tcp("pod-a", 8000));
    let node_a = a.address();
    answers("node B -> node A:30080", "from-pod-a", || {
        ask(|s| b.host.sh(s), &node_a, 30080)
    });
    answers("node B's pod -> node A:30080", "from-pod-a", || {
        ask(|s| b.pod_sh(s), &node_a, 30080)
    });
}

#[test]
fn dual_stack_pods_on_two_nodes_reach_each_other_over_ipv6_with_their_own_source_addresses() {
    let Some((mut a, mut b)) = cluster_of(
        "dual_stack_pods_on_two_nodes_reach_each_other_over_ipv6",
        true,
        true,
    ) else {
        return;
    };
    a.attach_pod(&[]);
    b.attach_pod(&[]);
    let (pod_a, pod_b) = (a.pod_address(1), b.pod_address(1));
    assert_eq!(pod_a, "fd00:10:244:1::2");
    assert_eq!(pod_b, "fd00:10:244:2::2");
    assert_eq!(source_seen(&a, &b, &pod_b, 8000), pod_a, "A -> B");
    assert_eq!(source_seen(&b, &a, &pod_a, 8001), pod_b, "B -> A");
}
