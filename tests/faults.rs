//! Crashes and signals at the worst moments: nothing of a dead container may
//! outlive `gc`, and a supervisor whose container dies or is interrupted
//! cleans up on its own. Each test in its own throwaway host (see
//! common/mod.rs); crashes are placed with the fault hook (src/fault.rs),
//! never by timing.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    HostNs, assert_no_state, background, container_veths, crash_at, elements, eth0_address,
    eventually, leases, records, stderr, stdout, supervisor, wait_for_no_veth,
};
use serde_json::Value;

/// Every phase of the fault hook, with a command that reaches it: the
/// startup phases need one that keeps running, the teardown ones one that
/// ends.
const PHASES: [(&str, &[&str]); 8] = [
    ("registered", &["sleep", "1000"]),
    ("leased", &["sleep", "1000"]),
    ("linked", &["sleep", "1000"]),
    ("published", &["sleep", "1000"]),
    ("recorded", &["sleep", "1000"]),
    ("running", &["sleep", "1000"]),
    ("exited", &["true"]),
    ("released", &["true"]),
];

fn count(lines: &str) -> usize {
    lines.lines().count()
}

#[test]
fn killing_the_supervisor_at_any_phase_leaves_nothing_after_gc() {
    let Some(ns) = HostNs::new("killing_the_supervisor_at_any_phase_leaves_nothing_after_gc")
    else {
        return;
    };
    const ITERATIONS: usize = 100;
    // Each its own host port: 20000 + i.
    let started = Instant::now();
    for i in 0..ITERATIONS {
        let (phase, command) = PHASES[i % PHASES.len()];
        let (name, publish) = (format!("c{i}"), format!("{}:80", 20000 + i));
        let mut args = vec!["--name", &name, "-p", &publish, "--"];
        args.extend_from_slice(command);
        crash_at(&ns, phase, &args);
    }
    let crashed = started.elapsed();
    let (left_records, left_leases) = (count(&records(&ns)), count(&leases(&ns)));
    let left_links = container_veths(&ns).len();
    let left_elements = elements(&ns);

    let out = supervisor(&ns, &["gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    let removed = |prefix: &str| report.lines().filter(|l| l.starts_with(prefix)).count();
    let (gc_records, gc_leases, gc_links, gc_elements) = (
        removed("removed record "),
        removed("removed lease "),
        removed("removed link "),
        removed("removed element "),
    );
    println!(
        "{ITERATIONS} crashes in {crashed:?}; left before gc: {left_records} records, \
         {left_leases} leases, {left_links} links, {left_elements} elements; gc removed \
         {gc_records} records, {gc_leases} leases, {gc_links} links, {gc_elements} elements"
    );
    // Every crash leaves its record: the supervisor removes it last.
    assert_eq!(left_records, ITERATIONS);
    assert_eq!(gc_records, ITERATIONS, "{report}");
    // A lease from `leased` on, until `released` gives it back.
    let crashed_in = |phases: &[&str]| {
        (0..ITERATIONS)
            .filter(|i| phases.contains(&PHASES[i % PHASES.len()].0))
            .count()
    };
    let leased = crashed_in(&[
        "leased",
        "linked",
        "published",
        "recorded",
        "running",
        "exited",
    ]);
    assert_eq!(left_leases, leased);
    assert_eq!(gc_leases, leased, "{report}");
    // From the batch on, until teardown's batch: the two guards, the port
    // and the generation (by address, and with it).
    let published = 5 * crashed_in(&["published", "recorded", "running", "exited"]);
    assert_eq!(left_elements, published);
    assert_eq!(gc_elements, published, "{report}");
    assert_no_state(&ns);
    // The veths go with the containers' namespaces (PR_SET_PDEATHSIG kills
    // the containers); gc deletes any it sees first.
    wait_for_no_veth(&ns);

    // Every name and the lowest address can be used again.
    wait_for_no_veth(&ns);
    let every_port = "20000-20099:20000-20099";
    let eth0 = eth0_address(
        &ns,
        &["--name", "c0", "--ip", "172.16.0.2", "-p", every_port],
    );
    assert!(eth0.contains("172.16.0.2/24"), "{eth0}");
    wait_for_no_veth(&ns);
    let again = supervisor(&ns, &["gc"]);
    assert_eq!(stdout(&again), "", "nothing left");
}

#[test]
fn a_container_killed_before_its_release_is_one_line_naming_its_end_and_leaves_nothing() {
    let Some(ns) = HostNs::new(
        "a_container_killed_before_its_release_is_one_line_naming_its_end_and_leaves_nothing",
    ) else {
        return;
    };
    // Its init, then its init's command, each killed once the supervisor
    // has all but released them.
    for (victim, end) in [
        ("$init", "it was killed by signal 9"),
        ("$(cat /proc/$init/task/*/children)", "it exited with 137"),
    ] {
        let child = background(
            ns.supervisor()
                .env("SUPERVISOR_TEST_PAUSE_AT", "recorded")
                .args(["run", "-p", "8080:80", "--", "sleep", "1000"]),
        );
        let pid = child.id();
        eventually("the supervisor stopping", Duration::from_secs(30), || {
            (common::process_state(pid) == Some('T')).then_some(())
        });
        // Once the init has forked its command: the supervisor's pause says
        // nothing of the container, which sets itself up meanwhile (a kill
        // of no command, on a busy machine, left the init waiting for its
        // release for good). Until the init is a zombie (killed, or gone
        // after its command): a kill returns once the signal is sent, and a
        // command that has not yet died when the supervisor goes on still
        // holds the release channel, so the release byte is taken and its
        // death reads as the command's own exit (137). Each wait fails
        // after 30 s rather than hang.
        ns.ok(&format!(
            "init=$(cat /proc/{pid}/task/*/children | tr -d ' '); i=0; \
             until [ -n \"$(cat /proc/$init/task/*/children)\" ]; do \
               i=$((i+1)); [ $i -lt 3000 ] || exit 9; sleep 0.01; done; \
             kill -9 {victim}; \
             while [ \"$(awk '{{print $3}}' /proc/$init/stat)\" != Z ]; do \
               i=$((i+1)); [ $i -lt 6000 ] || exit 9; sleep 0.01; done"
        ));
        ns.ok(&format!("kill -CONT {pid}"));
        let out = child.wait_with_output().expect("wait supervisor");
        assert_eq!(out.status.code(), Some(125));
        assert_eq!(
            stderr(&out),
            format!("supervisor: the container ended before its command started ({end})\n")
        );
        assert_no_state(&ns);
        wait_for_no_veth(&ns);
    }
}

#[test]
fn killing_the_container_makes_its_supervisor_clean_up_and_exit_137() {
    let Some(ns) = HostNs::new("killing_the_container_makes_its_supervisor_clean_up_and_exit_137")
    else {
        return;
    };
    let run = [
        "run", "--name", "victim", "-p", "8080:80", "--", "sleep", "1000",
    ];
    let mut child = background(ns.supervisor().args(run));
    let container = eventually("the container recorded", Duration::from_secs(30), || {
        let list: Value =
            serde_json::from_str(&stdout(&supervisor(&ns, &["ps", "--json"]))).ok()?;
        list.get(0)?.get("container_pid")?.as_u64()
    });
    // The record names the container before its release: killed then, it
    // never ran its command and the run fails 125 (see the test above).
    // Killed once its command runs, as PID 1 or under the init.
    let runs_sleep = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    };
    eventually("the command running", Duration::from_secs(30), || {
        let children =
            std::fs::read_to_string(format!("/proc/{container}/task/{container}/children"))
                .unwrap_or_default();
        (runs_sleep(&container.to_string()) || children.split_whitespace().any(runs_sleep))
            .then_some(())
    });
    ns.ok(&format!("kill -9 {container}"));
    let status = child.wait().expect("wait supervisor");
    assert_eq!(status.code(), Some(137));
    assert_no_state(&ns);
    wait_for_no_veth(&ns);
}

#[test]
fn fifty_concurrent_runs_are_reachable_then_stop_leaves_nothing() {
    let Some(ns) = HostNs::new("fifty_concurrent_runs_are_reachable_then_stop_leaves_nothing")
    else {
        return;
    };
    const RUNS: usize = 50;
    let names: Vec<String> = (0..RUNS).map(|i| format!("web{i}")).collect();
    let mut children: Vec<Child> = names
        .iter()
        .map(|name| {
            // PID 1 with a SIGTERM handler: `stop` needs no SIGKILL.
            let publish = format!("{}:8000", port_of(name));
            background(
                ns.supervisor()
                    .args(["run", "--name", name, "-p", &publish])
                    .args([
                        "--",
                        "sh",
                        "-c",
                        "trap 'exit 0' TERM; nc -lk -p 8000 & wait",
                    ]),
            )
        })
        .collect();
    let list = eventually("all fifty recorded", Duration::from_secs(60), || {
        let list: Value =
            serde_json::from_str(&stdout(&supervisor(&ns, &["ps", "--json"]))).ok()?;
        let all = list.as_array()?;
        (all.len() == RUNS && all.iter().all(|c| c["container_pid"].is_u64())).then_some(list)
    });
    let mut addresses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().expect("an address"))
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), RUNS, "distinct addresses");
    for name in &names {
        let port = port_of(name);
        eventually(
            &format!("{name} answers on 127.0.0.1:{port}"),
            Duration::from_secs(30),
            || {
                ns.sh(&format!("nc -z -w 2 127.0.0.1 {port}"))
                    .status
                    .success()
                    .then_some(())
            },
        );
    }

    let mut stop = vec!["stop", "--time", "10"];
    stop.extend(names.iter().map(String::as_str));
    let started = Instant::now();
    let out = supervisor(&ns, &stop);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let mut stopped: Vec<&str> = printed.lines().collect();
    stopped.sort();
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(stopped, expected);
    println!("stop of {RUNS} containers took {took:?}");
    // `stop` returned after every supervisor cleaned up.
    assert_no_state(&ns);
    for child in &mut children {
        let status = child.wait().expect("wait supervisor");
        assert_eq!(status.code(), Some(0), "ended by its SIGTERM handler");
    }
    wait_for_no_veth(&ns);
}

/// The host port of fifty_concurrent_runs' container `webN`: 30000 + N.
fn port_of(name: &str) -> u16 {
    30000 + name.trim_start_matches("web").parse::<u16>().expect("webN")
}

#[test]
fn two_concurrent_runs_publishing_one_port_one_wins_the_other_exits_125_naming_it() {
    let Some(ns) = HostNs::new(
        "two_concurrent_runs_publishing_one_port_one_wins_the_other_exits_125_naming_it",
    ) else {
        return;
    };
    let mut runs: Vec<Child> = ["first", "second"]
        .iter()
        .map(|name| {
            let run = [
                "run", "--name", name, "-p", "8080:80", "--", "sleep", "1000",
            ];
            background(ns.supervisor().args(run))
        })
        .collect();
    let (loser, status) = eventually("one run ends", Duration::from_secs(30), || {
        runs.iter_mut()
            .enumerate()
            .find_map(|(i, run)| Some((i, run.try_wait().expect("try_wait")?)))
    });
    assert_eq!(status.code(), Some(125));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut runs[loser].stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("cannot publish 8080->80/tcp: host port 8080/tcp is in use by container "),
        "{err}"
    );
    let winner = ["first", "second"][1 - loser];
    assert!(err.contains(&format!("container {winner} (")), "{err}");
    // The loser fails at the winner's reservation of the port, which can
    // come before the winner has published it and completed its record.
    let list = eventually(
        "the winner's record shows its port",
        Duration::from_secs(10),
        || {
            let list: Value =
                serde_json::from_str(&stdout(&supervisor(&ns, &["ps", "--json"]))).unwrap();
            (list[0]["ports"][0]["host_port"] == 8080).then_some(list)
        },
    );
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["name"], winner);
    let out = supervisor(&ns, &["stop", "-t", "0", winner]);
    assert!(out.status.success(), "{}", stderr(&out));
    for run in &mut runs {
        run.wait().expect("wait supervisor");
    }
    assert_no_state(&ns);
}

#[test]
fn ctrl_c_to_a_supervisor_whose_command_ignores_it_kills_after_the_stop_timeout() {
    let Some(ns) =
        HostNs::new("ctrl_c_to_a_supervisor_whose_command_ignores_it_kills_after_the_stop_timeout")
    else {
        return;
    };
    let mut child = ns
        .supervisor()
        .args([
            "run",
            "--stop-timeout",
            "1",
            "-p",
            "8080:80",
            "--",
            "sh",
            "-c",
        ])
        .arg("trap '' INT; echo ready; while :; do sleep 0.1; done")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let started = Instant::now();
    // SAFETY: kill on our own child's pid, which we have not reaped.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let status = eventually("the supervisor exits", Duration::from_secs(30), || {
        child.try_wait().expect("try_wait")
    });
    let took = started.elapsed();
    println!("SIGINT to exit with --stop-timeout 1: {took:?}");
    assert_eq!(status.code(), Some(137), "killed after the stop timeout");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains(
            "did not exit within --stop-timeout (1 s) of SIGINT: killing it (SIGKILL); its \
             command handles or ignores SIGINT without exiting: make it exit on SIGINT"
        ),
        "{err}"
    );
    assert_no_state(&ns);
    wait_for_no_veth(&ns);
}

#[test]
fn an_address_whose_dead_holders_elements_outlived_its_lease_is_taken_back_by_the_next_run() {
    let Some(ns) = HostNs::new("an_address_whose_dead_holders_elements_outlived_its_lease") else {
        return;
    };
    crash_at(&ns, "running", &["--name", "dead", "--", "sleep", "100"]);
    // Its lease gone (by hand), its record and elements still there.
    ns.ok("rm /run/supervisor/leases/sv0/172.16.0.2");
    let out = ns.run(&[
        "--ip",
        "172.16.0.2",
        "--",
        "sh",
        "-c",
        "ip -4 -o addr show dev eth0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("172.16.0.2/"), "{}", stdout(&out));
    assert_eq!(records(&ns), "");
}
