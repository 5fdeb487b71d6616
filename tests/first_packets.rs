//! A new container's first packets, sent before its anti-spoofing elements
//! are in: those come with the publish batch, after the plumbing, and
//! until then the bridge drops whatever the container sends. What its
//! kernel sends then to its gateway must need no answer, or the answer it
//! waits for comes only with the kernel's retransmit, a second later, and
//! every packet for the gateway waits with it.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use common::HostNs;
use common::syn::Outcome;
use nix::sched::{CloneFlags, setns};

/// The bridge's MAC (derived from its address, 172.16.0.1).
const BRIDGE_MAC: &str = "02:42:ac:10:00:01";
const GATEWAY6: &str = "fd53:7570:6572::1";

/// A dual-stack container on sv0, port 8080 published, its supervisor
/// stopped once the container is plumbed, before the publish batch.
struct Linked {
    supervisor: Child,
    /// The container's PID 1, as the host sees it.
    pid: u32,
}

impl Linked {
    fn start(ns: &HostNs) -> Linked {
        let mut run = ns.supervisor();
        run.args(["run", "--bridge", "sv0", "--subnet", "172.16.0.0/24"])
            .args(["--ipv6", "--ip", "172.16.0.2", "-p", "8080:8000"])
            .args(["--", "sh", "-c"])
            .arg("busybox httpd -f -p 8000 -h / & echo ready; read _ || true");
        let (supervisor, pid) = common::spawn_stopped_at(run, "linked");
        Linked { supervisor, pid }
    }

    /// The container's neighbour entry for `address`, as `ip neigh` shows it.
    fn neighbour(&self, address: &str) -> String {
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid))
            .args(["--", "ip", "neigh", "show", address, "dev", "eth0"])
            .output()
            .expect("nsenter into the container");
        common::success_stdout("ip neigh show in the container", out)
    }

    /// Lets the supervisor publish and start the command; waits for it.
    fn publish(&mut self) {
        common::resume_to_ready(&mut self.supervisor);
    }
}

impl Drop for Linked {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.supervisor.id() as i32, libc::SIGCONT) };
        drop(self.supervisor.stdin.take());
        let _ = self.supervisor.wait();
    }
}

/// The first outcome other than a refusal of connecting from namespace
/// `netns` to `addr`: Answered, or Lost if the kernel sent the SYN again
/// (see [`common::syn`]). Attempts again at once after each refusal (the
/// server may not listen yet), for up to 30 s: a hang guard.
fn first_answer(netns: String, addr: SocketAddr) -> Outcome {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).expect("open the outside's netns");
        setns(ns, CloneFlags::CLONE_NEWNET).expect("setns into the outside");
        let guard = Instant::now() + Duration::from_secs(30);
        loop {
            match common::syn::attempt(addr) {
                Outcome::Refused if Instant::now() < guard => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                outcome => return outcome,
            }
        }
    })
    .join()
    .expect("the connecting thread")
}

/// Whether `entry` (`ip neigh` of the gateway) can carry a packet at once.
fn resolved(entry: &str) -> bool {
    entry.contains(BRIDGE_MAC) && !entry.contains("INCOMPLETE") && !entry.contains("FAILED")
}

/// The host's count of the ARP requests and neighbour solicitations that
/// come in by any container's port, before any guard sees them.
const ASKED: &str = "table bridge asked {
    counter solicitations {}
    chain prerouting {
        type filter hook prerouting priority -400; policy accept;
        iifname \"sv-*\" arp operation request counter name solicitations
        iifname \"sv-*\" icmpv6 type nd-neighbor-solicit counter name solicitations
    }
}";

/// A container plumbed on `ns`, which `trigger` (a script on the host)
/// has answer its `gateway` before its guard is in: its entry for the
/// gateway must stay resolved, and once published (as `published`, seen
/// from the namespace `outside`), its first connection answered, without
/// its ever having asked for a neighbour: a request met the guard, and
/// the connection waited for the kernel's retransmit, a second later.
fn answers_its_gateway_at_once(
    ns: &HostNs,
    outside: String,
    published: &str,
    trigger: &str,
    gateway: &str,
) {
    ns.ok(&format!("nft -f - <<'EOF'\n{ASKED}\nEOF"));
    let mut linked = Linked::start(ns);
    ns.ok(trigger);
    // Unresolved, the entry appears with the answer's solicitation.
    let entry = common::eventually("the container's answer", Duration::from_secs(5), || {
        let entry = linked.neighbour(gateway);
        (!entry.trim().is_empty()).then_some(entry)
    });
    assert!(
        resolved(&entry),
        "the container's entry for its gateway before its guard is in: {entry}"
    );
    linked.publish();
    // Its first SYN answered: no retransmit, a second later.
    let addr = published.parse().expect("an address");
    assert_eq!(
        first_answer(outside, addr),
        Outcome::Answered,
        "the first connection to {published}"
    );
    let asked = ns.ok("nft list counter bridge asked solicitations");
    assert_eq!(
        common::counted_packets(&asked),
        0,
        "the container asked for a neighbour (its entry for its gateway now: {})",
        linked.neighbour(gateway)
    );
}

/// Before its guard is in, unicast IPv6 for the container is dropped on
/// its way out of the bridge, but multicast is not, and an echo request to
/// all nodes from the gateway's address has the container answer the
/// gateway: without its entry for the gateway in the plumbing, it
/// solicited it, the bridge dropped that, the entry stayed INCOMPLETE
/// past the publish batch, and the first connection waited a second (3
/// runs of 3).
#[test]
fn a_new_dual_stack_container_answering_a_multicast_from_its_gateway_never_solicits_it() {
    let Some(ns) = HostNs::new(
        "a_new_dual_stack_container_answering_a_multicast_from_its_gateway_never_solicits_it",
    ) else {
        return;
    };
    let out = ns.outside6();
    // An ICMPv6 echo request (the kernel fills in the checksum) from the
    // gateway's address to ff02::1 on the bridge.
    let echo = format!(
        "python3 -c 'import socket\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n\
         s.bind((\"{GATEWAY6}\", 0))\n\
         s.sendto(bytes([128, 0, 0, 0, 0, 1, 0, 1]), (\"ff02::1\", 0, 0, socket.if_nametoindex(\"sv0\")))'"
    );
    answers_its_gateway_at_once(&ns, out.netns_path(), "[2001:db8::1]:8080", &echo, GATEWAY6);
}

/// The IPv4 twin: unicast IPv4 for the container reaches it before its
/// guard is in (there is no IPv4 check on the way out of the bridge), and
/// a datagram from the host to a closed port has it answer the gateway
/// (port unreachable). Without the entry for the gateway in the plumbing,
/// its ARP request met the guard and the entry stayed INCOMPLETE (3 runs
/// of 3).
#[test]
fn a_new_container_answering_the_host_before_its_guard_is_in_never_asks_for_its_gateway() {
    let Some(ns) = HostNs::new(
        "a_new_container_answering_the_host_before_its_guard_is_in_never_asks_for_its_gateway",
    ) else {
        return;
    };
    let out = ns.outside();
    let datagram = "python3 -c 'import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(b\"x\", (\"172.16.0.2\", 9))'";
    answers_its_gateway_at_once(
        &ns,
        out.netns_path(),
        "192.0.2.1:8080",
        datagram,
        "172.16.0.1",
    );
}

/// The host's own count of the frames that come in by any container's
/// port: MLD reports first (accepted there), then whatever else.
const SPY: &str = "table bridge spy {
    chain prerouting {
        type filter hook prerouting priority -400; policy accept;
        iifname \"sv-*\" icmpv6 type mld2-listener-report counter accept
        iifname \"sv-*\" ip6 saddr :: counter
        iifname \"sv-*\" icmpv6 type nd-router-solicit counter
        iifname \"sv-*\" icmpv6 type nd-neighbor-solicit counter
        iifname \"sv-*\" meta protocol arp counter
        iifname \"sv-*\" counter comment \"other\"
    }
}";

/// What a new container sends unasked before its guard is in, dropped:
/// its kernel's MLD reports for the groups its addresses join, and
/// nothing else. No duplicate address detection (nothing from ::), no
/// router solicitation, no ARP request or neighbour solicitation, no IPv4.
/// The reports do not matter: with no MLD querier on the bridge (the
/// kernel's default, `mcast_querier 0`), the bridge floods multicast to
/// every port whatever it has heard. A second is long enough for the
/// kernel's delayed ones (router solicitation and duplicate address
/// detection wait up to a second, `rtr_solicit_delay`).
#[test]
fn a_new_dual_stack_container_sends_nothing_but_mld_reports_before_its_guard_is_in() {
    let Some(ns) = HostNs::new(
        "a_new_dual_stack_container_sends_nothing_but_mld_reports_before_its_guard_is_in",
    ) else {
        return;
    };
    ns.ok(&format!("nft -f - <<'EOF'\n{SPY}\nEOF"));
    let mut linked = Linked::start(&ns);
    std::thread::sleep(Duration::from_millis(1200));
    let counted = ns.ok("nft list chain bridge spy prerouting");
    let other = counted
        .lines()
        .find(|line| line.contains("\"other\""))
        .expect("the catch-all rule");
    assert!(
        other.contains("packets 0 "),
        "the container sent more than MLD reports before its guard:\n{counted}"
    );
    assert!(
        !ns.ok("ip -d link show sv0").contains("mcast_querier 1"),
        "the bridge is an MLD querier: it forwards multicast only where it has heard reports"
    );
    linked.publish();
}
