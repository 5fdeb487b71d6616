//! The CNI plugin driven by a real engine: podman 4.3 with
//! `network_backend = "cni"`, inside a throwaway host of its own (net, mount
//! and pid namespaces; see tests/common/podman.rs), on a busybox-static
//! rootfs. A container publishing 8080→8000 must answer the outside, the
//! host's 127.0.0.1 and its address, a second container through the host
//! address (hairpin) and itself; `podman rm -f` must leave no map element,
//! lease, link or conntrack entry, as the real `nft`, `conntrack` and `ip`
//! see them.
//!
//! Each case runs on three chains: ours alone (`supervisor` as the main
//! plugin), the reference `bridge` + `host-local` followed by ours chained
//! (a drop-in for `portmap`), and the reference `bridge` + `host-local` +
//! `portmap`, which proves the harness itself: a failure on ours that the
//! reference passes is ours. Every test has its own bridge, subnet, podman
//! directories and state directory.

mod common;

use std::time::{Duration, Instant};

use common::container::{answers, ask, host, outside};
use common::podman::Podman;
use common::{HostNs, stderr, stdout};

/// The host's address facing the outside machine (`HostNs::outside`).
const HOST_ADDR: &str = "192.0.2.1";
const NETWORK: &str = "e2e";

/// Which plugins make the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chain {
    /// `supervisor` as the main plugin.
    Ours,
    /// Reference `bridge` + `host-local`, then `supervisor` chained.
    Chained,
    /// Reference `bridge` + `host-local` + `portmap`.
    Reference,
}

/// One test's network: its chain, bridge and subnet (10.88.N.0/24), and
/// when dual stack its subnet6 (fd00:88:N::/64).
struct Net {
    chain: Chain,
    bridge: String,
    subnet: String,
    subnet6: Option<String>,
}

/// Where our plugin keeps its state, inside the host.
const STATE_DIR: &str = "/run/podman-e2e/supervisor";
/// Where host-local keeps its leases, inside the host.
const IPAM_DIR: &str = "/run/podman-e2e/host-local";

impl Net {
    fn new(chain: Chain, n: u8) -> Net {
        Net {
            chain,
            bridge: format!("e2e{n}"),
            subnet: format!("10.88.{n}.0/24"),
            subnet6: None,
        }
    }

    /// `new`, dual stack.
    fn dual_stack(chain: Chain, n: u8) -> Net {
        Net {
            subnet6: Some(format!("fd00:88:{n}::/64")),
            ..Net::new(chain, n)
        }
    }

    /// The conflist podman reads for this network.
    fn conflist(&self) -> String {
        let Net {
            bridge,
            subnet,
            subnet6,
            ..
        } = self;
        let (our_subnet6, ranges6, routes6) = match subnet6 {
            Some(s6) => (
                format!(r#","subnet6":"{s6}""#),
                format!(r#",[{{"subnet":"{s6}"}}]"#),
                r#",{"dst":"::/0"}"#,
            ),
            None => (String::new(), String::new(), ""),
        };
        let ours = format!(
            r#"{{"type":"supervisor","bridge":"{bridge}","subnet":"{subnet}"{our_subnet6},"stateDir":"{STATE_DIR}","capabilities":{{"portMappings":true}}}}"#
        );
        let reference_bridge = format!(
            r#"{{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":true,"hairpinMode":true,
               "ipam":{{"type":"host-local","dataDir":"{IPAM_DIR}","routes":[{{"dst":"0.0.0.0/0"}}{routes6}],
                        "ranges":[[{{"subnet":"{subnet}"}}]{ranges6}]}}}}"#
        );
        let chained = format!(
            r#"{{"type":"supervisor","stateDir":"{STATE_DIR}","capabilities":{{"portMappings":true}}}}"#
        );
        let portmap = r#"{"type":"portmap","capabilities":{"portMappings":true}}"#;
        let plugins = match self.chain {
            Chain::Ours => ours,
            Chain::Chained => format!("{reference_bridge},{chained}"),
            Chain::Reference => format!("{reference_bridge},{portmap}"),
        };
        format!(r#"{{"cniVersion":"1.0.0","name":"{NETWORK}","plugins":[{plugins}]}}"#)
    }
}

/// A host running podman with one network, and an outside machine.
struct Case {
    outside: common::Outside,
    net: Net,
    host: HostNs,
}

impl Case {
    fn new(test: &str, net: Net) -> Option<Case> {
        let host = HostNs::for_engine(test)?;
        let outside = match net.subnet6 {
            Some(_) => host.outside6(),
            None => host.outside(),
        };
        Some(Case { outside, net, host })
    }

    fn podman(&self) -> Podman<'_> {
        Podman::new(
            &self.host,
            &[(&format!("{NETWORK}.conflist"), self.net.conflist())],
        )
    }
}

/// Starts the web container `name`, publishing 8080→8000 and answering
/// `from-NAME` to every connection (busybox `nc -ll -e`): its id.
fn start_web(podman: &Podman, name: &str) -> String {
    let reply = format!("from-{name}");
    let server = ["nc", "-ll", "-p", "8000", "-e", "echo", &reply];
    podman.start(name, NETWORK, &["8080:8000"], &server)
}

/// What busybox nc inside a container prints from `HOST_ADDR:8080`,
/// retried until it answers.
fn answers_in_container(what: &str, expected: &str, client: impl Fn() -> std::process::Output) {
    answers(what, expected, || {
        let out = client();
        if !out.status.success() {
            eprintln!("{what}: {}{}", stdout(&out), stderr(&out));
        }
        stdout(&out).trim().to_string()
    });
}

/// `on_each_chain!(case, ...)`: the tests `case::ours`,
/// `case::chained_after_the_reference_bridge` and
/// `case::reference_chain_proves_the_harness`, each running
/// `fn case(net: Net)` with its own bridge and subnet.
macro_rules! on_each_chain {
    ($($n:literal: $case:ident),* $(,)?) => {$(
        mod $case {
            use super::{Chain, Net};
            #[test]
            fn ours() {
                super::$case(concat!(stringify!($case), "::ours"), Net::new(Chain::Ours, $n))
            }
            #[test]
            fn chained_after_the_reference_bridge() {
                super::$case(
                    concat!(stringify!($case), "::chained"),
                    Net::new(Chain::Chained, $n + 1),
                )
            }
            #[test]
            fn reference_chain_proves_the_harness() {
                super::$case(
                    concat!(stringify!($case), "::reference"),
                    Net::new(Chain::Reference, $n + 2),
                )
            }
        }
    )*};
}

on_each_chain!(
    10: a_published_port_answers_the_outside_the_hosts_loopback_and_address_another_container_and_itself,
    20: podman_rm_leaves_no_element_lease_link_or_conntrack_entry,
);

fn a_published_port_answers_the_outside_the_hosts_loopback_and_address_another_container_and_itself(
    test: &str,
    net: Net,
) {
    let Some(case) = Case::new(test, net) else {
        return;
    };
    let podman = case.podman();
    start_web(&podman, "web");

    answers("the outside, at the host's address", "from-web", || {
        ask(outside(&case.outside), HOST_ADDR, 8080)
    });
    answers("the host, at 127.0.0.1", "from-web", || {
        ask(host(&case.host), "127.0.0.1", 8080)
    });
    answers("the host, at its own address", "from-web", || {
        ask(host(&case.host), HOST_ADDR, 8080)
    });
    answers_in_container(
        "a second container, through the host's address",
        "from-web",
        || podman.run_once(NETWORK, &["nc", "-w", "2", HOST_ADDR, "8080"]),
    );
    answers_in_container(
        "the container itself, through the host's address",
        "from-web",
        || podman.run(&["exec", "web", "nc", "-w", "2", HOST_ADDR, "8080"]),
    );
    podman.remove("web");
}

/// What of a container the kernel and the plugins' state hold: lines of
/// `nft list ruleset` naming its address, its `conntrack -L` entries, links
/// other than lo, the uplink and the bridge, and state files naming its id
/// or address.
#[derive(Debug, Default, PartialEq, Eq)]
struct Traces {
    nft: Vec<String>,
    conntrack: Vec<String>,
    links: Vec<String>,
    leases: Vec<String>,
}

fn traces(case: &Case, id: &str, ip: &str) -> Traces {
    let lines = |script: &str| -> Vec<String> {
        case.host
            .ok(script)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let ip_word = format!("{ip}[^0-9]|{ip}$");
    Traces {
        nft: lines(&format!("nft list ruleset | grep -E '{ip_word}' || true")),
        conntrack: lines(&format!(
            "conntrack -L 2>/dev/null | grep -E '{ip_word}' || true"
        )),
        links: lines("ip -br link | cut -d' ' -f1 | cut -d@ -f1")
            .into_iter()
            .filter(|l| !["lo", "uplink", case.net.bridge.as_str()].contains(&l.as_str()))
            .collect(),
        leases: lines(&format!(
            "{{ find {STATE_DIR} {IPAM_DIR} -type f -name '{ip}' 2>/dev/null; \
               grep -rlF -e '{id}' {STATE_DIR} {IPAM_DIR} 2>/dev/null; }} | sort -u"
        )),
    }
}

fn podman_rm_leaves_no_element_lease_link_or_conntrack_entry(test: &str, net: Net) {
    let Some(case) = Case::new(test, net) else {
        return;
    };
    let podman = case.podman();
    let id = start_web(&podman, "web");
    let ip = podman.address("web");
    assert!(!ip.is_empty(), "podman reports no address for web");

    // Connections through each path, so conntrack holds entries to forget.
    answers("the outside", "from-web", || {
        ask(outside(&case.outside), HOST_ADDR, 8080)
    });
    answers("the host's loopback", "from-web", || {
        ask(host(&case.host), "127.0.0.1", 8080)
    });
    answers_in_container("a second container", "from-web", || {
        podman.run_once(NETWORK, &["nc", "-w", "2", HOST_ADDR, "8080"])
    });

    let before = traces(&case, &id, &ip);
    assert!(
        !before.nft.is_empty(),
        "no nft element names {ip}: the check would prove nothing"
    );
    assert!(!before.conntrack.is_empty(), "no conntrack entry for {ip}");
    assert!(!before.links.is_empty(), "no container link on the host");
    assert!(!before.leases.is_empty(), "no lease names {id} or {ip}");

    podman.remove("web");
    // The veth goes with the container's namespace, which the kernel tears
    // down in the background; our DEL forgets the connections and gives the
    // address back after answering, in that order (src/cni/forget.rs; the
    // order is checked in tests/cni.rs).
    // The reference portmap forgets only UDP conntrack entries: its TCP
    // entries staying is what shows the check sees them.
    let expected = |now: &Traces| match case.net.chain {
        Chain::Reference => Traces {
            conntrack: now.conntrack.clone(),
            ..Traces::default()
        },
        Chain::Ours | Chain::Chained => Traces::default(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = traces(&case, &id, &ip);
    while after != expected(&after) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = traces(&case, &id, &ip);
    }
    assert_eq!(after, expected(&after), "left behind by podman rm -f");
    if case.net.chain == Chain::Reference {
        assert!(
            !after.conntrack.is_empty(),
            "the reference portmap left no TCP conntrack entry: the check can no longer be shown to see them"
        );
    }
}

// Dual stack: an IPv6-enabled conflist (ours with `subnet6`, or the
// reference bridge with an IPv6 range and ours chained).

/// The host's IPv6 address facing the outside machine (`HostNs::outside6`).
const HOST_ADDR6: &str = "2001:db8::1";

#[test]
fn a_dual_stack_network_answers_over_ipv6_and_podman_rm_leaves_nothing_ours() {
    dual_stack_case("dual_stack::ours", Net::dual_stack(Chain::Ours, 30));
}

#[test]
fn a_dual_stack_network_answers_over_ipv6_and_podman_rm_leaves_nothing_chained() {
    dual_stack_case("dual_stack::chained", Net::dual_stack(Chain::Chained, 31));
}

fn dual_stack_case(test: &str, net: Net) {
    let Some(case) = Case::new(test, net) else {
        return;
    };
    let podman = case.podman();
    let id = start_web(&podman, "web");
    let ip6 = podman.ok(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}",
        "web",
    ]);
    let prefix = case.net.subnet6.as_deref().unwrap_or_default();
    assert!(
        ip6.starts_with(prefix.trim_end_matches("::/64")),
        "podman reports the IPv6 address {ip6:?} in {prefix}"
    );
    answers(
        "the outside, at the host's IPv6 address",
        "from-web",
        || ask(outside(&case.outside), HOST_ADDR6, 8080),
    );
    answers("the host, at its own IPv6 address", "from-web", || {
        ask(host(&case.host), HOST_ADDR6, 8080)
    });
    answers(
        "the outside, at the host's IPv4 address still",
        "from-web",
        || ask(outside(&case.outside), HOST_ADDR, 8080),
    );
    answers_in_container(
        "a second container, through the host's IPv6 address",
        "from-web",
        || podman.run_once(NETWORK, &["nc", "-w", "2", HOST_ADDR6, "8080"]),
    );
    let before = traces(&case, &id, &ip6);
    assert!(
        !before.nft.is_empty(),
        "no nft element names {ip6}: the check would prove nothing"
    );
    podman.remove("web");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = traces(&case, &id, &ip6);
    while after != Traces::default() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = traces(&case, &id, &ip6);
    }
    assert_eq!(after, Traces::default(), "left behind by podman rm -f");
}
