//! `run -d` and `logs`, end to end: the built binary in its own throwaway
//! host each (see common/mod.rs). A detached supervisor lives in the test's
//! pid namespace, so every test stops (or kills) what it started.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{HostNs, assert_no_state, eventually, records, stderr, stdout, supervisor};
use serde_json::Value;

/// `supervisor logs ARGS…`'s stdout; it must succeed.
fn logs(ns: &HostNs, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let out = supervisor(ns, &all);
    assert!(out.status.success(), "logs {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `run -d OPTIONS -- COMMAND…`.
fn detach(ns: &HostNs, options: &[&str], command: &[&str]) -> Output {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(options);
    all.push("--");
    all.extend_from_slice(command);
    supervisor(ns, &all)
}

/// The pid of container `name`'s supervisor, from its record.
fn supervisor_pid(ns: &HostNs, name: &str) -> u64 {
    common::record(ns, name)["supervisor"]["pid"]
        .as_u64()
        .expect("a pid")
}

/// True when `line` is `TIMESTAMP TEXT` with an RFC 3339 UTC timestamp.
fn stamped(line: &str, text: &str) -> bool {
    let Some((stamp, rest)) = line.split_once(' ') else {
        return false;
    };
    let b = stamp.as_bytes();
    rest == text
        && stamp.len() == 30
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && stamp.ends_with('Z')
}

const CHATTY: &[&str] = &[
    "sh",
    "-c",
    "echo one; echo two >&2; echo three; exec sleep 100",
];

#[test]
fn run_d_returns_the_name_while_it_runs_and_logs_show_follow_and_tail_its_output() {
    let Some(ns) = HostNs::new(
        "run_d_returns_the_name_while_it_runs_and_logs_show_follow_and_tail_its_output",
    ) else {
        return;
    };
    let out = detach(&ns, &["--name", "web"], CHATTY);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "web\n");
    assert_eq!(stderr(&out), "");
    let ps = stdout(&supervisor(&ns, &["ps"]));
    assert!(
        ps.lines().any(|l| l.starts_with("web ")),
        "ps lists it: {ps}"
    );

    let all = eventually("the output in the log", Duration::from_secs(5), || {
        let text = logs(&ns, &["web"]);
        (text.lines().count() == 3).then_some(text)
    });
    assert_eq!(all, "one\ntwo\nthree\n", "stdout and stderr, in order");
    assert_eq!(logs(&ns, &["--tail", "2", "web"]), "two\nthree\n");
    let with_times = logs(&ns, &["--timestamps", "web"]);
    let lines: Vec<&str> = with_times.lines().collect();
    assert!(
        stamped(lines[0], "one") && stamped(lines[2], "three"),
        "{with_times}"
    );

    let mut follower = ns
        .supervisor()
        .args(["logs", "-f", "web"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logs -f");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        follower.try_wait().unwrap().is_none(),
        "logs -f follows while the container runs"
    );
    let stopped = supervisor(&ns, &["stop", "web"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    // A hang guard, not a speed verdict: logs -f ends when the container
    // does, and this fails only one that never does.
    let deadline = Instant::now() + Duration::from_secs(30);
    while follower.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "logs -f ends when the container does (still following 30 s after its stop)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let followed = follower.wait_with_output().unwrap();
    assert!(followed.status.success(), "{}", stderr(&followed));
    assert_eq!(stdout(&followed), "one\ntwo\nthree\n");

    assert_eq!(records(&ns), "", "the record goes at exit");
    assert_eq!(logs(&ns, &["web"]), "one\ntwo\nthree\n", "the log stays");
    let gc = stdout(&supervisor(&ns, &["gc"]));
    assert!(
        gc.contains("removed log /run/supervisor/logs/web.log"),
        "{gc}"
    );
    let gone = supervisor(&ns, &["logs", "web"]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(stderr(&gone), "supervisor: no such container: web\n");
    assert_no_state(&ns);
}

#[test]
fn a_start_up_error_with_d_reaches_the_caller_with_its_code_and_message() {
    let Some(ns) =
        HostNs::new("a_start_up_error_with_d_reaches_the_caller_with_its_code_and_message")
    else {
        return;
    };
    let first = detach(
        &ns,
        &["--name", "a", "--ip", "172.16.0.30", "-p", "8080:80"],
        &["sleep", "100"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    let name = detach(&ns, &["--name", "a"], &["sleep", "100"]);
    assert_eq!(name.status.code(), Some(125));
    assert!(
        stderr(&name).contains("the name \"a\" is in use by container"),
        "{}",
        stderr(&name)
    );
    let port = detach(&ns, &["--name", "b", "-p", "8080:80"], &["sleep", "100"]);
    assert_eq!(port.status.code(), Some(125));
    assert!(
        stderr(&port).contains("host port 8080/tcp is in use by container a"),
        "{}",
        stderr(&port)
    );
    // Found by the background supervisor, after the fork.
    let address = detach(
        &ns,
        &["--name", "c", "--ip", "172.16.0.30"],
        &["sleep", "100"],
    );
    assert_eq!(address.status.code(), Some(125), "{}", stderr(&address));
    assert!(
        stderr(&address).contains("172.16.0.30"),
        "{}",
        stderr(&address)
    );
    assert_eq!(stdout(&address), "", "no name: it did not start");
    let missing = detach(&ns, &["--name", "d"], &["/no/such/command"]);
    assert_eq!(missing.status.code(), Some(127));
    assert_eq!(
        stderr(&missing),
        "supervisor: /no/such/command: command not found\n"
    );
    let ps = stdout(&supervisor(&ns, &["ps"]));
    assert_eq!(ps.lines().count(), 2, "only a runs: {ps}");

    assert!(supervisor(&ns, &["stop", "a"]).status.success());
    supervisor(&ns, &["gc"]);
    assert_no_state(&ns);
}

#[test]
fn a_detached_containers_log_survives_its_supervisors_crash_until_gc() {
    let Some(ns) = HostNs::new("a_detached_containers_log_survives_its_supervisors_crash_until_gc")
    else {
        return;
    };
    let out = detach(&ns, &["--name", "c"], CHATTY);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    eventually("the output in the log", Duration::from_secs(5), || {
        (logs(&ns, &["c"]).lines().count() == 3).then_some(())
    });
    ns.ok(&format!("kill -9 {}", supervisor_pid(&ns, "c")));

    assert_eq!(logs(&ns, &["c"]), "one\ntwo\nthree\n");
    let mut follower = ns
        .supervisor()
        .args(["logs", "-f", "c"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn logs -f");
    // A hang guard: waiting for a writer that is gone, it would follow
    // for ever.
    eventually(
        "logs -f of a crashed supervisor's container returning",
        Duration::from_secs(30),
        || follower.try_wait().expect("try_wait"),
    );
    let followed = follower.wait_with_output().expect("logs -f's output");
    assert_eq!(stdout(&followed), "one\ntwo\nthree\n");
    let gc = stdout(&supervisor(&ns, &["gc"]));
    assert!(
        gc.contains("removed log /run/supervisor/logs/c.log"),
        "{gc}"
    );
    assert_eq!(
        ns.ok("ls /run/supervisor/logs"),
        "",
        "no file of it is left"
    );
    assert_eq!(supervisor(&ns, &["logs", "c"]).status.code(), Some(1));
    assert_no_state(&ns);
}

#[test]
fn the_log_moves_to_one_rotated_file_at_log_max_size() {
    let Some(ns) = HostNs::new("the_log_moves_to_one_rotated_file_at_log_max_size") else {
        return;
    };
    let script = "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done";
    let out = detach(
        &ns,
        &["--name", "big", "--log-max-size", "4k", "--network", "none"],
        &["sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    eventually("the container's end", Duration::from_secs(10), || {
        records(&ns).is_empty().then_some(())
    });
    let text = logs(&ns, &["big"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"line 299"));
    assert!(!lines.contains(&"line 0"), "the oldest lines went");
    let sizes =
        ns.ok("stat -c '%n %s' /run/supervisor/logs/big.log /run/supervisor/logs/big.log.1");
    for line in sizes.lines() {
        let size: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(size <= 4096 + 64, "each file stays near the cap: {sizes}");
    }
    assert!(!ns.ok("ls /run/supervisor/logs").contains("big.log.2"));

    let bad = detach(&ns, &["--log-max-size", "ten"], &["true"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(stderr(&bad).contains("\"ten\""), "{}", stderr(&bad));
    supervisor(&ns, &["gc"]);
}

#[test]
fn a_detached_supervisor_and_its_container_leave_the_callers_session() {
    let Some(ns) = HostNs::new("a_detached_supervisor_and_its_container_leave_the_callers_session")
    else {
        return;
    };
    let out = detach(&ns, &["--name", "web"], &["sleep", "100"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = ns.ok("cat /run/supervisor/containers/web.json");
    let record: Value = serde_json::from_str(&text).expect("a record is JSON");
    let supervisor_pid = record["supervisor"]["pid"].as_u64().expect("a pid");
    let container_pid = record["container"]["pid"].as_u64().expect("a container");
    // Field 6 of /proc/PID/stat, after the command name.
    let session = |pid: u64| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[3].parse().unwrap()
    };
    assert_eq!(
        session(supervisor_pid),
        supervisor_pid,
        "a session of its own"
    );
    assert_eq!(
        session(container_pid),
        supervisor_pid,
        "the container in it"
    );
    assert_ne!(session(u64::from(std::process::id())), supervisor_pid);
    let stopped = supervisor(&ns, &["stop", "web"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert_no_state(&ns);
}

#[test]
fn a_run_d_that_fails_to_start_leaves_the_state_directory_as_it_was() {
    let Some(ns) = HostNs::new("a_run_d_that_fails_to_start_leaves_the_state_directory_as_it_was")
    else {
        return;
    };
    // A live container holds a name, an address and a port; the shared
    // files (locks, lease directory, seccomp cache) exist from then on.
    let live = detach(
        &ns,
        &["--name", "a", "--ip", "172.16.0.30", "-p", "8080:80"],
        &["sh", "-c", "echo hello; exec sleep 100"],
    );
    assert_eq!(live.status.code(), Some(0), "{}", stderr(&live));
    eventually("a's output in its log", Duration::from_secs(5), || {
        (logs(&ns, &["a"]) == "hello\n").then_some(())
    });
    // The address allocator's round-robin cursor (leases/sv0/.last) is
    // born with the first address it picks, and moves on with each.
    let warm = supervisor(&ns, &["run", "--", "true"]);
    assert!(warm.status.success(), "{}", stderr(&warm));
    // An ended container's log, rotated once: a failed run of its name
    // must leave it whole.
    let script = "i=0; while [ $i -lt 200 ]; do echo old $i; i=$((i+1)); done";
    let ended = detach(
        &ns,
        &["--name", "old", "--network", "none", "--log-max-size", "4k"],
        &["sh", "-c", script],
    );
    assert_eq!(ended.status.code(), Some(0), "{}", stderr(&ended));
    // Its record replaced by its exited record, and its log's writer gone
    // with it: the last changes its run makes.
    eventually("old's end", Duration::from_secs(10), || {
        let replaced =
            ns.sh("cd /run/supervisor && test -e exited/old.json && ! test -e containers/old.json");
        (replaced.status.success() && container_log_state(&ns, "old") == "ended").then_some(())
    });
    let files = || ns.ok("cd /run/supervisor && find . | sort && md5sum logs/* | sort");
    let before = files();
    assert!(before.contains("logs/old.log.1"), "{before}");

    let failures: &[(&[&str], &[&str], i32)] = &[
        (&["--name", "x"], &["/no/such/command"], 127),
        (&["--name", "x"], &["/etc/passwd"], 126),
        (&["--name", "x", "--rootfs", "/no/such/dir"], &["true"], 125),
        (&["--name", "x", "--ip", "172.16.0.30"], &["true"], 125),
        (&["--name", "x", "-p", "8080:80"], &["true"], 125),
        (&["--name", "x", "--user", "nobody-here"], &["true"], 125),
        (&["--name", "x", "--log-max-size", "ten"], &["true"], 125),
        // The live container's own name: its log and lock are not touched.
        (&["--name", "a"], &["true"], 125),
        (&["--name", "a"], &["/no/such/command"], 125),
    ];
    let with_old = failures.iter().filter_map(|&(options, command, code)| {
        let options: Vec<&str> = options
            .iter()
            .map(|&o| if o == "x" { "old" } else { o })
            .collect();
        options.contains(&"old").then_some((options, command, code))
    });
    let failures = failures
        .iter()
        .map(|&(options, command, code)| (options.to_vec(), command, code))
        .chain(with_old);
    for (options, command, code) in failures {
        let out = detach(&ns, &options, command);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{options:?} {command:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            files(),
            before,
            "{options:?} {command:?} left files: {}",
            stderr(&out)
        );
    }
    assert_eq!(logs(&ns, &["a"]), "hello\n", "a's log is whole");
    // A run of the name that starts replaces the ended one's log.
    let new = detach(
        &ns,
        &["--name", "old", "--network", "none"],
        &["echo", "new"],
    );
    assert_eq!(new.status.code(), Some(0), "{}", stderr(&new));
    // The ended run's log, set aside until the start, goes just after the
    // start is reported (off its path, as the earlier exited record does):
    // `run -d` may have returned before.
    eventually("the new log alone", Duration::from_secs(5), || {
        (logs(&ns, &["old"]) == "new\n"
            && ns.ok("cd /run/supervisor/logs && ls old.*") == "old.lock\nold.log\n")
            .then_some(())
    });
    assert_eq!(
        container_log_state(&ns, "a"),
        "written",
        "a's writer still holds its lock"
    );
    assert!(supervisor(&ns, &["stop", "a"]).status.success());
    supervisor(&ns, &["gc"]);
    assert_no_state(&ns);
}

/// Whether `name`'s log has a live writer: it holds the lock exclusively.
fn container_log_state(ns: &HostNs, name: &str) -> &'static str {
    let path = format!("/run/supervisor/logs/{name}.lock");
    match ns.sh(&format!("flock -n -s {path} true")).status.success() {
        true => "ended",
        false => "written",
    }
}

#[test]
fn a_log_max_size_that_cannot_hold_a_line_is_refused_before_anything_is_made() {
    let state = common::unique_temp_path("log-max-size");
    for (size, why) in [
        ("10", "at least 4k"),
        ("0", "at least 4k"),
        ("4095b", "at least 4k"),
        ("1x", "optional k, m or g suffix"),
        ("-1", "optional k, m or g suffix"),
        ("", "optional k, m or g suffix"),
        ("99999999999999999999", "optional k, m or g suffix"),
        ("9223372036854775808", "more than a file can hold"),
    ] {
        let out = common::run(
            std::process::Command::new(common::SUPERVISOR)
                .args(["run", "-d", "--state-dir"])
                .arg(&state)
                .arg(format!("--log-max-size={size}"))
                .args(["--", "true"]),
        );
        assert_eq!(out.status.code(), Some(125), "{size:?}: {}", stderr(&out));
        let first = stderr(&out).lines().next().unwrap_or_default().to_string();
        assert!(
            first.contains("--log-max-size") && first.contains(&format!("{size:?}")),
            "{size:?}: the option and the value: {first}"
        );
        assert!(first.contains(why), "{size:?}: {first}");
        assert!(!state.exists(), "{size:?}: nothing made");
    }
}

/// A pipe whose reader is gone: writing to it fails with EPIPE.
fn closed_pipe() -> std::os::fd::OwnedFd {
    let (read, write) = nix::unistd::pipe().expect("a pipe");
    drop(read);
    write
}

#[test]
fn a_caller_whose_output_is_a_closed_pipe_gets_exit_codes_not_a_panic() {
    let Some(ns) =
        HostNs::new("a_caller_whose_output_is_a_closed_pipe_gets_exit_codes_not_a_panic")
    else {
        return;
    };
    let closed = |args: &[&str]| {
        let mut cmd = ns.supervisor();
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(closed_pipe())
            .stderr(closed_pipe());
        cmd.status().expect("supervisor runs").code()
    };
    // `supervisor run -d … | head -c0`: the container runs all the same.
    assert_eq!(
        closed(&["run", "-d", "--name", "q", "--", "sleep", "100"]),
        Some(0)
    );
    let ps = stdout(&supervisor(&ns, &["ps"]));
    assert!(ps.lines().any(|l| l.starts_with("q ")), "{ps}");
    assert_eq!(closed(&["run", "--dry-run", "--", "true"]), Some(0));
    assert_eq!(
        closed(&["run", "--no-such-option", "--", "true"]),
        Some(125)
    );
    assert_eq!(closed(&["stop", "no-such"]), Some(1));
    assert!(supervisor(&ns, &["stop", "q"]).status.success());
    assert_no_state(&ns);
}

/// `supervisor CMD | head -c0`: each command's stdout a pipe nobody reads,
/// its stderr read: the exit status and stderr.
fn into_closed_pipe(ns: &HostNs, args: &[&str]) -> (Option<i32>, String) {
    let out = ns
        .supervisor()
        .args(args)
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .expect("supervisor runs");
    (out.status.code(), stderr(&out))
}

#[test]
fn a_reader_that_leaves_early_ends_a_listing_quietly_and_never_the_work() {
    let Some(ns) =
        HostNs::new("a_reader_that_leaves_early_ends_a_listing_quietly_and_never_the_work")
    else {
        return;
    };
    for name in ["q1", "q2"] {
        let out = detach(
            &ns,
            &["--name", name],
            &["sh", "-c", "seq 1 20000; sleep 100"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    eventually("q1's log", Duration::from_secs(10), || {
        logs(&ns, &["q1"]).contains("20000\n").then_some(())
    });
    // What only reads ends at the first write nobody reads: 0, no line.
    for args in [
        &["ps"][..],
        &["ps", "--json"],
        &["inspect", "q1", "q2"],
        &["logs", "q1"],
        &["check"],
        &["gc"],
        &["run", "--dry-run", "-p", "8080:80", "--", "true"],
    ] {
        assert_eq!(
            into_closed_pipe(&ns, args),
            (Some(0), String::new()),
            "{args:?}"
        );
    }
    // What works finishes its work and answers as it would: q2 is killed
    // too, after q1's name found no reader, and a failure still shows.
    assert_eq!(
        into_closed_pipe(&ns, &["kill", "q1", "q2"]),
        (Some(0), String::new())
    );
    eventually("both containers gone", Duration::from_secs(10), || {
        stdout(&supervisor(&ns, &["ps", "-q"]))
            .is_empty()
            .then_some(())
    });
    // rm too: q2's remains go after q1's name found no reader.
    assert_eq!(
        into_closed_pipe(&ns, &["rm", "q1", "q2"]),
        (Some(0), String::new())
    );
    assert_eq!(stdout(&supervisor(&ns, &["ps", "-a", "-q"])), "");
    let (code, err) = into_closed_pipe(&ns, &["stop", "no-such"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err, "supervisor: no such container: no-such\n");
    assert_no_state(&ns);
}

/// A `run -d` starts its log, then claims its name (its record): a log
/// without a record may be a starting run's. `gc` and `rm` between the two
/// leave it, and remove it once its writer is gone. The test holds the
/// log's lock as the starting run's writer holds it.
#[test]
fn gc_and_rm_leave_the_log_of_a_run_d_that_has_not_yet_made_its_record() {
    let Some(ns) =
        HostNs::new("gc_and_rm_leave_the_log_of_a_run_d_that_has_not_yet_made_its_record")
    else {
        return;
    };
    ns.ok("mkdir -p /run/supervisor/logs && echo starting > /run/supervisor/logs/web.log");
    // One process, the lock on its descriptor 9 (flock's command would be
    // a second holder).
    let mut writer = ns
        .command("sh")
        .args([
            "-c",
            "exec 9>/run/supervisor/logs/web.lock && flock -x 9 && echo ready && exec sleep 60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn flock");
    let _holding = common::wait_ready(&mut writer);
    let gc = supervisor(&ns, &["gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(!stdout(&gc).contains("web"), "{}", stdout(&gc));
    let rm = supervisor(&ns, &["rm", "web"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert_eq!(ns.ok("cat /run/supervisor/logs/web.log"), "starting\n");

    writer.kill().expect("end the writer");
    writer.wait().expect("reap the writer");
    let gc = stdout(&supervisor(&ns, &["gc"]));
    assert!(
        gc.contains("removed log /run/supervisor/logs/web.log"),
        "{gc}"
    );
    assert_eq!(
        ns.ok("ls /run/supervisor/logs"),
        "",
        "no file of it is left"
    );
}
