//! The kernel side of nftables against the real kernel, each test in its own
//! network namespace: batches apply atomically, every ack is checked, and a
//! refusal names the object.

mod common;

use std::ffi::CString;
use std::process::Command;

use supervisor::nftables::{
    Batch, Chain, CmpOp, ElemData, Element, Error, Expr, Family, Hook, MetaKey, Mode, PayloadBase,
    Reg, Rule, Set, SetRef, Socket, Table, Verdict, set_flags,
};

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn nft_list() -> String {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft list ruleset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `inet_service : ipv4_addr . inet_service`, the shape of the firewall's port maps.
fn port_map(batch: &mut Batch) -> Set {
    let mut set = Set::new(Family::Ip, c("t"), c("ports"), batch.next_set_id(), 13, 2);
    set.flags = set_flags::MAP;
    set.data = Some(((7 << 6) | 13, 8));
    set
}

fn port_element(port: u16, addr: [u8; 4], to: u16) -> Element {
    let data = supervisor::nftables::concat(&[&addr, &to.to_be_bytes()]);
    Element::with_data(port.to_be_bytes().to_vec(), data)
}

fn base_batch() -> (Batch, SetRef) {
    let mut batch = Batch::new();
    batch.add_table(&Table::new(Family::Ip, c("t")), Mode::Add);
    let mut chain = Chain::new(Family::Ip, c("t"), c("pre"));
    chain.hook = Some(Hook {
        chain_type: c("nat"),
        hooknum: 0,
        priority: -100,
        policy: None,
        device: None,
    });
    batch.add_chain(&chain, Mode::Add);
    let set = port_map(&mut batch);
    batch.add_set(&set, Mode::Add);
    let mut rule = Rule::new(Family::Ip, c("t"), c("pre"));
    rule.push(Expr::Meta {
        key: MetaKey::L4Proto,
        dreg: Reg::R1,
    })
    .push(Expr::Cmp {
        op: CmpOp::Eq,
        sreg: Reg::R1,
        data: vec![6],
    })
    .push(Expr::Payload {
        base: PayloadBase::Transport,
        offset: 2,
        len: 2,
        dreg: Reg::R1,
    })
    .push(Expr::Lookup {
        set: c("ports"),
        set_id: Some(set.id),
        sreg: Reg::R1,
        dreg: Some(Reg::R1),
        invert: false,
    })
    .push(Expr::Nat {
        kind: supervisor::nftables::NatKind::Dnat,
        family: Family::Ip,
        addr_min: Some(Reg::R1),
        addr_max: None,
        proto_min: Some(Reg::r32(1)),
        proto_max: None,
        flags: 0,
    });
    batch.add_rule(&rule).unwrap();
    let set_ref = SetRef::from(&set);
    batch
        .add_elements(
            &set_ref,
            &[port_element(8080, [172, 16, 0, 2], 8000)],
            Mode::Add,
        )
        .unwrap();
    (batch, set_ref)
}

#[test]
fn a_batch_with_a_map_and_a_dnat_rule_lists_as_nft_syntax() {
    let listing = common::in_fresh_netns(
        "a_batch_with_a_map_and_a_dnat_rule_lists_as_nft_syntax",
        || {
            let (batch, _) = base_batch();
            Socket::open().unwrap().send(batch).unwrap();
            nft_list()
        },
    );
    let Some(listing) = listing else { return };
    assert!(listing.contains("map ports {"), "{listing}");
    assert!(
        listing.contains("type inet_service : ipv4_addr . inet_service"),
        "{listing}"
    );
    assert!(
        listing.contains("elements = { 8080 : 172.16.0.2 . 8000 }"),
        "{listing}"
    );
    assert!(
        listing.contains("dnat ip to tcp dport map @ports"),
        "{listing}"
    );
}

#[test]
fn creating_an_existing_element_fails_naming_it_and_applies_nothing() {
    let result = common::in_fresh_netns(
        "creating_an_existing_element_fails_naming_it_and_applies_nothing",
        || {
            let socket = Socket::open().unwrap();
            let (batch, set) = base_batch();
            socket.send(batch).unwrap();
            let before = nft_list();

            let mut batch = Batch::new();
            let fresh = batch
                .add_elements(
                    &SetRef {
                        id: None,
                        ..set.clone()
                    },
                    &[port_element(9090, [172, 16, 0, 3], 80)],
                    Mode::Create,
                )
                .unwrap();
            let taken = batch
                .add_elements(
                    &SetRef {
                        id: None,
                        ..set.clone()
                    },
                    &[port_element(8080, [172, 16, 0, 3], 80)],
                    Mode::Create,
                )
                .unwrap();
            batch.label(taken.start, "8080");
            let err = socket.send(batch).unwrap_err();
            (before, nft_list(), err, fresh, taken)
        },
    );
    let Some((before, after, err, _fresh, taken)) = result else {
        return;
    };
    assert_eq!(before, after, "a refused batch must change nothing");
    let Error::Refused(refusals) = err else {
        panic!("expected a refusal, got {err}")
    };
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].item, Some(taken.start));
    assert_eq!(refusals[0].errno, nix::errno::Errno::EEXIST);
    assert_eq!(
        refusals[0].to_string(),
        "add element to map ip t ports: 8080: File exists"
    );
}

/// The socket remembers the buffer sizes it has set; a batch needing more
/// than the last one (here an ack for each of 600 messages, past the
/// default receive buffer) still gets them, and has every ack read.
#[test]
fn a_batch_larger_than_the_last_on_one_socket_still_has_every_ack() {
    let result = common::in_fresh_netns(
        "a_batch_larger_than_the_last_on_one_socket_still_has_every_ack",
        || {
            let socket = Socket::open().unwrap();
            let (batch, set) = base_batch();
            socket.send(batch).unwrap();
            let set = SetRef { id: None, ..set };
            let mut small = Batch::new();
            small
                .add_elements(
                    &set,
                    &[port_element(1000, [172, 16, 0, 3], 80)],
                    Mode::Create,
                )
                .unwrap();
            socket.send(small).unwrap();
            let mut large = Batch::new();
            for port in 2000..2600 {
                large
                    .add_elements(
                        &set,
                        &[port_element(port, [172, 16, 0, 3], 80)],
                        Mode::Create,
                    )
                    .unwrap();
            }
            let sent = socket.send(large);
            (sent, socket.elements(&set).unwrap().len())
        },
    );
    let Some((sent, elements)) = result else {
        return;
    };
    assert!(sent.is_ok(), "{sent:?}");
    assert_eq!(elements, 602, "the base batch's, the small one's and 600");
}

#[test]
fn elements_read_back_as_added_and_tables_are_found_by_name() {
    let result = common::in_fresh_netns(
        "elements_read_back_as_added_and_tables_are_found_by_name",
        || {
            let socket = Socket::open().unwrap();
            let missing = socket.table_exists(Family::Ip, &c("t")).unwrap();
            let (batch, set) = base_batch();
            socket.send(batch).unwrap();
            let present = socket.table_exists(Family::Ip, &c("t")).unwrap();
            (
                missing,
                present,
                socket.elements(&SetRef { id: None, ..set }).unwrap(),
            )
        },
    );
    let Some((missing, present, elements)) = result else {
        return;
    };
    assert!(!missing);
    assert!(present);
    assert_eq!(elements, vec![port_element(8080, [172, 16, 0, 2], 8000)]);
}

#[test]
fn ten_thousand_elements_span_several_messages_and_every_one_is_acked() {
    let result = common::in_fresh_netns(
        "ten_thousand_elements_span_several_messages_and_every_one_is_acked",
        || {
            let socket = Socket::open().unwrap();
            let (mut batch, set) = base_batch();
            let elements: Vec<Element> = (10000..20000)
                .map(|p| port_element(p, [172, 16, 0, 2], p))
                .collect();
            batch.add_elements(&set, &elements, Mode::Create).unwrap();
            socket.send(batch).unwrap();
            socket.elements(&SetRef { id: None, ..set }).unwrap().len()
        },
    );
    let Some(count) = result else { return };
    assert_eq!(count, 10001);
}

#[test]
fn a_verdict_map_element_round_trips() {
    let result = common::in_fresh_netns("a_verdict_map_element_round_trips", || {
        let socket = Socket::open().unwrap();
        let mut batch = Batch::new();
        batch.add_table(&Table::new(Family::Inet, c("f")), Mode::Add);
        batch.add_chain(&Chain::new(Family::Inet, c("f"), c("web")), Mode::Add);
        let mut set = Set::new(Family::Inet, c("f"), c("v"), batch.next_set_id(), 13, 2);
        set.flags = set_flags::MAP;
        set.data = Some((supervisor::nftables::DATA_VERDICT, 0));
        batch.add_set(&set, Mode::Add);
        let element = Element {
            data: Some(ElemData::Verdict(Verdict::Jump(c("web")))),
            ..Element::new(443u16.to_be_bytes().to_vec())
        };
        batch
            .add_elements(
                &SetRef::from(&set),
                std::slice::from_ref(&element),
                Mode::Add,
            )
            .unwrap();
        socket.send(batch).unwrap();
        (
            socket
                .elements(&SetRef {
                    id: None,
                    ..SetRef::from(&set)
                })
                .unwrap(),
            element,
            nft_list(),
        )
    });
    let Some((elements, element, listing)) = result else {
        return;
    };
    assert_eq!(elements, vec![element]);
    assert!(listing.contains("443 : jump web"), "{listing}");
}

/// The process that keeps a detached socket open past our exit (its
/// holder) gives up its copies of our other descriptors at once, even on a
/// CPU busy with ordinary work: it starts real-time, closes them and makes
/// itself ordinary again. So a reader of our stdout or stderr (a shell,
/// `bench`, a container engine waiting for a CNI result) sees EOF as soon
/// as we are gone, not once a busy CPU gets round to the holder. Checked
/// on a CPU where the holder cannot run until the checking thread lets it:
/// that thread, pinned there, is SCHED_FIFO 1 itself (reset on fork). In a
/// process of its own (this test, run again alone): a sibling test's fork
/// would hold a copy of the pipe until its exec.
#[test]
fn a_detached_sockets_holder_starts_real_time_and_lets_go_of_our_descriptors_at_once() {
    const NAME: &str =
        "a_detached_sockets_holder_starts_real_time_and_lets_go_of_our_descriptors_at_once";
    const ALONE: &str = "SUPERVISOR_TEST_ALONE";
    if std::env::var_os(ALONE).is_some() {
        common::in_fresh_netns(NAME, holder_lets_go_at_once);
        return;
    }
    if !common::privileged(NAME) {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

fn holder_lets_go_at_once() {
    let policy = |policy: libc::c_int| {
        let param = libc::sched_param {
            sched_priority: i32::from(policy != libc::SCHED_OTHER),
        };
        // SAFETY: the policy of this thread alone, with stack data.
        unsafe { libc::sched_setscheduler(0, policy, &param) }
    };
    // SAFETY: the affinity of this thread alone, with stack data.
    unsafe {
        let mut cpus: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(libc::sched_getcpu() as usize, &mut cpus);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&cpus), &cpus),
            0
        );
    }
    assert_eq!(
        policy(libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK),
        0,
        "SCHED_FIFO: {}",
        std::io::Error::last_os_error()
    );
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    Socket::open().unwrap().close_detached();
    let children = std::fs::read_to_string("/proc/thread-self/children").unwrap();
    // SAFETY: sched_getscheduler only reads.
    let holder_policy = || unsafe { libc::sched_getscheduler(children.trim().parse().unwrap()) };
    // Queued behind this thread, not run yet.
    let queued = holder_policy();
    drop(write);
    // The holder runs now, before anything ordinary: this thread too.
    policy(libc::SCHED_OTHER);
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&read),
        nix::poll::PollFlags::POLLIN,
    )];
    let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(queued, libc::SCHED_FIFO, "the holder starts real-time");
    assert!(
        ready == 1 && nix::unistd::read(&read, &mut byte) == Ok(0),
        "EOF once our copy is closed: the holder keeps no copy"
    );
    assert_eq!(
        holder_policy(),
        libc::SCHED_OTHER,
        "the holder is ordinary once it has let go"
    );
}

/// The holder learns of our exit from a pidfd of ours, which turns
/// readable as our parent is told, never from EOF on a pipe: that came
/// while we were still closing our descriptors, and the holder, woken
/// then, took the CPU from our exit to do its unmounts.
#[test]
fn a_detached_sockets_holder_waits_for_us_on_a_pidfd_of_ours_not_a_pipe() {
    const NAME: &str = "a_detached_sockets_holder_waits_for_us_on_a_pidfd_of_ours_not_a_pipe";
    common::in_fresh_netns(NAME, || {
        Socket::open().unwrap().close_detached();
        let children = std::fs::read_to_string("/proc/thread-self/children").unwrap();
        let holder: u32 = children.trim().parse().expect("one holder");
        let ours = format!("Pid:\t{}\n", std::process::id());
        let held = || {
            let fds = std::fs::read_dir(format!("/proc/{holder}/fd")).ok()?;
            let links: Vec<(String, String)> = fds
                .flatten()
                .filter_map(|fd| {
                    let link = std::fs::read_link(fd.path()).ok()?;
                    let info = format!("/proc/{holder}/fdinfo/{}", fd.file_name().to_str()?);
                    let info = std::fs::read_to_string(info).unwrap_or_default();
                    Some((link.to_string_lossy().into_owned(), info))
                })
                .collect();
            // Once it has let go of the copies of everything else.
            (links.len() == 2).then_some(links)
        };
        let links = common::eventually(
            "the holder keeping its two descriptors",
            std::time::Duration::from_secs(10),
            held,
        );
        assert!(
            links
                .iter()
                .any(|(link, info)| link == "anon_inode:[pidfd]" && info.contains(&ours)),
            "{links:?}"
        );
        assert!(
            !links.iter().any(|(link, _)| link.starts_with("pipe:")),
            "{links:?}"
        );
    });
}

/// The holder releases the socket at least an RCU grace period after our
/// exit, so after our last commit: a release makes nf_tables flush the
/// namespace's pending frees with its commit lock held, and one that came
/// within a grace period of our unpublish found them pending, so the
/// batches of the service's next run, due just then, waited for them
/// (4-26 ms, 17 restarts in 360). The holder waits with
/// membarrier(MEMBARRIER_CMD_GLOBAL), holding no lock, before its wait for
/// the tick. Seen with strace, in a process of its own (this test, run
/// again alone under it).
#[test]
fn a_detached_sockets_holder_waits_a_grace_period_after_our_exit_before_its_tick() {
    const NAME: &str =
        "a_detached_sockets_holder_waits_a_grace_period_after_our_exit_before_its_tick";
    const ALONE: &str = "SUPERVISOR_TEST_ALONE";
    if std::env::var_os(ALONE).is_some() {
        common::in_fresh_netns(NAME, || Socket::open().unwrap().close_detached());
        return;
    }
    if !common::privileged(NAME) {
        return;
    }
    let trace = common::unique_temp_path("holder-trace");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=membarrier,clock_nanosleep", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--test-threads=1"])
        .env(ALONE, "1")
        .output()
        .expect("strace (scripts/deps installs it)");
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The holder is the one that sleeps until an absolute time (the tick).
    let pid = |line: &str| line.split_whitespace().next().unwrap_or("").to_string();
    let holder = text
        .lines()
        .find(|line| line.contains("TIMER_ABSTIME"))
        .map(pid)
        .unwrap_or_else(|| panic!("no wait for the tick in:\n{text}"));
    let calls: Vec<&str> = text
        .lines()
        .filter(|line| pid(line) == holder)
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|call| call.split('(').next().unwrap_or(call))
        .collect();
    let holders = format!("the holder's calls: {calls:?} in\n{text}");
    let grace = text
        .lines()
        .filter(|line| pid(line) == holder)
        .position(|line| line.contains("membarrier(MEMBARRIER_CMD_GLOBAL"));
    let tick = calls.iter().position(|&call| call == "clock_nanosleep");
    assert!(
        grace.is_some() && grace < tick,
        "a grace period before the tick: {holders}"
    );
}
