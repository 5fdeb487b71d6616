//! Restarting a published service: from outside, a client that polls the
//! published port while its container is stopped and a new one started on
//! the same port and address must get an answer or a refusal for every
//! attempt. A refusal costs a client nothing (it retries at once); a SYN
//! that goes nowhere costs it a retransmit, a whole second.

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::HostNs;
use common::container::{Container, SV0};
use common::syn::Outcome;
use nix::sched::{CloneFlags, setns};

/// Between one attempt's end and the next's start. An attempt lasts until
/// its first SYN is answered, or until the client's kernel sends it again
/// (see [`common::syn`]): whether a SYN was lost is the kernel's verdict,
/// not a timeout's, so a slow answer on a loaded machine is no loss.
const ATTEMPT_EVERY: Duration = Duration::from_millis(1);

/// One connection attempt: when it started and ended, and what came of it.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    at: Instant,
    ended: Instant,
    outcome: Outcome,
}

/// A client connecting to `addr` from another namespace, one attempt at a
/// time, every ATTEMPT_EVERY (or as given), until dropped. One at a time
/// does not keep a listener's backlog from filling: each answered attempt
/// waits in its accept queue until the server takes it (see [`web`]).
struct Prober {
    attempts: Arc<Mutex<Vec<Attempt>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(netns: String, addr: SocketAddr) -> Prober {
        Prober::start_every(netns, addr, ATTEMPT_EVERY)
    }

    /// A prober that waits `every` between attempts.
    fn start_every(netns: String, addr: SocketAddr, every: Duration) -> Prober {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, done) = (Arc::clone(&attempts), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let ns = File::open(&netns).expect("open the outside's netns");
            setns(ns, CloneFlags::CLONE_NEWNET).expect("setns into the outside");
            while !done.load(Ordering::Relaxed) {
                let at = Instant::now();
                let outcome = common::syn::attempt(addr);
                let ended = Instant::now();
                log.lock()
                    .expect("attempts")
                    .push(Attempt { at, ended, outcome });
                std::thread::sleep(every);
            }
        });
        Prober {
            attempts,
            stop,
            thread: Some(thread),
        }
    }

    /// The attempts that started at or after `since`.
    fn since(&self, since: Instant) -> Vec<Attempt> {
        let attempts = self.attempts.lock().expect("attempts");
        attempts.iter().filter(|a| a.at >= since).copied().collect()
    }

    /// The attempts that started at or after `since` and before `until`,
    /// once all of them have ended: once one that started at or after
    /// `until` has (attempts go one at a time). A lost SYN's attempt ends
    /// at its retransmission, a second after it started.
    fn between(&self, since: Instant, until: Instant) -> Vec<Attempt> {
        common::eventually(
            "an attempt after the round",
            Duration::from_secs(30),
            || {
                let attempts = self.since(since);
                attempts
                    .iter()
                    .any(|a| a.at >= until)
                    .then(|| attempts.into_iter().filter(|a| a.at < until).collect())
            },
        )
    }

    /// Waits for an answer to an attempt that started at or after `since`;
    /// returns when that attempt started.
    fn answered_since(&self, since: Instant) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let first = self.since(since);
            if let Some(a) = first.iter().find(|a| a.outcome == Outcome::Answered) {
                return a.at;
            }
            assert!(Instant::now() < deadline, "no answer within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Prober {
    /// Stops probing once the attempt under way has ended; every attempt.
    fn finish(mut self) -> Vec<Attempt> {
        self.halt();
        std::mem::take(&mut *self.attempts.lock().expect("attempts"))
    }

    /// Re-raises the prober's panic: a prober that died has no attempts,
    /// so none lost, and a test that counts losses would pass on it. Not
    /// while a panic unwinds already (a second one aborts the test binary).
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A server on port 8000 that accepts and closes every connection, whose
/// listener stays open for as long as the container runs. Its backlog is
/// deep, so that no SYN of ours is ever dropped by its own accept queue:
/// busybox httpd listens with a backlog of 9, and once its container's
/// command has ended the kernel's SIGKILL leaves it accepting nothing until
/// it has exited, which on a loaded 2-core machine took 10 ms and more; the
/// 11th SYN of the prober meanwhile was dropped by the full queue
/// (TcpExtListenOverflows 1 in the old namespace), silently, in about one
/// run of this file in ten: a loss of the service, not of the path to it.
/// Perl (perl-base, on every Debian) starts it in a few milliseconds.
/// With `ipv6`, dual stack, its IPv6 address derived from `ip`; `before`
/// goes in its script ahead of the server.
fn web(ns: &HostNs, ip: &str, ipv6: bool, before: &str) -> Container {
    let mut args = vec!["--name", "web", "--ip", ip, "-p", "8080:8000"];
    if ipv6 {
        args.push("--ipv6");
    }
    let (family, address) = match ipv6 {
        true => ("AF_INET6", "pack_sockaddr_in6(8000, IN6ADDR_ANY)"),
        false => ("AF_INET", "pack_sockaddr_in(8000, INADDR_ANY)"),
    };
    let script = format!(
        "{before}perl -MSocket=:all -e 'socket(my $s, {family}, SOCK_STREAM, 0) or die \"socket: $!\"; \
         setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1); bind($s, {address}) or die \"bind: $!\"; \
         listen($s, 4096) or die \"listen: $!\"; while (1) {{ accept(my $c, $s) and close($c) }}'"
    );
    Container::on(ns, &SV0, &args, &script)
}

fn count(attempts: &[Attempt], outcome: Outcome) -> usize {
    attempts.iter().filter(|a| a.outcome == outcome).count()
}

/// What `rounds` restarts of one service on the same port and address
/// looked like from outside.
struct Restarts {
    report: String,
    /// Restarts during which at least one SYN went nowhere.
    losing: usize,
    /// Whether any restart lost two SYNs in a row: the second was sent
    /// after the first's retransmission, so the service went nowhere for
    /// over a second.
    dark: bool,
    /// Restarts that lost a SYN sent after the new run began.
    losing_once_started: usize,
}

impl Restarts {
    /// The service never went nowhere for over a second, and at most 3
    /// of the 20 restarts lost a SYN.
    fn assert_never_dark_and_seldom_losing(&self) {
        assert!(
            !self.dark,
            "SYNs went nowhere one after another:\n{}",
            self.report
        );
        assert!(
            self.losing <= 3,
            "{} of 20 restarts lost a SYN:\n{}",
            self.losing,
            self.report
        );
    }
}

/// What happens between the old container's end and the new run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Between {
    /// Nothing: the new run starts as soon as the old one has returned.
    Nothing,
    /// The old container's port goes, and the bridge, left without a port,
    /// loses its carrier; meanwhile, and while the new run starts, other
    /// network namespaces die one after another (see [`Dying`]).
    BridgeEmptied,
    /// Nothing, but each container leaves its network namespace behind:
    /// a connection of its to the host, with unsent data, outlives it; and
    /// the host keeps sending to the address (see [`HOST_SENDS`]).
    Lingering,
}

/// Network namespaces made and left to die one after another, each with
/// two veth pairs, as a busy host's finished containers do: the kernel
/// tears each down in a work item that holds RTNL for a while.
struct Dying(std::process::Child);

impl Dying {
    fn start() -> Dying {
        // Paced, so the kernel's teardowns keep up (they go one at a time).
        let script = "while :; do unshare --net sh -c 'ip link add name dying0 type veth \
            peer name dying1 && ip link add name dying2 type veth peer name dying3'; \
            sleep 0.03; done";
        let child = std::process::Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the dying namespaces' loop");
        Dying(child)
    }
}

impl Drop for Dying {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A listener on the host that takes every connection and reads nothing.
const SINK: &str = "exec python3 -c 'import socket\ns = socket.socket()\n\
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind((\"0.0.0.0\", 9000))\n\
    s.listen(64)\nheld = []\nwhile True: held.append(s.accept())'";

/// A container's writer into [`SINK`], whose unsent data keeps its socket,
/// and so its network namespace, alive after it is killed.
const LINGER: &str = "busybox nc 172.16.0.1 9000 </dev/zero & ";

/// The host sending a datagram to the service's address every 2 ms, so
/// that a packet for it waits on the host's neighbour entry whenever the
/// address has no container (see `netlink::plumb`'s `inside`). The
/// probes' connections that busybox httpd's full accept queue left in each
/// old container (see [`web`]) seem to have done the same by chance: with
/// a server that leaves none, 1 run of 6 went dark without the gateway's
/// entry (with busybox httpd, 19 of 22); with these datagrams, 5 of 5.
const HOST_SENDS: &str = "exec python3 -c 'import socket, time\n\
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nwhile True:\n\
    \x20   try: s.sendto(b\"x\", (\"172.16.0.2\", 9))\n\
    \x20   except OSError: pass\n\
    \x20   time.sleep(0.002)'";

/// `rounds` restarts probed at the host's IPv4 address, or with `ipv6` at
/// its IPv6 one (the container dual stack).
fn restarts(test: &str, rounds: usize, ipv6: bool) -> Option<Restarts> {
    restarts_with(test, rounds, ipv6, Between::Nothing)
}

/// [`restarts`], with `between` happening between each container's end
/// and the next run.
fn restarts_with(test: &str, rounds: usize, ipv6: bool, between: Between) -> Option<Restarts> {
    let ns = HostNs::new(test)?;
    let (out, target) = match ipv6 {
        false => (ns.outside(), "192.0.2.1:8080"),
        true => (ns.outside6(), "[2001:db8::1]:8080"),
    };
    let ip = SV0.ip(2);
    let prober = Prober::start(out.netns_path(), target.parse().expect("an address"));
    let mut restarts = Restarts {
        report: String::new(),
        losing: 0,
        dark: false,
        losing_once_started: 0,
    };
    let before = match between {
        Between::Lingering => LINGER,
        _ => "",
    };
    let _sink = (between == Between::Lingering).then(|| {
        let sink = common::container::Background::start(ns.command("timeout"), SINK);
        common::eventually("the sink listening", Duration::from_secs(10), || {
            ns.ok("ss -Hltn sport = :9000")
                .contains("9000")
                .then_some(())
        });
        let sends = common::container::Background::start(ns.command("timeout"), HOST_SENDS);
        (sink, sends)
    });
    let mut old = web(&ns, &ip, ipv6, before);
    prober.answered_since(Instant::now());
    // Each restart is a race with the kernel's teardown of the last
    // container.
    for round in 0..rounds {
        let stopping = Instant::now();
        old.stop();
        // Other namespaces die from the stop until the new run answers,
        // for this round alone, so each round's wait for the old veth
        // queues behind a round's worth of teardowns, not every one made
        // since the test began. Without the bridge's lookup 3 of 5 runs
        // lost a SYN so (kept up across rounds, 1 of 3).
        let _dying = if between == Between::BridgeEmptied {
            let dying = Dying::start();
            common::wait_for_no_veth(&ns);
            common::eventually(
                "the bridge without its carrier",
                Duration::from_secs(10),
                || {
                    ns.ok("ip link show sv0")
                        .contains("NO-CARRIER")
                        .then_some(())
                },
            );
            Some(dying)
        } else {
            None
        };
        let started = Instant::now();
        old = web(&ns, &ip, ipv6, before);
        let answered = prober.answered_since(started);
        // A little after the first answer, to see it stay.
        std::thread::sleep(Duration::from_millis(30));
        let attempts = prober.between(stopping, Instant::now());
        let ms = |t: Instant| t.saturating_duration_since(stopping).as_secs_f64() * 1000.0;
        let lost_at: Vec<String> = attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Lost)
            .map(|a| format!("{:.1}", ms(a.at)))
            .collect();
        restarts.report.push_str(&format!(
            "round {round}: {} attempts: {} answered, {} refused, {} lost (at ms {}); the stop \
             took {:.1} ms; the first answer came to an attempt {:.1} ms after the new run began\n",
            attempts.len(),
            count(&attempts, Outcome::Answered),
            count(&attempts, Outcome::Refused),
            lost_at.len(),
            lost_at.join(", "),
            ms(started),
            answered.duration_since(started).as_secs_f64() * 1000.0,
        ));
        restarts.losing += usize::from(!lost_at.is_empty());
        restarts.losing_once_started += usize::from(
            attempts
                .iter()
                .any(|a| a.outcome == Outcome::Lost && a.at >= started),
        );
        restarts.dark |= attempts
            .windows(2)
            .any(|w| w.iter().all(|a| a.outcome == Outcome::Lost));
    }
    old.stop();
    drop(prober);
    eprintln!("{}", restarts.report);
    Some(restarts)
}

/// What the probers count as a lost SYN is what the client's kernel did:
/// sent it again. A SYN dropped once (here by a rule dropping every other
/// SYN to its port) is lost, however soon its retransmission is answered;
/// an answer or a reset to the first SYN is not.
#[test]
fn a_syn_the_clients_kernel_sends_again_counts_as_lost() {
    common::in_fresh_netns(
        "a_syn_the_clients_kernel_sends_again_counts_as_lost",
        || {
            let listener = || std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
            let at = |l: &std::net::TcpListener| l.local_addr().expect("its address");
            let (answering, dropping) = (listener(), listener());
            let refusing = at(&listener());
            let ruleset = format!(
                "table ip losing {{ chain input {{ type filter hook input priority 0; \
                 tcp dport {} tcp flags syn numgen inc mod 2 == 0 drop; }}; }}",
                at(&dropping).port()
            );
            let nft = common::run(std::process::Command::new("nft").arg(&ruleset));
            assert!(nft.status.success(), "{ruleset}: {}", common::stderr(&nft));
            assert_eq!(common::syn::attempt(at(&answering)), Outcome::Answered);
            assert_eq!(common::syn::attempt(refusing), Outcome::Refused);
            assert_eq!(common::syn::attempt(at(&dropping)), Outcome::Lost);
        },
    );
}

/// What holds today. Without the new container's bridge forwarding entry
/// 4 to 14 of 20 restarts lost a SYN (sent to the old container's dying
/// port); without its neighbour entry some went dark for a second.
#[test]
fn a_restarted_service_is_never_dark_and_seldom_loses_a_syn() {
    let Some(r) = restarts(
        "a_restarted_service_is_never_dark_and_seldom_loses_a_syn",
        20,
        false,
    ) else {
        return;
    };
    r.assert_never_dark_and_seldom_losing();
}

/// The same over IPv6, for a dual-stack service whose IPv6 address is
/// derived from its IPv4 one (the same address, and MAC, each time).
#[test]
fn a_restarted_dual_stack_service_is_never_dark_over_ipv6_and_seldom_loses_a_syn() {
    let Some(r) = restarts(
        "a_restarted_dual_stack_service_is_never_dark_over_ipv6",
        20,
        true,
    ) else {
        return;
    };
    r.assert_never_dark_and_seldom_losing();
}

/// What issue 17 asks. About one restart in thirty lost one SYN, two ways
/// (seen with the `skb:kfree_skb` tracepoint): DNATed to the new container
/// as it started and dropped on the bridge, which had lost its carrier
/// with the old container's port (see
/// `a_service_restarted_on_a_bridge_left_without_ports_loses_no_syn`); or
/// DNATed to the old container as it was unpublished, its reset dropped by
/// the guards that went in the same batch (see
/// `a_stopping_container_refuses_every_syn_even_those_racing_its_unpublishing`).
/// 12 runs of this test, 240 restarts: none lost.
#[test]
fn a_restarted_service_loses_no_syn_from_outside_clients() {
    let Some(r) = restarts(
        "a_restarted_service_loses_no_syn_from_outside_clients",
        20,
        false,
    ) else {
        return;
    };
    assert_eq!(r.losing, 0, "SYNs went nowhere:\n{}", r.report);
}

/// A bridge whose last port has gone loses its carrier, and the kernel's
/// link watcher takes its queueing discipline away. The next container's
/// port gives the carrier back, but the discipline came back only when the
/// watcher's work item ran, which waits for RTNL, busy with dying
/// namespaces: SYNs DNATed to the new container meanwhile were dropped on
/// the bridge (kfree_skb reason QDISC_DROP in __dev_queue_xmit). Without
/// the bridge's lookup in the plumbing, 2 or 3 of 20 restarts here lost
/// one (3 runs of 3); with it, none.
///
/// About one run in six, one round's old container namespace outlived its
/// container by more than 10 s, held by an orphaned TCP socket (the killed
/// service's end of a probe connection, unsent data still retransmitted),
/// with its veth up on the bridge, so the bridge never emptied. Since the
/// pair is deleted once `run` has ended (see
/// `network::the_veth_goes_with_the_container_even_when_a_socket_outlives_it`),
/// whatever holds the namespace, the wait for it always ends.
#[test]
fn a_service_restarted_on_a_bridge_left_without_ports_loses_no_syn() {
    let Some(r) = restarts_with(
        "a_service_restarted_on_a_bridge_left_without_ports_loses_no_syn",
        30,
        false,
        Between::BridgeEmptied,
    ) else {
        return;
    };
    assert_eq!(
        r.losing_once_started, 0,
        "SYNs sent after the new run began went nowhere:\n{}",
        r.report
    );
}

/// A restarted service whose old container had a connection to the host
/// that outlives it (its namespace lingers, held by the socket): the host
/// still sends to the address as the new container is plumbed. A packet
/// of it queued on the host's neighbour entry went to the new container
/// before its anti-spoofing elements, its reset's ARP request for the
/// gateway was dropped by the bridge's guard, and its SYN-ACKs waited a
/// second for the next (see `netlink::plumb`'s `inside`): 2 to 12 of 20
/// restarts went dark so (5 runs of 5 with the pair deleted right after
/// the old run's exit; 14 and 20 in 2 runs with it deleted at the
/// holder's tick); none with the gateway's neighbour entry set in the
/// plumbing (10 runs of 10).
#[test]
fn a_service_restarted_while_its_old_namespace_lingers_loses_no_syn() {
    let Some(r) = restarts_with(
        "a_service_restarted_while_its_old_namespace_lingers_loses_no_syn",
        20,
        false,
        Between::Lingering,
    ) else {
        return;
    };
    assert_eq!(r.losing, 0, "SYNs went nowhere:\n{}", r.report);
}

#[test]
fn a_syn_to_an_ended_container_whose_elements_are_not_yet_removed_is_refused() {
    let Some(ns) =
        HostNs::new("a_syn_to_an_ended_container_whose_elements_are_not_yet_removed_is_refused")
    else {
        return;
    };
    let out = ns.outside();
    let ip = SV0.ip(2);
    // Stops itself once its container has ended, before its teardown: the
    // element still sends the port to the container's address.
    let mut supervisor = ns
        .supervisor()
        .env("SUPERVISOR_TEST_PAUSE_AT", "exited")
        .args(["run", "--ip", &ip, "-p", "8080:8000", "--", "sh", "-c"])
        .arg("busybox httpd -f -p 8000 -h / & echo ready; read _ || true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let _out = common::wait_ready(&mut supervisor);
    let addr: SocketAddr = "192.0.2.1:8080".parse().expect("an address");
    let prober = Prober::start(out.netns_path(), addr);
    prober.answered_since(Instant::now());
    drop(prober);
    drop(supervisor.stdin.take());
    let pid = supervisor.id();
    common::eventually(
        "the supervisor stopping at exited",
        Duration::from_secs(10),
        || (common::process_state(pid) == Some('T')).then_some(()),
    );
    // Time for the kernel to tear down a namespace nobody holds.
    std::thread::sleep(Duration::from_millis(300));
    let prober = Prober::start(out.netns_path(), addr);
    std::thread::sleep(Duration::from_millis(200));
    let attempts = prober.finish();
    // SAFETY: kill on our own child's pid, not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let status = supervisor.wait().expect("wait supervisor");
    assert!(status.success(), "{status}");
    assert!(!attempts.is_empty());
    assert_eq!(
        count(&attempts, Outcome::Refused),
        attempts.len(),
        "{} attempts: {} answered, {} lost",
        attempts.len(),
        count(&attempts, Outcome::Answered),
        count(&attempts, Outcome::Lost)
    );
}

/// A container's end unpublishes it: one batch took its port elements and
/// its anti-spoofing elements out together, and a SYN DNATed to it just
/// before that batch had its reset (from the ended container's kernel)
/// dropped just after, by the bridge's anti-spoofing chain (kfree_skb
/// reason NETFILTER_DROP in nft_do_chain): lost. About one restart in
/// seventy lost one so. Here nothing listens in the container, so every
/// SYN that reaches it is reset, and three clients attempt without pause
/// (no listener's backlog to overflow): with one batch, 2 of 40 stops lost
/// a SYN in each of two runs; with two, none in three runs.
///
/// Two windows more. A SYN marked with the container's generation just
/// before the first batch's commit and checked against the live
/// generations just after was dropped by the generation chain (its drop
/// counter 1, see nft/supervisor.nft): about one stop in 400 on a loaded
/// machine, 2 of 12 runs here failed. And a reset stalled mid-way through
/// the bridge's hooks was freed when the pair it came in by was deleted
/// under it (see `nftables::AfterExit`): one stop in about 2,000. With
/// neither, 45 loaded runs of this test in a row and 4,000 stops in a
/// longer variant lost none.
#[test]
fn a_stopping_container_refuses_every_syn_even_those_racing_its_unpublishing() {
    let Some(ns) =
        HostNs::new("a_stopping_container_refuses_every_syn_even_those_racing_its_unpublishing")
    else {
        return;
    };
    let out = ns.outside();
    let (losing, rounds, report) = stops_probed_from(&ns, &out.netns_path());
    assert_eq!(
        losing, 0,
        "{losing} of {rounds} stops lost a SYN:\n{report}"
    );
}

/// As `a_stopping_container_refuses_every_syn_even_those_racing_its_unpublishing`,
/// from another container of the network through the host's address (a
/// hairpin): the stopping container's reset goes back into the bridge, so
/// through the generation chain, where it passes only while the stopping
/// container's generation is live. Its `@live` element went in the batch
/// that took its `@generations` element: a SYN marked just before that
/// batch's commit had its reset dropped just after. So 5 of 7 runs here
/// failed (1 to 5 stops of 40 lost a SYN, loaded or not); with `@live` in
/// a batch of its own after it, 18 runs of 18 (14 loaded) lost none.
#[test]
fn a_stopping_container_refuses_every_syn_from_another_container_through_the_host() {
    let Some(ns) = HostNs::new(
        "a_stopping_container_refuses_every_syn_from_another_container_through_the_host",
    ) else {
        return;
    };
    // The host's address, for the hairpin.
    let _out = ns.outside();
    let client = Container::on(&ns, &SV0, &["--name", "client", "--ip", &SV0.ip(3)], "true");
    let (losing, rounds, report) = stops_probed_from(&ns, &format!("/proc/{}/ns/net", client.pid));
    client.stop();
    assert_eq!(
        losing, 0,
        "{losing} of {rounds} stops lost a SYN:\n{report}"
    );
}

/// The race `a_stopping_container_refuses_every_syn_from_another_container_through_the_host`
/// still lost, about one stop in 3,000 on a loaded machine: a SYN marked
/// with the stopping container's generation just before its ports went had
/// its reset (deferred with the kernel's receive work, which runs in
/// ksoftirqd under load) reach the generation chain after the `unlive`
/// batch too, and dropped there (the chain's drop counted one packet: a
/// reset, in the connection's reply direction). Made certain here: the
/// reset comes from a socket the test holds in the server's namespace,
/// aborted while the server's supervisor stands between its `unlive`
/// batch and the rest of its teardown. Without a dead generation's resets
/// passing, the client heard nothing (these tests failed, both families).
#[test]
fn a_stopping_containers_reset_reaches_its_client_in_another_container_after_its_generation_went() {
    a_reset_after_unlive_reaches_the_client(
        "a_stopping_containers_reset_reaches_its_client_in_another_container_after_its_generation_went",
        false,
    );
}

#[test]
fn a_stopping_containers_reset_reaches_its_client_over_ipv6_after_its_generation_went() {
    a_reset_after_unlive_reaches_the_client(
        "a_stopping_containers_reset_reaches_its_client_over_ipv6_after_its_generation_went",
        true,
    );
}

/// The server's end of a connection, accepted on port 8000 of the
/// namespace it runs in, reset (SO_LINGER 0) at the first line on stdin.
const ABORTING_LISTENER: &str = "import socket, struct, sys\n\
    s = socket.socket(socket.AF_INET6 if sys.argv[1] == '6' else socket.AF_INET)\n\
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
    s.bind(('::' if sys.argv[1] == '6' else '0.0.0.0', 8000)); s.listen()\n\
    print('listening', flush=True)\n\
    c, _ = s.accept(); print('accepted', flush=True)\n\
    sys.stdin.readline()\n\
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)); c.close()\n\
    print('aborted', flush=True)\n\
    sys.stdin.readline()\n";

/// A client connected to `sys.argv[1]` port 8080 that, at the first line on
/// stdin, says what it hears from the server within 2 s: `reset`,
/// `closed`, `data` or `nothing`.
const LISTENING_CLIENT: &str = "import socket, sys\n\
    s = socket.create_connection((sys.argv[1], 8080), timeout=5)\n\
    print('connected', flush=True)\n\
    sys.stdin.readline()\n\
    s.settimeout(2)\n\
    try:\n\
    \x20   print('data' if s.recv(1) else 'closed', flush=True)\n\
    except ConnectionResetError:\n\
    \x20   print('reset', flush=True)\n\
    except socket.timeout:\n\
    \x20   print('nothing', flush=True)\n";

/// A python3 script in the network namespace at `netns` (outside the
/// container's pid namespace: it outlives the container), its stdin and
/// stdout piped.
fn python_in(
    netns: &str,
    script: &str,
    arg: &str,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args([
            "--",
            common::python3("a connection held across a stop"),
            "-c",
            script,
            arg,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3 in a namespace");
    let lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

/// A client in another container of the network connects through the
/// host's address (a hairpin) to the server's published port 8080, where
/// a socket the test holds in the server container's namespace accepts
/// (the connection marked with the server's generation). The server's
/// container ends, its supervisor stops once the generation is no longer
/// live (`unlived`), and the server's end of the connection is reset,
/// which the client must hear.
fn a_reset_after_unlive_reaches_the_client(test: &str, ipv6: bool) {
    use std::io::Write;
    let Some(ns) = HostNs::new(test) else {
        return;
    };
    let (_out, host) = match ipv6 {
        false => (ns.outside(), "192.0.2.1"),
        true => (ns.outside6(), "2001:db8::1"),
    };
    let family: &[&str] = if ipv6 { &["--ipv6"] } else { &[] };
    let client_ip = SV0.ip(3);
    let mut args = vec!["--name", "client", "--ip", &client_ip];
    args.extend(family);
    let client = Container::on(&ns, &SV0, &args, "true");
    let server_ip = SV0.ip(2);
    let mut supervisor = ns
        .supervisor()
        .env("SUPERVISOR_TEST_PAUSE_AT", "unlived")
        .args(["run", "--bridge", SV0.bridge, "--subnet", SV0.subnet])
        .args(["--name", "server", "--ip", &server_ip, "-p", "8080:8000"])
        .args(family)
        .args(["--", "sh", "-c", "echo ready; read _ || true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let _ready = common::wait_ready(&mut supervisor);
    let sup = supervisor.id();
    let server: u32 = std::fs::read_to_string(format!("/proc/{sup}/task/{sup}/children"))
        .expect("the supervisor's children")
        .trim()
        .parse()
        .expect("one container");
    let next = |lines: &mut std::io::Lines<_>, what: &str| -> String {
        lines
            .next()
            .unwrap_or_else(|| panic!("{what}: no line"))
            .expect(what)
    };
    let which = if ipv6 { "6" } else { "4" };
    let (mut listener, mut said) =
        python_in(&format!("/proc/{server}/ns/net"), ABORTING_LISTENER, which);
    assert_eq!(next(&mut said, "the listener"), "listening");
    let (mut connecting, mut heard) = python_in(
        &format!("/proc/{}/ns/net", client.pid),
        LISTENING_CLIENT,
        host,
    );
    assert_eq!(next(&mut heard, "the client"), "connected");
    assert_eq!(next(&mut said, "the listener"), "accepted");
    drop(supervisor.stdin.take());
    common::eventually(
        "the supervisor stopping at unlived",
        Duration::from_secs(10),
        || (common::process_state(sup) == Some('T')).then_some(()),
    );
    let tell = |child: &mut std::process::Child| {
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"\n")
            .and_then(|()| stdin.flush())
            .expect("tell it");
    };
    tell(&mut listener);
    assert_eq!(next(&mut said, "the listener"), "aborted");
    tell(&mut connecting);
    let outcome = next(&mut heard, "the client");
    // SAFETY: kill on our own child's pid, not yet reaped.
    unsafe { libc::kill(sup as i32, libc::SIGCONT) };
    let status = supervisor.wait().expect("wait supervisor");
    assert!(status.success(), "{status}");
    for mut child in [listener, connecting] {
        let _ = child.kill();
        let _ = child.wait();
    }
    client.stop();
    assert_eq!(outcome, "reset", "what the client heard of the server");
}

/// A client's SYN DNATed to a container and marked with its generation
/// that the container never answered (lost on a loaded machine, or its
/// namespace going away), then sent again by the client's kernel after
/// the container had ended: the retransmission rides the entry its first
/// copy made (still `ct state new`, marked already, so not marked again)
/// and met a dead generation. It was dropped: the client retransmitted
/// into the same entry until it expired (SYN_SENT, 120 s), hearing
/// nothing. Under load, 125 such SYNs in one run of 1,000 stops. Made
/// certain here: a rule in the container's namespace drops the first SYN.
/// Refused instead: the kernel closes the entry without removing it, so a
/// second attempt from the same port (the same tuple) in the next seconds
/// is refused too, and one from another port reaches the container that
/// took the port and the address. Without the reject, the client heard
/// nothing for 8 s (these tests failed, each way); with it in the
/// generation chain (after DNAT), a hairpin client still heard nothing
/// (its reset, sent out of the bridge port by br_netfilter, kept the
/// container's address).
#[test]
fn a_syn_sent_again_on_a_stopped_containers_connection_is_refused_and_another_port_reaches_the_successor()
 {
    a_retransmitted_syn_after_the_stop(
        "a_syn_sent_again_on_a_stopped_containers_connection_is_refused",
        ClientIn::Outside,
        false,
    );
}

#[test]
fn a_syn_sent_again_over_ipv6_on_a_stopped_containers_connection_is_refused() {
    a_retransmitted_syn_after_the_stop(
        "a_syn_sent_again_over_ipv6_on_a_stopped_containers_connection_is_refused",
        ClientIn::Outside,
        true,
    );
}

/// As `a_syn_sent_again_on_a_stopped_containers_connection_is_refused_and_another_port_reaches_the_successor`,
/// from another container of the network through the host's address (a
/// hairpin, bridged with br_netfilter).
#[test]
fn a_syn_sent_again_from_another_container_on_a_stopped_containers_connection_is_refused() {
    a_retransmitted_syn_after_the_stop(
        "a_syn_sent_again_from_another_container_on_a_stopped_containers_connection",
        ClientIn::Container,
        false,
    );
}

#[test]
fn a_syn_sent_again_over_ipv6_from_another_container_on_a_stopped_containers_connection_is_refused()
{
    a_retransmitted_syn_after_the_stop(
        "a_syn_sent_again_over_ipv6_from_another_container_on_a_stopped_connection",
        ClientIn::Container,
        true,
    );
}

/// The host's own client, through its address.
#[test]
fn a_syn_the_host_sent_again_on_a_stopped_containers_connection_is_refused() {
    a_retransmitted_syn_after_the_stop(
        "a_syn_the_host_sent_again_on_a_stopped_containers_connection_is_refused",
        ClientIn::Host,
        false,
    );
}

/// The refusal is for the supervisor's own connections: another
/// program's port forward that marks its connections (connmark for
/// policy routing, say) keeps its retransmitted SYN, where the rule that
/// matched any DNATed connection with a mark reset it.
#[test]
fn another_programs_marked_port_forward_keeps_its_retransmitted_syn() {
    let Some(ns) = HostNs::new("another_programs_marked_port_forward_keeps_its_retransmitted_syn")
    else {
        return;
    };
    // The supervisor's tables, as a container leaves them.
    assert!(ns.run(&["-p", "8080:80", "true"]).status.success());
    let python = common::python3("the other program's client");
    // The server listens before the client starts, until the end; the
    // drop rule goes once it has dropped the first SYN, so the second is
    // the one that must pass (it comes a second later, then two more):
    // where fixed sleeps stood for both, a loaded machine could start
    // the server after the second SYN (a reset: ConnectionRefusedError),
    // or lift the rule before the first.
    ns.ok(&format!(
        r#"set -e
ip netns add fwd-srv
ip link add fwd0 type veth peer name fwd1 netns fwd-srv
ip addr add 10.98.0.1/24 dev fwd0 && ip link set fwd0 up
ip -n fwd-srv addr add 10.98.0.2/24 dev fwd1 && ip -n fwd-srv link set fwd1 up
ip -n fwd-srv link set lo up
ip route add 198.51.100.0/24 dev fwd0
nft -f - <<'N'
table ip other {{
  chain out {{ type nat hook output priority -100; policy accept; ip daddr 198.51.100.7 tcp dport 80 dnat to 10.98.0.2:8000; }}
  chain tag {{ type filter hook output priority 0; policy accept; ct state new ct mark set 0x10; }}
}}
N
ip netns exec fwd-srv nft 'add table inet lose; add chain inet lose in {{ type filter hook input priority 0; }}; add rule inet lose in tcp flags syn counter drop'
ip netns exec fwd-srv {python} -c 'import socket,time;s=socket.socket();s.bind(("0.0.0.0",8000));s.listen();time.sleep(60)' &
server=$!
ip netns exec fwd-srv sh -s <<'W'
{listening}
W
( i=0; until ip netns exec fwd-srv nft list chain inet lose in | grep -q 'packets [1-9]'; do
    i=$((i+1)); [ $i -lt 1000 ] || exit 9; sleep 0.01; done
  ip netns exec fwd-srv nft delete table inet lose ) &
lifted=$!
{python} -c '
import socket
s = socket.socket(); s.settimeout(10)
try:
    s.connect(("198.51.100.7", 80)); print("connected")
except Exception as e:
    print(repr(e))
' > /run/fwd-outcome
kill $server
wait $lifted
ip netns del fwd-srv"#,
        listening = common::container::until_listening(8000)
    ));
    let outcome = ns.ok("cat /run/fwd-outcome");
    assert_eq!(
        outcome.trim(),
        "connected",
        "the first SYN dropped, the second must pass"
    );
}

/// Where a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientIn {
    /// The outside machine (routed to the host).
    Outside,
    /// Another container of the network, through the host's address.
    Container,
    /// The host itself.
    Host,
}

/// A client of `sys.argv[1]` port 8080 that says what came of each attempt
/// (`connected`, `refused` or `nothing`): its first from source port 40000
/// within 8 s; at a line on stdin, a second from the same port and a third
/// from a port of the kernel's choosing, each within 3 s.
const SAME_PORT_CLIENT: &str = "import socket, sys\n\
    host = sys.argv[1]\n\
    family = socket.AF_INET6 if ':' in host else socket.AF_INET\n\
    def attempt(port, within):\n\
    \x20   s = socket.socket(family)\n\
    \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
    \x20   s.bind(('::' if family == socket.AF_INET6 else '0.0.0.0', port))\n\
    \x20   s.settimeout(within)\n\
    \x20   try:\n\
    \x20       s.connect((host, 8080)); return 'connected'\n\
    \x20   except ConnectionRefusedError:\n\
    \x20       return 'refused'\n\
    \x20   except socket.timeout:\n\
    \x20       return 'nothing'\n\
    \x20   finally:\n\
    \x20       s.close()\n\
    print(attempt(40000, 8), flush=True)\n\
    sys.stdin.readline()\n\
    print(attempt(40000, 3), flush=True)\n\
    print(attempt(0, 3), flush=True)\n";

/// A client (in `at`) connects to the published port 8080 of a container
/// whose namespace drops the SYN (counted there); the container is
/// stopped; the client's kernel sends the SYN again, on the same entry,
/// and must be refused. Then a new container takes the address and the
/// port: the client's next attempt from the same source port must be
/// refused (not lost), and one from another port must reach it.
fn a_retransmitted_syn_after_the_stop(test: &str, at: ClientIn, ipv6: bool) {
    use std::io::Write;
    let Some(ns) = HostNs::new(test) else {
        return;
    };
    let (out, host) = match ipv6 {
        false => (ns.outside(), "192.0.2.1"),
        true => (ns.outside6(), "2001:db8::1"),
    };
    let client = (at == ClientIn::Container).then(|| {
        let client_ip = SV0.ip(3);
        let mut args = vec!["--name", "client", "--ip", &client_ip];
        if ipv6 {
            args.push("--ipv6");
        }
        Container::on(&ns, &SV0, &args, "true")
    });
    let netns = match (&client, at) {
        (Some(c), _) => format!("/proc/{}/ns/net", c.pid),
        (None, ClientIn::Host) => ns.netns_path(),
        (None, _) => out.netns_path(),
    };
    let ip = SV0.ip(2);
    let server = web(&ns, &ip, ipv6, "");
    let dropping = server.sh(
        "nft 'table inet lose { chain input { type filter hook input priority 0; \
         tcp dport 8000 tcp flags syn counter drop; }; }'",
    );
    assert!(dropping.status.success(), "{}", common::stderr(&dropping));
    let (mut connecting, mut heard) = python_in(&netns, SAME_PORT_CLIENT, host);
    common::eventually(
        "the first SYN dropped in the container",
        Duration::from_secs(10),
        || {
            let listing = server.sh("nft list table inet lose");
            (common::counted_packets(&common::stdout(&listing)) > 0).then_some(())
        },
    );
    server.stop();
    let next = |lines: &mut std::io::Lines<_>, what: &str| -> String {
        lines
            .next()
            .unwrap_or_else(|| panic!("{what}: no line"))
            .expect(what)
    };
    let first = next(&mut heard, "the client's first attempt");
    let successor = web(&ns, &ip, ipv6, "");
    let waited = successor.sh(&common::container::until_listening(8000));
    assert!(waited.status.success(), "{}", common::stderr(&waited));
    let stdin = connecting.stdin.as_mut().expect("stdin");
    stdin
        .write_all(b"\n")
        .and_then(|()| stdin.flush())
        .expect("tell the client");
    let second = next(&mut heard, "the client's second attempt");
    let third = next(&mut heard, "the client's third attempt");
    let _ = connecting.kill();
    let _ = connecting.wait();
    successor.stop();
    if let Some(c) = client {
        c.stop();
    }
    assert_eq!(
        [first, second, third],
        ["refused", "refused", "connected"],
        "what the client's attempts came to: from one port twice, then from another"
    );
}

/// Starts and stops a container with nothing listening on its published
/// port 8080 (so every SYN that reaches it is reset) while three clients in
/// `netns` attempt 192.0.2.1:8080 without pause (no listener's backlog to
/// overflow), until 40 stops had an attempt under way during them. A stop
/// without one checked nothing (on a loaded machine, about one in 100:
/// the probers were not scheduled for its 2 ms); half without fails.
/// How many stops lost a SYN, of how many, and each round's attempts.
fn stops_probed_from(ns: &HostNs, netns: &str) -> (usize, usize, String) {
    let ip = SV0.ip(2);
    let addr: SocketAddr = "192.0.2.1:8080".parse().expect("an address");
    let watching = 40;
    let mut report = String::new();
    let mut losing = 0;
    let (mut round, mut watched) = (0, 0);
    while watched < watching {
        assert!(
            round < 2 * watching,
            "only {watched} of {round} stops had an attempt under way during them:\n{report}"
        );
        let args = ["--name", "closed", "--ip", &ip, "-p", "8080:8000"];
        let container = Container::on(ns, &SV0, &args, "true");
        let probers: Vec<Prober> = (0..3)
            .map(|_| Prober::start_every(netns.to_string(), addr, Duration::ZERO))
            .collect();
        std::thread::sleep(Duration::from_millis(5));
        let stopping = Instant::now();
        container.stop();
        let stopped = Instant::now();
        let attempts: Vec<Attempt> = probers.into_iter().flat_map(Prober::finish).collect();
        let ms = |t: Instant| t.saturating_duration_since(stopping).as_secs_f64() * 1000.0;
        let lost_at: Vec<String> = attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Lost)
            .map(|a| format!("{:.1}", ms(a.at)))
            .collect();
        losing += usize::from(!lost_at.is_empty());
        let during = attempts
            .iter()
            .filter(|a| a.at < stopped && a.ended > stopping)
            .count();
        watched += usize::from(during > 0);
        report.push_str(&format!(
            "round {round}: {} attempts ({during} during the stop): {} refused, {} lost (at ms {}); the stop took {:.1} ms\n",
            attempts.len(),
            count(&attempts, Outcome::Refused),
            lost_at.len(),
            lost_at.join(", "),
            ms(stopped),
        ));
        round += 1;
    }
    (losing, round, report)
}

/// Releasing a netfilter socket flushes nf_tables' deferred frees with its
/// commit lock held: a grace period, 4 to 13 ms, during which every other
/// supervisor's batch waits. So a supervisor's socket outlives it in a
/// child, which releases it on a clock tick all supervisors share: back to
/// back, a start seldom meets a release (without the tick, the start that
/// follows an exit nearly always did). What that saves is measured by
/// benches/startup.rs: `run -p 8080:8000 -- /bin/true, back to back`, and
/// the phases from -v it prints for those runs back to back.
#[test]
fn a_runs_netfilter_socket_outlives_it_until_the_next_close_tick() {
    let Some(ns) = HostNs::new("a_runs_netfilter_socket_outlives_it_until_the_next_close_tick")
    else {
        return;
    };
    let run = || {
        let out = ns
            .supervisor()
            .args(["run", "-p", "8080:8000", "--", "true"])
            .stdin(Stdio::null())
            .output()
            .expect("spawn supervisor");
        assert!(out.status.success(), "{out:?}");
    };
    // The bridge and the tables, made once.
    run();
    // Long after the exit (the holder's own grace period is milliseconds),
    // well before the next tick.
    let open = common::within_a_close_tick(&ns, || {
        run();
        std::thread::sleep(supervisor::nftables::CLOSE_TICK / 3);
        common::netfilter_sockets(&ns)
    });
    assert!(open > 0, "the run's socket released before the tick");
    common::eventually(
        "the socket released at the tick",
        supervisor::nftables::CLOSE_TICK * 3,
        || (common::netfilter_sockets(&ns) == 0).then_some(()),
    );
}
