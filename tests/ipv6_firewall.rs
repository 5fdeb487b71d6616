//! IPv6 through the supervisor's tables, on the kernel: the base ruleset
//! loaded and every element added through the firewall API, around
//! namespaces the test plumbs itself (the product's own IPv6 plumbing is
//! tested with `run`). The host has the bridge sv0 (172.16.0.1/24,
//! fd53:7570:6572::1/64) and an uplink to an "outside" namespace on the
//! documentation prefix (host 2001:db8::1, outside 2001:db8::2). Every
//! protection's test shows the attack succeeding with the protection off.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::netns::{fd_path, new_netns, sh_in, this_thread_netns};
use supervisor::firewall::{Firewall, Publication};
use supervisor::values::{Generation, HostIp, Owner, Port, PortTaken, Protocol};

const PREFIX: &str = "fd53:7570:6572";
const HOST: &str = "2001:db8::1";
const OUTSIDE: &str = "2001:db8::2";

/// The host (the test thread's namespace), its outside, its firewall.
struct Lab {
    host: String,
    outside: OwnedFd,
    fw: Firewall,
    _state: PathBuf,
}

/// A container namespace plumbed onto sv0 as `run` plumbs one: MAC 02:42 +
/// its IPv4 address, IPv6 without DAD, router advertisements or SLAAC.
struct Box6 {
    netns: OwnedFd,
    publication: Publication,
}

impl Lab {
    fn new(test: &str) -> Lab {
        let host = this_thread_netns();
        let outside = new_netns();
        sh_in(
            &host,
            &format!(
                "sysctl -qw net.ipv6.conf.all.forwarding=1 \
                 && ip link add sv0 type bridge && ip link set sv0 up \
                 && ip addr add 172.16.0.1/24 dev sv0 \
                 && ip -6 addr add {PREFIX}::1/64 dev sv0 nodad \
                 && ip -6 addr add fe80::1/64 dev sv0 nodad \
                 && ip link add uplink type veth peer name eth0 netns {out} \
                 && ip -6 addr add {HOST}/64 dev uplink nodad && ip link set uplink up",
                out = fd_path(&outside)
            ),
        );
        sh_in(
            &fd_path(&outside),
            &format!(
                "ip link set lo up && ip -6 addr add {OUTSIDE}/64 dev eth0 nodad \
                 && ip link set eth0 up && ip -6 route add default via {HOST}"
            ),
        );
        let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ipv6-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&state).unwrap();
        let fw = Firewall::open(&state).unwrap();
        let subnet6 = (format!("{PREFIX}::").parse().unwrap(), 64);
        fw.ensure_network("sv0", &"172.16.0.0/24".parse().unwrap(), Some(subnet6))
            .unwrap();
        Lab {
            host,
            outside,
            fw,
            _state: state,
        }
    }

    /// A container `name` at 172.16.0.N and PREFIX::N, published.
    fn container(&self, name: &str, n: u8, ports: &[Port]) -> Box6 {
        let netns = new_netns();
        let veth = format!("sv-{name}");
        sh_in(
            &self.host,
            &format!(
                "ip link add {veth} type veth peer name eth0 netns {path} \
                 && ip link set {veth} master sv0 && bridge link set dev {veth} hairpin on \
                 && ip link set {veth} up",
                path = fd_path(&netns)
            ),
        );
        sh_in(
            &fd_path(&netns),
            &format!(
                "for k in accept_dad=0 accept_ra=0 autoconf=0 disable_ipv6=0; do \
                   sysctl -qw net.ipv6.conf.eth0.$k; done \
                 && ip link set eth0 address 02:42:ac:10:00:{n:02x} \
                 && ip addr add 172.16.0.{n}/24 dev eth0 \
                 && ip -6 addr add {PREFIX}::{n:x}/64 dev eth0 nodad \
                 && ip link set lo up && ip link set eth0 up \
                 && ip -6 route add default via {PREFIX}::1"
            ),
        );
        let publication = Publication {
            owner: Owner {
                name: name.into(),
                id: format!("{name}-id"),
            },
            address: Ipv4Addr::new(172, 16, 0, n),
            address6: Some(format!("{PREFIX}::{n:x}").parse().unwrap()),
            veth,
            ports: ports.to_vec(),
            generation: Some(Generation::random()),
            routed: false,
        };
        self.fw.publish(&publication).unwrap();
        Box6 { netns, publication }
    }

    fn outside(&self) -> String {
        fd_path(&self.outside)
    }
}

impl Box6 {
    fn path(&self) -> String {
        fd_path(&self.netns)
    }

    fn address6(&self) -> String {
        self.publication.address6.unwrap().to_string()
    }
}

fn tcp6(host_ip: HostIp, host_port: u16, container_port: u16) -> Port {
    Port {
        host_ip,
        host_port,
        container_port,
        protocol: Protocol::Tcp,
    }
}

/// A background shell in a namespace, ended (by its pid) when dropped;
/// `timeout` bounds it should the test die first.
struct Background(Child);

impl Background {
    fn start(netns: &str, script: &str) -> Background {
        use std::os::unix::process::CommandExt;
        let child = Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(["--", "timeout", "30", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("nsenter");
        Background(child)
    }

    /// Ends the shell and what it started (its own process group).
    fn end(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill has no memory effects; the group is this child's.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.0.wait();
    }

    /// What it printed up to the first line holding `needle` (all of it
    /// if it ends first: `timeout` bounds the wait), then ends it.
    fn wait_for(mut self, needle: &str) -> String {
        use std::io::BufRead;
        let mut out = String::new();
        if let Some(stdout) = self.0.stdout.take() {
            let mut lines = std::io::BufReader::new(stdout);
            while lines.read_line(&mut out).is_ok_and(|n| n > 0) && !out.contains(needle) {}
        }
        self.end();
        out
    }

    /// Ends it; what it printed.
    fn output(mut self) -> String {
        self.end();
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            use std::io::Read;
            let _ = stdout.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.end();
    }
}

/// Serves `from-NAME` on TCP `port` (IPv6) and logs each client.
fn serve(netns: &str, name: &str, port: u16) -> Background {
    Background::start(
        netns,
        &format!(
            "while :; do echo from-{name} | nc -6 -v -n -l -p {port} -N 2>&1 | grep --line-buffered received; done"
        ),
    )
}

fn run_in(netns: &str, script: &str) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("nsenter")
}

/// The answer of `[addr]:port` over TCP from `netns`, "" when none.
fn ask(netns: &str, addr: &str, port: u16, source: Option<&str>) -> String {
    let source = source.map(|s| format!("-s {s}")).unwrap_or_default();
    let out = run_in(
        netns,
        &format!("timeout 3 nc -6 -n -N -w2 {source} {addr} {port} </dev/null"),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Retries until `[addr]:port` answers `expected` (the server may be
/// starting).
fn answers(what: &str, netns: &str, addr: &str, port: u16, expected: &str) {
    common::container::answers(what, expected, || ask(netns, addr, port, None));
}

fn refused(what: &str, netns: &str, addr: &str, port: u16) {
    assert_eq!(ask(netns, addr, port, None), "", "{what} must not answer");
}

fn nft(script: &str) {
    sh_in(&this_thread_netns(), &format!("nft {script}"));
}

#[test]
fn the_outside_reaches_a_port_published_on_every_ipv6_address_and_is_seen_as_itself() {
    common::in_fresh_netns("ipv6_the_outside_reaches_a_published_port", || {
        let lab = Lab::new("outside");
        let web = lab.container("web", 2, &[tcp6(HostIp::AnyV6, 8080, 8000)]);
        let server = serve(&web.path(), "web", 8000);
        answers(
            "outside -> [host]:8080",
            &lab.outside(),
            HOST,
            8080,
            "from-web",
        );
        let seen = server.wait_for("received");
        assert!(
            seen.contains(&format!("Connection received on {OUTSIDE} ")),
            "{seen}"
        );
    });
}

#[test]
fn the_host_reaches_a_port_published_on_ipv6_on_its_own_address_and_the_gateway() {
    common::in_fresh_netns("ipv6_the_host_reaches_a_published_port", || {
        let lab = Lab::new("host");
        let web = lab.container("web", 2, &[tcp6(HostIp::AnyV6, 8080, 8000)]);
        let _server = serve(&web.path(), "web", 8000);
        for addr in [HOST, &format!("{PREFIX}::1")] {
            answers(
                &format!("host -> [{addr}]:8080"),
                &lab.host,
                addr,
                8080,
                "from-web",
            );
        }
    });
}

#[test]
fn containers_reach_their_own_and_each_others_ipv6_ports_through_the_host_with_br_netfilter_on_and_off()
 {
    common::in_fresh_netns("ipv6_hairpin", || {
        let lab = Lab::new("hairpin");
        let web = lab.container("web", 2, &[tcp6(HostIp::AnyV6, 8080, 8000)]);
        let client = lab.container("client", 3, &[]);
        let _server = serve(&web.path(), "web", 8000);
        for setting in ["1", "0"] {
            sh_in(
                &lab.host,
                &format!("echo {setting} > /proc/sys/net/bridge/bridge-nf-call-ip6tables"),
            );
            for addr in [HOST, &format!("{PREFIX}::1")] {
                for (who, from) in [("client", &client), ("web", &web)] {
                    answers(
                        &format!("{who} -> [{addr}]:8080 (br_netfilter {setting})"),
                        &from.path(),
                        addr,
                        8080,
                        "from-web",
                    );
                }
            }
            answers(
                "client -> web:8000 directly",
                &client.path(),
                &web.address6(),
                8000,
                "from-web",
            );
        }
    });
}

#[test]
fn an_unpublished_container_port_is_dropped_from_outside_and_open_without_the_rule() {
    common::in_fresh_netns("ipv6_unpublished_dropped", || {
        let lab = Lab::new("unpublished");
        let web = lab.container("web", 2, &[tcp6(HostIp::AnyV6, 8080, 8000)]);
        let _server = serve(&web.path(), "web", 9000);
        sh_in(
            &lab.outside(),
            &format!("ip -6 route add {PREFIX}::/64 via {HOST}"),
        );
        refused(
            "outside -> web:9000 directly",
            &lab.outside(),
            &web.address6(),
            9000,
        );
        // The attack, with the protection off: sv0 no longer a bridge of
        // the ip6 table, the forward chain's drop does not apply to it.
        nft("delete element ip6 supervisor bridges '{ \"sv0\" }'");
        answers(
            "outside -> web:9000 without the drop",
            &lab.outside(),
            &web.address6(),
            9000,
            "from-web",
        );
    });
}

#[test]
fn a_port_published_on_one_ipv6_address_is_not_reachable_on_the_others() {
    common::in_fresh_netns("ipv6_address_bound", || {
        let lab = Lab::new("bound");
        let host: Ipv6Addr = HOST.parse().unwrap();
        let web = lab.container("web", 2, &[tcp6(HostIp::V6(host), 8081, 8000)]);
        let _server = serve(&web.path(), "web", 8000);
        answers(
            "outside -> [host]:8081",
            &lab.outside(),
            HOST,
            8081,
            "from-web",
        );
        refused(
            "host -> [gateway]:8081",
            &lab.host,
            &format!("{PREFIX}::1"),
            8081,
        );
        refused(
            "web -> [gateway]:8081",
            &web.path(),
            &format!("{PREFIX}::1"),
            8081,
        );
    });
}

#[test]
fn outbound_ipv6_leaves_with_the_hosts_address() {
    common::in_fresh_netns("ipv6_nat66", || {
        let lab = Lab::new("nat66");
        let client = lab.container("client", 2, &[]);
        let listener = serve(&lab.outside(), "outside", 9000);
        answers(
            "client -> outside:9000",
            &client.path(),
            OUTSIDE,
            9000,
            "from-outside",
        );
        let seen = listener.wait_for("received");
        assert!(
            seen.contains(&format!("Connection received on {HOST} ")),
            "{seen}"
        );
    });
}

#[test]
fn udp_is_published_on_ipv6() {
    common::in_fresh_netns("ipv6_udp", || {
        let lab = Lab::new("udp");
        let port = Port {
            protocol: Protocol::Udp,
            ..tcp6(HostIp::AnyV6, 5353, 53)
        };
        let dns = lab.container("dns", 2, &[port]);
        let mut server = Background::start(&dns.path(), "nc -6 -v -u -n -l -p 53 -W 1 2>&1");
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the datagram never arrived");
            run_in(
                &lab.outside(),
                &format!("echo hello | timeout 2 nc -6 -u -n -w1 {HOST} 5353"),
            );
        }
        let seen = server.output();
        assert!(seen.contains("hello"), "{seen}");
        assert!(
            seen.contains(&format!("Connection received on {OUTSIDE} ")),
            "{seen}"
        );
    });
}

#[test]
fn a_port_published_on_every_ipv6_address_twice_is_refused_naming_its_holder() {
    common::in_fresh_netns("ipv6_taken", || {
        let lab = Lab::new("taken");
        lab.container("web", 2, &[tcp6(HostIp::AnyV6, 8080, 8000)]);
        // The same port on IPv4 is another element: no clash.
        let mut v4 = lab.container("api", 3, &[]).publication;
        v4.ports = vec![tcp6(HostIp::AnyV4, 8080, 80)];
        // Its guards and generation are in already: its ports alone.
        v4.veth = String::new();
        v4.generation = None;
        lab.fw.publish(&v4).unwrap();
        let mut other = v4.clone();
        other.ports = vec![tcp6(HostIp::AnyV6, 8080, 80)];
        match lab.fw.publish(&other) {
            Err(supervisor::firewall::Error::PortTaken(PortTaken { port, holder, .. })) => {
                assert_eq!(port.to_string(), "[::]:8080->80/tcp");
                assert_eq!(holder, "container web (web-id)");
            }
            other => panic!("expected the port taken: {other:?}"),
        }
        let owned = lab.fw.owned_elements().unwrap();
        let web: Vec<String> = owned
            .iter()
            .filter(|o| o.owner.as_ref().is_some_and(|o| o.name == "web"))
            .map(|o| o.to_string())
            .collect();
        assert!(
            web.contains(&"tcp_ports 8080".to_string())
                && web.contains(&format!(
                    "spoof_guard6 \"sv-web\" . {PREFIX}::2 . 02:42:ac:10:00:02"
                ))
                && web.contains(
                    &"spoof_guard6 \"sv-web\" . fe80::42:acff:fe10:2 . 02:42:ac:10:00:02"
                        .to_string()
                ),
            "{web:?}"
        );
    });
}

#[test]
fn a_container_sending_from_an_ipv6_address_not_its_own_is_dropped() {
    common::in_fresh_netns("ipv6_spoofing", || {
        let lab = Lab::new("spoof");
        let web = lab.container("web", 2, &[]);
        let _listener = serve(&lab.outside(), "outside", 9000);
        let forged = format!("{PREFIX}::99");
        sh_in(
            &web.path(),
            &format!(
                "ip -6 addr add {forged}/64 dev eth0 nodad && ip -6 addr add fe80::99/64 dev eth0 nodad"
            ),
        );
        answers_from(&web.path(), OUTSIDE, 9000, &web.address6(), "from-outside");
        let gateway_ll = "fe80::1%eth0";
        let host_ll = Background::start(
            &lab.host,
            "while :; do echo from-host | nc -6 -n -l -p 7000 -N; done",
        );
        let from_ll = |source: &str| ask(&web.path(), gateway_ll, 7000, Some(source));
        // Its own link-local address works.
        answers_from(
            &web.path(),
            gateway_ll,
            7000,
            "fe80::42:acff:fe10:2%eth0",
            "from-host",
        );
        assert_eq!(
            ask(&web.path(), OUTSIDE, 9000, Some(&forged)),
            "",
            "another address"
        );
        assert_eq!(from_ll("fe80::99%eth0"), "", "another link-local address");
        // The attack, with the guard off.
        // (both ways: replies to a forged address are not let out to it
        // either, see the postrouting chain)
        nft("flush chain bridge supervisor prerouting");
        nft("flush chain bridge supervisor postrouting");
        answers_from(&web.path(), OUTSIDE, 9000, &forged, "from-outside");
        answers_from(&web.path(), gateway_ll, 7000, "fe80::99%eth0", "from-host");
        drop(host_ll);
    });
}

fn answers_from(netns: &str, addr: &str, port: u16, source: &str, expected: &str) {
    let what = format!("{source} -> [{addr}]:{port}");
    common::container::answers(&what, expected, || ask(netns, addr, port, Some(source)));
}

/// What `nft list ruleset` shows after `setup` in a fresh namespace.
fn listing_after(test: &str, setup: impl FnOnce() + Send + 'static) -> String {
    common::in_fresh_netns(test, move || {
        setup();
        sh_in(&this_thread_netns(), "nft list ruleset")
    })
    .unwrap_or_default()
}

#[test]
fn ipv6_elements_added_through_the_firewall_are_what_nft_adds() {
    let ours = listing_after("ipv6_elements_ours", || {
        let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ipv6-{}-elements", std::process::id()));
        let fw = Firewall::open(&state).unwrap();
        let subnet6 = (format!("{PREFIX}::").parse().unwrap(), 64);
        fw.ensure_network("sv0", &"172.16.0.0/24".parse().unwrap(), Some(subnet6))
            .unwrap();
        fw.publish(&Publication {
            owner: Owner {
                name: "web".into(),
                id: "web-id".into(),
            },
            address: Ipv4Addr::new(172, 16, 0, 2),
            address6: Some(format!("{PREFIX}::2").parse().unwrap()),
            veth: "sv-web".into(),
            ports: vec![
                tcp6(HostIp::AnyV4, 8080, 8000),
                tcp6(HostIp::AnyV6, 8080, 8000),
                Port {
                    protocol: Protocol::Udp,
                    ..tcp6(HostIp::V6(HOST.parse().unwrap()), 5353, 53)
                },
            ],
            generation: Generation::new(0x8f3a_0c11),
            routed: false,
        })
        .unwrap();
    });
    let theirs = listing_after("ipv6_elements_theirs", || {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/nft/supervisor.nft");
        let defines: Vec<String> = supervisor::firewall::defines()
            .into_iter()
            .map(|d| format!("-D {}={}", d.name, d.value))
            .collect();
        let c = r#"comment "web web-id""#;
        let mac = "02:42:ac:10:00:02";
        sh_in(
            &this_thread_netns(),
            &format!(
                r#"nft {defines} -f {file} && nft -f - <<'EOF'
add element ip supervisor bridges {{ "sv0" }}
add element ip supervisor same_bridge {{ "sv0" . "sv0" }}
add element ip supervisor subnets {{ 172.16.0.0/24 comment "sv0" }}
add element ip6 supervisor bridges {{ "sv0" }}
add element ip6 supervisor same_bridge {{ "sv0" . "sv0" }}
add element ip6 supervisor subnets6 {{ {PREFIX}::/64 comment "sv0" }}
add element bridge supervisor spoof_guard {{ "sv-web" . 172.16.0.2 . {mac} {c} }}
add element bridge supervisor mac_guard {{ "sv-web" . {mac} {c} }}
add element bridge supervisor spoof_guard6 {{ "sv-web" . {PREFIX}::2 . {mac} {c}, "sv-web" . fe80::42:acff:fe10:2 . {mac} {c} }}
add element ip supervisor tcp_ports {{ 8080 {c} : 172.16.0.2 . 8000 }}
add element ip6 supervisor tcp_ports {{ 8080 {c} : {PREFIX}::2 . 8000 }}
add element ip6 supervisor udp_addr_ports {{ {HOST} . 5353 {c} : {PREFIX}::2 . 53 }}
add element ip supervisor generations {{ 172.16.0.2 {c} : 0x8f3a0c11 }}
add element ip supervisor live {{ 172.16.0.2 . 0x8f3a0c11 {c} }}
add element ip6 supervisor generations {{ {PREFIX}::2 {c} : 0x8f3a0c11 }}
add element ip6 supervisor live {{ {PREFIX}::2 . 0x8f3a0c11 {c} }}
EOF"#,
                defines = defines.join(" ")
            ),
        );
    });
    assert!(ours.contains("spoof_guard6"), "{ours}");
    assert_eq!(ours, theirs, "the firewall's elements differ from nft's");
}

/// Sends, from `netns`, an unsolicited neighbour advertisement to the host
/// (override flag set) claiming `target` is at `mac`: the IPv6 form of a
/// forged ARP reply, from the sender's own address.
fn forge_advertisement(netns: &str, target: &str, mac: &str) {
    let script = format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
mac = bytes.fromhex("{mac}".replace(":", ""))
na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, "{target}")
s.sendto(na + bytes([2, 1]) + mac, ("{PREFIX}::1", 0))
"#
    );
    sh_in(netns, &format!("python3 -c '{script}'"));
}

/// Packets `netns` received for the address its `seen` counter counts.
fn received(netns: &str) -> u64 {
    let listing = sh_in(netns, "nft list chain ip6 seen prerouting");
    listing
        .split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_forged_neighbour_advertisement_does_not_bring_another_containers_traffic_to_the_forger() {
    common::in_fresh_netns("ipv6_forged_advertisement", || {
        let lab = Lab::new("forged_na");
        let web = lab.container("web", 2, &[]);
        let evil = lab.container("evil", 3, &[]);
        let _server = serve(&web.path(), "web", 8000);
        answers("host -> web", &lab.host, &web.address6(), 8000, "from-web");
        sh_in(
            &evil.path(),
            &format!(
                "nft add table ip6 seen && nft add chain ip6 seen prerouting \
                 '{{ type filter hook prerouting priority -400; }}' \
                 && nft add rule ip6 seen prerouting ip6 daddr {} counter",
                web.address6()
            ),
        );
        let attack = || {
            forge_advertisement(&evil.path(), &web.address6(), "02:42:ac:10:00:03");
            let neighbour = sh_in(&lab.host, &format!("ip -6 neigh show {}", web.address6()));
            assert!(
                neighbour.contains("02:42:ac:10:00:03"),
                "the host's neighbour entry is poisoned: {neighbour}"
            );
            for _ in 0..3 {
                ask(&lab.host, &web.address6(), 8000, None);
            }
            received(&evil.path())
        };
        assert_eq!(attack(), 0, "the forger received web's traffic");
        // The attack, with the guard on the way out off.
        nft("flush chain bridge supervisor postrouting");
        assert!(
            attack() > 0,
            "without the guard the forger gets web's traffic"
        );
    });
}

fn pings(netns: &str, addr: &str) -> bool {
    run_in(netns, &format!("busybox ping -c1 -W2 {addr} >/dev/null"))
        .status
        .success()
}

#[test]
fn echo_passes_out_and_within_the_network_and_from_outside_is_a_new_connection_dropped() {
    common::in_fresh_netns("ipv6_echo", || {
        let lab = Lab::new("echo");
        let web = lab.container("web", 2, &[]);
        let other = lab.container("other", 3, &[]);
        assert!(pings(&web.path(), OUTSIDE), "web -> outside");
        assert!(
            pings(&web.path(), &format!("{PREFIX}::1")),
            "web -> gateway"
        );
        assert!(pings(&web.path(), &other.address6()), "web -> other");
        sh_in(
            &lab.outside(),
            &format!("ip -6 route add {PREFIX}::/64 via {HOST}"),
        );
        assert!(!pings(&lab.outside(), &web.address6()), "outside -> web");
    });
}

/// Polls, for at most 10 s, until `netns`'s route to `dest` has a learnt
/// path MTU; the route as `ip -6 route get` prints it.
fn until_path_mtu(netns: &str, dest: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let route = sh_in(netns, &format!("ip -6 route get {dest}"));
        if route.contains("mtu ") || Instant::now() > deadline {
            return route;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends from `netns` to `dest` an ICMPv6 packet-too-big (MTU 1280)
/// quoting an echo request from `dest` to `quoted`: a router on the way to
/// `quoted` telling `dest` to send smaller packets. No echo was ever sent,
/// so no conntrack entry relates it.
fn send_packet_too_big(netns: &str, dest: &str, quoted: &str) {
    let script = format!(
        r#"
import socket, struct
src = socket.inet_pton(socket.AF_INET6, "{dest}")
dst = socket.inet_pton(socket.AF_INET6, "{quoted}")
echo = struct.pack("!BBHHH", 128, 0, 0, 7, 1) + b"x" * 1400
inner = struct.pack("!IHBB", 0x60000000, len(echo), 58, 64) + src + dst + echo
ptb = struct.pack("!BBHI", 2, 0, 0, 1280) + inner[:1232]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
for _ in range(3): s.sendto(ptb, ("{dest}", 0))
"#
    );
    sh_in(netns, &format!("python3 -c '{script}'"));
}

#[test]
fn a_packet_too_big_without_a_conntrack_entry_reaches_the_container() {
    common::in_fresh_netns("ipv6_packet_too_big", || {
        let lab = Lab::new("ptb");
        let web = lab.container("web", 2, &[]);
        sh_in(
            &lab.outside(),
            &format!("ip -6 route add {PREFIX}::/64 via {HOST}"),
        );
        // Path MTU discovery has nothing else: were it dropped, the
        // container would keep sending 1500-byte packets into a black hole.
        let far = "2001:db8:99::9";
        assert!(
            !sh_in(&web.path(), &format!("ip -6 route get {far}")).contains("mtu "),
            "no path MTU before"
        );
        send_packet_too_big(&lab.outside(), &web.address6(), far);
        let route = until_path_mtu(&web.path(), far);
        assert!(route.contains("mtu 1280"), "{route}");
    });
}

#[test]
fn a_container_sends_through_nat66_over_a_path_narrower_than_its_link() {
    common::in_fresh_netns("ipv6_narrow_path", || {
        let lab = Lab::new("narrow");
        let web = lab.container("web", 2, &[]);
        // outside routes to a far namespace over a 1280-byte link; every
        // end has 1500, so TCP's MSS does not hide the narrow hop: only
        // outside's packet-too-big, sent to the host's address (NAT66) and
        // related back to the container, can.
        let far = new_netns();
        sh_in(
            &lab.outside(),
            &format!(
                "sysctl -qw net.ipv6.conf.all.forwarding=1 \
                 && ip link add eth1 mtu 1280 type veth peer name eth0 netns {far} \
                 && ip -6 addr add 2001:db8:1::1/64 dev eth1 nodad && ip link set eth1 up",
                far = fd_path(&far)
            ),
        );
        sh_in(
            &fd_path(&far),
            "ip link set lo up && ip -6 addr add 2001:db8:1::2/64 dev eth0 nodad \
             && ip link set eth0 up && ip -6 route add default via 2001:db8:1::1",
        );
        sh_in(
            &lab.host,
            &format!("ip -6 route add 2001:db8:1::/64 via {OUTSIDE}"),
        );
        let sink = Background::start(
            &fd_path(&far),
            "echo received=$(nc -6 -n -l -p 9000 | wc -c)",
        );
        sh_in(&fd_path(&far), &common::container::until_listening(9000));
        sh_in(
            &web.path(),
            "head -c 200000 /dev/zero | timeout 20 nc -6 -n -N 2001:db8:1::2 9000",
        );
        let received = sink.wait_for("received=");
        assert_eq!(received.trim(), "received=200000");
        let route = until_path_mtu(&web.path(), "2001:db8:1::2");
        assert!(route.contains("mtu 1280"), "{route}");
    });
}

/// Sends, from `netns`'s eth0 (container 2's MAC) as raw frames to the
/// gateway's MAC, a UDP datagram from `source` to each of `dests`, port
/// `port`: with `::1`, what a container would send to reach the host's
/// loopback services through the gateway.
fn send_raw_udp(netns: &str, gateway_mac: &str, source: &str, dests: &[&str], port: u16) {
    let dests = dests
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let script = format!(
        r#"
import socket, struct
src = socket.inet_pton(socket.AF_INET6, "{source}")
payload = b"hello-loopback"
udp_len = 8 + len(payload)
def csum(data):
    if len(data) % 2: data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff or 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for dest in [{dests}]:
    dst = socket.inet_pton(socket.AF_INET6, dest)
    pseudo = src + dst + struct.pack("!I3xB", udp_len, 17)
    udp = struct.pack("!HHHH", 40000, {port}, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", csum(pseudo + udp)) + udp[8:]
    ip6 = struct.pack("!IHBB", 0x60000000, udp_len, 17, 64) + src + dst
    eth = bytes.fromhex("{gateway_mac}".replace(":", "")) + bytes.fromhex("0242ac100002") + b"\x86\xdd"
    for _ in range(3): s.send(eth + ip6 + udp)
"#
    );
    sh_in(netns, &format!("python3 -c '{script}'"));
}

/// Prints the destination address of each UDP datagram to port 7001 (on
/// any address), one a line, until one to the gateway's own address.
const DESTINATIONS: &str = r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
s.bind(("::", 7001))
while True:
    data, anc, flags, src = s.recvmsg(64, socket.CMSG_SPACE(20))
    dest = socket.inet_ntop(socket.AF_INET6, anc[0][2][:16])
    print(dest, flush=True)
    if dest == "fd53:7570:6572::1": break
"#;

/// The sv0 bridge's MAC, the gateway's.
fn gateway_mac(lab: &Lab) -> String {
    let listing = sh_in(&lab.host, "ip -br link show sv0 | awk '{print $3}'");
    listing.trim().to_string()
}

/// Sends `dests` a datagram each from `sender` (container 2) through the
/// gateway, then a control datagram to the gateway's own address by the
/// same path; returns the destinations of what reached the host's
/// sockets, once the control datagram has: whatever the host was to do
/// with the datagrams before it, it has done (judged by that, not by how
/// long nothing came).
fn through_the_gateway(lab: &Lab, sender: &Box6, dests: &[&str]) -> Vec<String> {
    let gateway_mac = gateway_mac(lab);
    let control = format!("{PREFIX}::1");
    let listener = Background::start(&lab.host, &format!("python3 -c '{DESTINATIONS}'"));
    sh_in(&lab.host, &common::container::until_bound_udp(7001));
    send_raw_udp(
        &sender.path(),
        &gateway_mac,
        &sender.address6(),
        dests,
        7001,
    );
    send_raw_udp(
        &sender.path(),
        &gateway_mac,
        &sender.address6(),
        &[&control],
        7001,
    );
    let seen = listener.wait_for(&control);
    let seen: Vec<String> = seen.lines().map(str::to_string).collect();
    assert!(
        seen.contains(&control),
        "the control datagram did not arrive: {seen:?}"
    );
    seen
}

#[test]
fn a_container_cannot_reach_the_hosts_ipv6_loopback_through_the_gateway_even_without_the_guard() {
    common::in_fresh_netns("ipv6_loopback_guard", || {
        let lab = Lab::new("loopback");
        let web = lab.container("web", 2, &[]);
        let arrives = |dest: &str| {
            through_the_gateway(&lab, &web, &[dest])
                .iter()
                .any(|d| d == dest)
        };
        // The frame is sound: to the gateway's own address it arrives.
        assert!(arrives(&format!("{PREFIX}::1")), "the control datagram");
        // To ::1 it does not, with the guard and without it: the kernel
        // drops ::1 arriving on any interface but lo (ip6_rcv_core), so the
        // guard's rule is a statement, not the only protection (unlike
        // IPv4's, which route_localnet needs).
        assert!(!arrives("::1"), "[::1] reached from a container (guard on)");
        nft("flush chain ip6 supervisor guard");
        assert!(
            !arrives("::1"),
            "[::1] reached from a container (guard off)"
        );
    });
}

/// The host's neighbour entries on sv0 (any state), one a line.
fn host_neighbours(lab: &Lab) -> String {
    sh_in(&lab.host, "ip -6 neigh show dev sv0")
}

/// A container that has the host route datagrams to link-local addresses
/// (raw frames to the gateway's MAC: CAP_NET_RAW) had it route them back
/// out of the bridge, and make an entry of the kernel's neighbour table
/// for each, INCOMPLETE for seconds; the table is one for every namespace
/// of the machine. (Addresses of the container's own subnet it can have its
/// own namespace resolve, into the same table: that limit is the kernel's,
/// see the README's IPv6 section.) A few show it, far from the limit.
#[test]
fn a_container_cannot_make_the_host_resolve_link_local_addresses_out_of_its_bridge() {
    common::in_fresh_netns("ipv6_link_local_routed_back", || {
        let lab = Lab::new("neighbours");
        let evil = lab.container("evil", 2, &[]);
        let web = lab.container("web", 3, &[]);
        let _server = serve(&web.path(), "web", 8000);
        let resolved = |round: u32| -> usize {
            let dests: Vec<String> = (0..8u32)
                .map(|i| format!("fe80::{round:x}:dead:{i:x}"))
                .collect();
            let dests: Vec<&str> = dests.iter().map(String::as_str).collect();
            through_the_gateway(&lab, &evil, &dests);
            let neighbours = host_neighbours(&lab);
            let marker = format!(":{round:x}:dead:");
            neighbours.lines().filter(|l| l.contains(&marker)).count()
        };
        assert_eq!(
            resolved(1),
            0,
            "the host resolved: {}",
            host_neighbours(&lab)
        );
        answers(
            "evil -> web",
            &evil.path(),
            &web.address6(),
            8000,
            "from-web",
        );
        // The attack, with the rule off.
        nft_delete_rule("ip6 supervisor guard", "fe80::/10");
        assert!(resolved(2) > 0, "without the rule the host resolves them");
    });
}

/// Deletes the rule of `chain` (`FAMILY TABLE CHAIN`) containing `text`:
/// the protection switched off.
fn nft_delete_rule(chain: &str, text: &str) {
    common::forge::delete_rule(|script| sh_in(&this_thread_netns(), script), chain, text);
}

#[test]
fn a_changed_base_is_replaced_keeping_the_ipv6_elements() {
    common::in_fresh_netns("ipv6_base_replaced", || {
        let lab = Lab::new("replaced");
        lab.container("web", 2, &[tcp6(HostIp::AnyV6, 8080, 8000)]);
        let before = sh_in(&lab.host, "nft list ruleset");
        nft("flush set ip supervisor version");
        nft("add element ip supervisor version '{ 0x1 }'");
        assert_eq!(
            lab.fw.ensure_base().unwrap(),
            supervisor::firewall::Base::Replaced
        );
        let after = sh_in(&lab.host, "nft list ruleset");
        assert_eq!(after, before, "every IPv6 element is back");
        assert!(
            after.contains(&format!("8080 comment \"web web-id\" : {PREFIX}::2 . 8000")),
            "{after}"
        );
    });
}

#[test]
fn a_gone_networks_ipv6_elements_go_with_it() {
    common::in_fresh_netns("ipv6_gone_network", || {
        let lab = Lab::new("gone");
        let subnet6 = ("fd00:1::".parse().unwrap(), 64);
        lab.fw
            .ensure_network("sv1", &"10.1.0.0/24".parse().unwrap(), Some(subnet6))
            .unwrap();
        let gone = lab.fw.remove_gone_networks(|b| b != "sv1").unwrap();
        let gone: Vec<String> = gone.iter().map(|g| g.to_string()).collect();
        assert_eq!(gone, ["network sv1 (10.1.0.0/24, fd00:1::/64)"]);
        let table = sh_in(&lab.host, "nft list table ip6 supervisor");
        assert!(
            !table.contains("sv1") && !table.contains("fd00:1::"),
            "{table}"
        );
        assert!(
            table.contains(&format!("{PREFIX}::/64 comment \"sv0\"")),
            "{table}"
        );
    });
}
