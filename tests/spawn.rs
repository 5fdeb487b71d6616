//! `supervisor run` as a process supervisor: namespaces, exit codes,
//! signals, capabilities, descriptors, init, terminals. Each test runs the
//! built binary as root inside its own throwaway host (see common/mod.rs).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::container::until_listening;
use common::{HostNs, stderr, stdout, wait_ready};

/// Runs `supervisor run --network none ARGS…` in `ns` and returns its output.
fn run(ns: &HostNs, args: &[&str]) -> std::process::Output {
    ns.supervisor()
        .args(["run", "--network", "none"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn supervisor")
}

/// Starts `supervisor run --network none ARGS…` with piped stdout and waits
/// for its first line (the container's "ready").
fn start(ns: &HostNs, args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = ns
        .supervisor()
        .args(["run", "--network", "none"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let out = wait_ready(&mut child);
    (child, out)
}

/// Waits for a child to exit, failing the test (not hanging it) after `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("supervisor did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill on a pid this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// The container's PID 1 as the host sees it: the supervisor's only child.
fn container_pid(supervisor: u32) -> u32 {
    let children =
        std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children"))
            .expect("read children");
    children.trim().parse().expect("one container pid")
}

#[test]
fn exit_codes_follow_docker() {
    let Some(ns) = HostNs::new("exit_codes_follow_docker") else {
        return;
    };
    let cases: [(&[&str], i32); 5] = [
        (&["true"], 0),
        (&["sh", "-c", "exit 7"], 7),
        (&["/etc/passwd"], 126),
        (&["surely-no-such-command"], 127),
        (&["--name", "not valid", "true"], 125),
    ];
    for (args, code) in cases {
        let out = run(&ns, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn not_found_and_not_executable_name_the_command() {
    let Some(ns) = HostNs::new("not_found_and_not_executable_name_the_command") else {
        return;
    };
    let out = run(&ns, &["surely-no-such-command"]);
    assert_eq!(
        stderr(&out).trim(),
        "supervisor: surely-no-such-command: command not found"
    );
    let out = run(&ns, &["/etc/passwd"]);
    assert!(
        stderr(&out).contains("/etc/passwd: cannot execute"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn killed_by_a_signal_exits_128_plus_the_signal() {
    let Some(ns) = HostNs::new("killed_by_a_signal_exits_128_plus_the_signal") else {
        return;
    };
    let (mut child, _out) = start(&ns, &["sh", "-c", "echo ready; exec sleep 100"]);
    signal(container_pid(child.id()), libc::SIGKILL);
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(137));
}

#[test]
fn sigterm_is_forwarded_to_a_command_that_traps_it() {
    let Some(ns) = HostNs::new("sigterm_is_forwarded_to_a_command_that_traps_it") else {
        return;
    };
    assert_sigterm_reaches_a_trap(&ns, &[]);
}

/// Starts a shell that traps SIGTERM (run with `args` first), sends the
/// supervisor SIGTERM, and checks the trap ran and its code came back.
fn assert_sigterm_reaches_a_trap(ns: &HostNs, args: &[&str]) {
    let script = "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done";
    let mut all = args.to_vec();
    all.extend(["sh", "-c", script]);
    let (mut child, mut out) = start(ns, &all);
    signal(child.id(), libc::SIGTERM);
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest.trim(), "got-term");
    assert_eq!(status.code(), Some(3));
}

#[test]
fn the_command_starts_with_a_clean_signal_mask_and_gets_sigterm_with_or_without_init() {
    let Some(ns) = HostNs::new(
        "the_command_starts_with_a_clean_signal_mask_and_gets_sigterm_with_or_without_init",
    ) else {
        return;
    };
    for init in ["--init=true", "--init=false"] {
        // Not through a shell: dash clears its mask at startup and would hide it.
        let out = run(&ns, &[init, "grep", "SigBlk", "/proc/self/status"]);
        assert_eq!(stdout(&out), "SigBlk:\t0000000000000000\n", "{init}");
        assert_sigterm_reaches_a_trap(&ns, &[init]);
    }
}

#[test]
fn sigterm_ends_a_plain_command_at_once_unless_it_is_pid_1() {
    let Some(ns) = HostNs::new("sigterm_ends_a_plain_command_at_once_unless_it_is_pid_1") else {
        return;
    };
    let plain = ["sh", "-c", "echo ready; exec sleep 100"];
    let mut args = vec!["--stop-timeout", "600"];
    args.extend(plain);
    let (mut child, _out) = start(&ns, &args);
    signal(child.id(), libc::SIGTERM);
    // Not at once, it would wait out the 600 s stop timeout: the wait's
    // bound is a hang guard, and 143 says the SIGTERM itself ended it.
    let status = wait_at_most(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(143), "killed by the SIGTERM itself");
    // As PID 1, sleep ignores SIGTERM: only the stop timeout's SIGKILL ends it.
    let mut args = vec!["--init=false", "--stop-timeout", "1"];
    args.extend(plain);
    let (mut child, _out) = start(&ns, &args);
    signal(child.id(), libc::SIGTERM);
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(137), "killed after the stop timeout");
}

#[test]
fn the_init_exits_with_the_commands_code_or_128_plus_its_signal() {
    let Some(ns) = HostNs::new("the_init_exits_with_the_commands_code_or_128_plus_its_signal")
    else {
        return;
    };
    let cases: [(&[&str], i32); 4] = [
        (&["true"], 0),
        (&["sh", "-c", "exit 7"], 7),
        (&["/etc/passwd"], 126),
        (&["surely-no-such-command"], 127),
    ];
    for init in ["--init=true", "--init=false"] {
        for (args, code) in cases {
            let mut all = vec![init];
            all.extend(args);
            let out = run(&ns, &all);
            assert_eq!(out.status.code(), Some(code), "{all:?}: {}", stderr(&out));
        }
    }
    let out = run(&ns, &["surely-no-such-command"]);
    assert_eq!(
        stderr(&out),
        "supervisor: surely-no-such-command: command not found\n"
    );
    // A signal from inside cannot kill PID 1: only under the init can the
    // command die of its own SIGKILL.
    let out = run(&ns, &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(137));
}

/// The teardown begins as the command exits, while the init reaps it and
/// exits in turn: never while the command runs, whatever its children do
/// (one ends at once, an orphan the init adopts ends later), and all of it
/// is done, the init reaped and its code known, when `run` returns.
#[test]
fn a_container_keeps_its_ports_while_its_command_runs_and_gives_all_back_before_run_returns() {
    let Some(ns) = HostNs::new(
        "a_container_keeps_its_ports_while_its_command_runs_and_gives_all_back_before_run_returns",
    ) else {
        return;
    };
    for init in ["--init=true", "--init=false"] {
        let script = "true & (sleep 0.1 &); echo ready; read _ || true; exit 5";
        let (mut supervisor, _out) = ns.start(&[init, "-p", "8080:8000", "--", "sh", "-c", script]);
        let published = common::elements(&ns);
        assert!(published > 0, "{init}: nothing published while it runs");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(common::elements(&ns), published, "{init}");
        drop(supervisor.stdin.take());
        let status = wait_at_most(&mut supervisor, Duration::from_secs(10));
        assert_eq!(status.code(), Some(5), "{init}");
        assert_eq!(common::records(&ns), "", "{init}: records left");
        assert_eq!(common::elements(&ns), 0, "{init}: elements left");
    }
    common::assert_no_state(&ns);
}

#[test]
fn a_command_ignoring_sigterm_is_killed_after_the_stop_timeout_with_a_warning_saying_why() {
    let Some(ns) = HostNs::new(
        "a_command_ignoring_sigterm_is_killed_after_the_stop_timeout_with_a_warning_saying_why",
    ) else {
        return;
    };
    let ignoring = "trap '' TERM; echo ready; while :; do sleep 0.05; done";
    let plain = "echo ready; exec sleep 100";
    let cases = [
        (
            "--init=true",
            ignoring,
            "its command handles or ignores SIGTERM without exiting: make it exit on SIGTERM, or give it more time with --stop-timeout SECS",
        ),
        (
            "--init=false",
            plain,
            "with --init=false its command is PID 1, which ignores SIGTERM unless it has a handler: run it without --init=false, or give it more time with --stop-timeout SECS",
        ),
    ];
    for (init, script, why) in cases {
        let mut child = ns
            .supervisor()
            .args(["run", "--network", "none", init, "--stop-timeout", "1"])
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn supervisor");
        let _out = wait_ready(&mut child);
        signal(child.id(), libc::SIGTERM);
        let status = wait_at_most(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(137), "{init}");
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            err.contains(
                "the container did not exit within --stop-timeout (1 s) of SIGTERM: \
                 killing it (SIGKILL); "
            ) && err.contains(why),
            "{init}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn a_second_sigint_kills_at_once() {
    let Some(ns) = HostNs::new("a_second_sigint_kills_at_once") else {
        return;
    };
    // Says each SIGINT it gets, and goes on.
    let script = "trap 'echo got-int' INT; trap '' TERM; echo ready; while :; do sleep 0.05; done";
    let (mut child, out) = start(&ns, &["--stop-timeout", "600", "sh", "-c", script]);
    let (said, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if said.send(line).is_err() {
                break;
            }
        }
    });
    signal(child.id(), libc::SIGINT);
    // The second once the supervisor has taken the first (and forwarded
    // it): both pending at once in its signalfd are one.
    let line = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the container's line within 10 s");
    assert_eq!(line, "got-int", "the first SIGINT forwarded");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        child.try_wait().unwrap().is_none(),
        "one SIGINT must not kill"
    );
    signal(child.id(), libc::SIGINT);
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(137), "killed with SIGKILL");
}

#[test]
fn other_signals_are_forwarded() {
    let Some(ns) = HostNs::new("other_signals_are_forwarded") else {
        return;
    };
    let script = "trap 'echo usr1' USR1; trap 'echo hup; exit 0' HUP; echo ready; \
                  while :; do sleep 0.05; done";
    let (mut child, mut out) = start(&ns, &["sh", "-c", script]);
    signal(child.id(), libc::SIGUSR1);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "usr1");
    signal(child.id(), libc::SIGHUP);
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

/// The IPC namespace is the child's own making (see spawn::child), not
/// clone3's: the init (which `exec` joins) and the command are in it, and
/// it is neither the host's nor another container's.
#[test]
fn a_containers_init_and_command_share_an_ipc_namespace_of_their_own() {
    let Some(ns) = HostNs::new("a_containers_init_and_command_share_an_ipc_namespace_of_their_own")
    else {
        return;
    };
    let script = "echo ready; readlink /proc/self/ns/ipc; read x || true";
    // Both run at once: a namespace's inode number is freed with it, and
    // the next namespace made may get it again (it did, in a full suite).
    let mut seen = Vec::new();
    let mut running = Vec::new();
    for network in ["bridge", "none"] {
        let (child, mut out) = ns.start(&["--network", network, "--", "sh", "-c", script]);
        let mut command = String::new();
        out.read_line(&mut command)
            .expect("the command's namespace");
        let supervisor = child.id();
        let ipc = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap();
        let init = ipc(container_pid(supervisor));
        assert_eq!(command.trim(), init.to_string_lossy(), "{network}");
        assert_ne!(init, ipc(supervisor), "{network}: the host's");
        seen.push(init);
        running.push(child);
    }
    assert_ne!(seen[0], seen[1], "two containers, one IPC namespace");
    for mut child in running {
        drop(child.stdin.take());
        assert!(wait_at_most(&mut child, Duration::from_secs(30)).success());
    }
}

#[test]
fn the_command_is_pid_1_only_with_init_false() {
    let Some(ns) = HostNs::new("the_command_is_pid_1_only_with_init_false") else {
        return;
    };
    let out = run(&ns, &["--init=false", "sh", "-c", "echo $$"]);
    assert_eq!(stdout(&out).trim(), "1");
    let out = run(&ns, &["--init=false", "sh", "-c", "exit 9"]);
    assert_eq!(out.status.code(), Some(9));
}

#[test]
fn by_default_the_command_runs_under_a_minimal_init_as_pid_2() {
    let Some(ns) = HostNs::new("by_default_the_command_runs_under_a_minimal_init_as_pid_2") else {
        return;
    };
    let script = "echo $$; cat /proc/1/comm; ls /proc/1/fd";
    // `--init` alone, docker's spelling, means the default.
    for init in [&[][..], &["--init"], &["--init=true"]] {
        let mut args = init.to_vec();
        args.extend(["sh", "-c", script]);
        let out = run(&ns, &args);
        // The init holds stdio only: nothing of the supervisor's lives on.
        assert_eq!(stdout(&out), "2\nsupervisor-init\n0\n1\n2\n", "{init:?}");
    }
}

#[test]
fn the_container_cannot_read_the_inits_memory_or_the_hosts_environment_in_it() {
    let Some(ns) =
        HostNs::new("the_container_cannot_read_the_inits_memory_or_the_hosts_environment_in_it")
    else {
        return;
    };
    // The init is a copy of the supervisor, whose environment is the host's.
    let out = ns
        .supervisor()
        .env("SV_HOST_SECRET", "hunter2")
        .args(["run", "--network", "none", "--", "sh", "-c"])
        .arg("cat /proc/1/environ; head -c 64 /proc/1/mem; grep -c HOME /proc/self/environ")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = (stdout(&out), stderr(&out));
    assert!(!out.contains("hunter2"), "{out}");
    assert_eq!(out, "1\n", "the command's own environment stays readable");
    assert!(
        err.contains("/proc/1/environ: Permission denied")
            && err.contains("/proc/1/mem' for reading: Permission denied"),
        "{err}"
    );
}

#[test]
fn with_cap_sys_admin_the_inits_environment_reads_empty_not_the_hosts() {
    let Some(ns) =
        HostNs::new("with_cap_sys_admin_the_inits_environment_reads_empty_not_the_hosts")
    else {
        return;
    };
    // Not dumpable stops reading /proc/1/environ, but not with SYS_ADMIN.
    let out = ns
        .supervisor()
        .env("SV_HOST_SECRET", "hunter2")
        .args(["run", "--network", "none", "--cap-add", "SYS_ADMIN"])
        .args(["-e", "SV_HOST_SECRET", "--", "sh", "-c"])
        .arg("tr -d '\\0' < /proc/1/environ; echo \"|$SV_HOST_SECRET\"")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = (stdout(&out), stderr(&out));
    assert_eq!(out, "|hunter2\n", "only the command's own copy: {err}");
}

#[test]
fn hostname_is_the_name_by_default_or_as_given() {
    let Some(ns) = HostNs::new("hostname_is_the_name_by_default_or_as_given") else {
        return;
    };
    assert_eq!(
        stdout(&run(&ns, &["--name", "web", "hostname"])).trim(),
        "web"
    );
    let out = run(&ns, &["--name", "web", "--hostname", "box", "hostname"]);
    assert_eq!(stdout(&out).trim(), "box");
    let out = run(&ns, &["sh", "-c", "hostname; echo $HOSTNAME"]);
    let lines: Vec<_> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines[0].len(), 12, "a short random id: {lines:?}");
    assert_eq!(lines[0], lines[1]);
}

#[test]
fn network_none_has_only_lo_and_it_is_up() {
    let Some(ns) = HostNs::new("network_none_has_only_lo_and_it_is_up") else {
        return;
    };
    // /proc/net/dev lists the interfaces of the reader's network namespace.
    let out = run(
        &ns,
        &[
            "sh",
            "-c",
            "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
        ],
    );
    assert_eq!(stdout(&out).trim(), "lo");
    let out = run(
        &ns,
        &["cat", "/sys/class/net/lo/operstate", "/proc/net/if_inet6"],
    );
    assert!(out.status.success());
    let script = format!(
        "nc -l -p 7000 & {}; echo ping | nc -N 127.0.0.1 7000",
        until_listening(7000)
    );
    let out = run(&ns, &["sh", "-c", &script]);
    assert_eq!(
        stdout(&out).trim(),
        "ping",
        "loopback works: {}",
        stderr(&out)
    );
}

/// lo is up, with 127.0.0.1, the moment the command starts, with a
/// network of its own or none: the thread that makes the container's
/// namespace brings it up, before anything is plumbed, and the container
/// is released only after.
#[test]
fn the_containers_lo_is_up_with_127_0_0_1_the_moment_its_command_starts() {
    let Some(ns) =
        HostNs::new("the_containers_lo_is_up_with_127_0_0_1_the_moment_its_command_starts")
    else {
        return;
    };
    let script = "cat /sys/class/net/lo/flags; ip -o -4 addr show dev lo";
    for network in ["none", "bridge"] {
        let out = ns
            .supervisor()
            .args(["run", "--network", network, "--", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("spawn supervisor");
        assert!(out.status.success(), "{network}: {}", stderr(&out));
        let text = stdout(&out);
        let flags = text.lines().next().unwrap_or_default();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("{network}: lo's flags: {text}"));
        assert_eq!(flags & libc::IFF_UP as u32, 1, "{network}: lo up: {text}");
        assert!(
            text.contains("inet 127.0.0.1/8"),
            "{network}: lo's address: {text}"
        );
    }
}

/// The scheduling policy (field 41 of `stat`) of each line of `stat`
/// output: 0 is SCHED_OTHER, 1 SCHED_FIFO.
fn policies(stats: &str) -> Vec<u32> {
    stats
        .lines()
        .map(|line| {
            let fields = line.rsplit_once(')').expect("comm in parentheses").1;
            // Fields from the third (state) on: policy is the 41st.
            fields
                .split_whitespace()
                .nth(41 - 3)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// The supervisor and the container make themselves real-time on the way
/// to the command's start (see realtime.rs): neither the init nor the
/// command, nor what the command starts, may keep it.
#[test]
fn neither_the_containers_init_nor_its_command_is_real_time() {
    let Some(ns) = HostNs::new("neither_the_containers_init_nor_its_command_is_real_time") else {
        return;
    };
    let script = "cat /proc/1/stat /proc/$$/stat /proc/self/stat";
    for init in ["--init=true", "--init=false"] {
        let out = run(&ns, &[init, "sh", "-c", script]);
        assert!(out.status.success(), "{init}: {}", stderr(&out));
        assert_eq!(policies(&stdout(&out)), [0, 0, 0], "{init}");
    }
}

#[test]
fn the_supervisor_is_ordinary_again_once_its_container_runs() {
    let Some(ns) = HostNs::new("the_supervisor_is_ordinary_again_once_its_container_runs") else {
        return;
    };
    let (mut child, _out) = start(&ns, &["sh", "-c", "echo ready; sleep 30"]);
    let tasks = format!("/proc/{}/task", child.id());
    let mut stats = String::new();
    for task in std::fs::read_dir(&tasks).expect("read its tasks") {
        let stat = task.expect("a task").path().join("stat");
        stats += &std::fs::read_to_string(stat).expect("read a task's stat");
    }
    let _ = child.kill();
    let _ = child.wait();
    let policies = policies(&stats);
    assert!(!policies.is_empty());
    assert!(policies.iter().all(|&p| p == 0), "{policies:?}");
}

#[test]
fn the_container_has_dockers_default_capabilities_and_no_new_privs() {
    let Some(ns) = HostNs::new("the_container_has_dockers_default_capabilities_and_no_new_privs")
    else {
        return;
    };
    let out = run(
        &ns,
        &["grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status"],
    );
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    let docker = "00000000a80425fb";
    let expected = format!(
        "CapInh:\t{docker}\nCapPrm:\t{docker}\nCapEff:\t{docker}\nCapBnd:\t{docker}\n\
         CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n"
    );
    assert_eq!(stdout(&out), expected);
}

#[test]
fn no_descriptor_above_2_leaks_into_the_container() {
    let Some(ns) = HostNs::new("no_descriptor_above_2_leaks_into_the_container") else {
        return;
    };
    let file = std::fs::File::open("/dev/null").unwrap();
    // On a bridge too, where the supervisor holds more at clone3: the
    // container's namespace, and a procfs instance of the host's pid
    // namespace (netlink::procfs), which would show the container every
    // host process.
    for network in ["none", "bridge"] {
        let mut cmd = ns.supervisor();
        cmd.args(["run", "--network", network, "sh", "-c", "ls /proc/$$/fd"]);
        let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: dup2 in the forked child before exec, no allocation.
        unsafe {
            cmd.pre_exec(move || {
                // A descriptor without CLOEXEC, as a careless parent would leave.
                if libc::dup2(raw, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert_eq!(
            stdout(&out).split_whitespace().collect::<Vec<_>>(),
            ["0", "1", "2"],
            "--network {network}"
        );
    }
}

#[test]
fn killing_the_supervisor_leaves_no_container_process() {
    let Some(ns) = HostNs::new("killing_the_supervisor_leaves_no_container_process") else {
        return;
    };
    let (mut child, _out) = start(&ns, &["sh", "-c", "echo ready; exec sleep 100"]);
    let pid = container_pid(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Gone, or a zombie waiting for whichever PID 1 adopted it.
    while process_state(pid).is_some_and(|state| state != 'Z') {
        assert!(
            Instant::now() < deadline,
            "container {pid} outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process's state letter (R, S, Z, …), None once it is gone.
fn process_state(pid: impl std::fmt::Display) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// The states of the children of the container's PID 1, as the host sees
/// them.
fn children_of(pid1: u32) -> Vec<Option<char>> {
    let children =
        std::fs::read_to_string(format!("/proc/{pid1}/task/{pid1}/children")).unwrap_or_default();
    children.split_whitespace().map(process_state).collect()
}

#[test]
fn init_reaps_an_orphaned_grandchild() {
    let Some(ns) = HostNs::new("init_reaps_an_orphaned_grandchild") else {
        return;
    };
    // The inner sh exits at once, orphaning `sleep 0.1`, which re-parents to
    // PID 1 (before "ready") and exits. `exec sleep` makes sure the command
    // never reaps it. Without init it stays a zombie under PID 1, the
    // command itself; init reaps it, and keeps only the command as its
    // child. Waited for: the orphan's 0.1 s can take longer on a busy
    // machine.
    let script = "sh -c 'sleep 0.1 &'; echo ready; exec sleep 100";
    type End = fn(&[Option<char>]) -> bool;
    let zombie: End = |children| children == [Some('Z')];
    let reaped: End = |children| children.len() == 1 && children[0] != Some('Z');
    for (init, end) in [("--init=false", zombie), ("--init=true", reaped)] {
        let mut args = vec![init];
        args.extend(["sh", "-c", script]);
        let (mut child, _out) = start(&ns, &args);
        let pid1 = container_pid(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !end(&children_of(pid1)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let children = children_of(pid1);
        signal(pid1, libc::SIGKILL);
        child.wait().unwrap();
        assert!(end(&children), "init={init}: PID 1's children {children:?}");
    }
}

#[test]
fn a_bad_option_is_refused_with_exit_125_naming_it_and_creates_nothing() {
    let Some(ns) =
        HostNs::new("a_bad_option_is_refused_with_exit_125_naming_it_and_creates_nothing")
    else {
        return;
    };
    let before = ns.ok("ip -br link; ls -A /run");
    for (args, named) in [
        (&["--name", "a b", "true"][..], "a b"),
        (
            &["--stop-timeout", "soon", "true"],
            "'soon' for '--stop-timeout <SECS>'",
        ),
        (&["--env", "=x", "true"], "=x"),
        (&["--workdir", "relative", "true"], "relative"),
        (&["--init=maybe", "true"], "'maybe' for '--init[=<BOOL>]'"),
        (&["--hostname", "a b", "true"], "a b"),
        (&["--no-such-flag", "true"], "'--no-such-flag'"),
        // docker's -v: never verbosity, never the command; a mount point
        // missing on the host's read-only tree is named.
        (
            &["-v", "/tmp:/surely-not-here", "true"],
            "invalid --volume \"/tmp:/surely-not-here\": /surely-not-here: No such file",
        ),
    ] {
        let out = run(&ns, args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let err = stderr(&out);
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with("supervisor: "), "{err}");
        assert!(first.contains(named), "{args:?}: {err}");
        assert!(err.lines().all(|l| !l.trim().is_empty()), "{err}");
    }
    assert_eq!(ns.ok("ip -br link; ls -A /run"), before);
}

#[test]
fn usage_errors_keep_the_missing_argument_the_tip_and_the_allowed_values() {
    let Some(ns) =
        HostNs::new("usage_errors_keep_the_missing_argument_the_tip_and_the_allowed_values")
    else {
        return;
    };
    let lines = |args: &[&str]| -> Vec<String> {
        let out = common::run(ns.supervisor().args(args));
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        stderr(&out).lines().map(String::from).collect()
    };
    assert_eq!(
        lines(&["run"])[0],
        "supervisor: the following required arguments were not provided: <CMD>..."
    );
    assert_eq!(
        lines(&["stop"])[0],
        "supervisor: the following required arguments were not provided: <NAME|ID>..."
    );
    let misspelt = lines(&["run", "--nam", "web", "true"]);
    assert_eq!(misspelt[0], "supervisor: unexpected argument '--nam' found");
    assert_eq!(misspelt[1], "tip: a similar argument exists: '--name'");
    assert_eq!(
        lines(&["run", "--network", "host", "true"])[0],
        "supervisor: invalid value 'host' for '--network <MODE>': expected bridge, none or container:NAME"
    );
    let volume = lines(&["run", "-v", "/tmp:/data:rx", "true"]);
    assert_eq!(
        volume[0],
        "supervisor: invalid --volume \"/tmp:/data:rx\": unknown option \"rx\": expected ro or rw"
    );
}

#[test]
fn missing_privileges_are_named_and_exit_125() {
    let Some(ns) = HostNs::new("missing_privileges_are_named_and_exit_125") else {
        return;
    };
    let out = ns
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(common::SUPERVISOR)
        .args(["run", "--network", "none", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out).trim(),
        "supervisor: missing capabilities CAP_SYS_ADMIN, CAP_SETPCAP, CAP_NET_ADMIN: run as root"
    );
}

#[test]
fn stdio_passes_through_and_logs_stay_on_stderr() {
    let Some(ns) = HostNs::new("stdio_passes_through_and_logs_stay_on_stderr") else {
        return;
    };
    let mut child = ns
        .supervisor()
        .args([
            "--verbose",
            "run",
            "--network",
            "none",
            "sh",
            "-c",
            "cat; echo err >&2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "hello\nworld\n");
    let err = stderr(&out);
    assert!(err.contains("err\n"), "{err}");
    assert!(
        err.contains("clone3:") && err.contains(" us"),
        "phases logged: {err}"
    );
    let out = run(&ns, &["--log-level", "debug", "true"]);
    assert!(stderr(&out).contains("clone3:"), "{}", stderr(&out));
    let out = run(&ns, &["true"]);
    assert_eq!(stderr(&out), "", "quiet by default");
}

#[test]
fn env_and_workdir_reach_the_command() {
    let Some(ns) = HostNs::new("env_and_workdir_reach_the_command") else {
        return;
    };
    let out = run(
        &ns,
        &[
            "-e",
            "A=1",
            "--env",
            "B=x=y",
            "-w",
            "/tmp",
            "sh",
            "-c",
            "echo $A $B $PWD $HOME",
        ],
    );
    assert_eq!(stdout(&out).trim(), "1 x=y /tmp /root");
}

#[test]
fn an_interactive_shell_on_a_terminal_survives_ctrl_c_and_exits_with_its_code() {
    let Some(ns) =
        HostNs::new("an_interactive_shell_on_a_terminal_survives_ctrl_c_and_exits_with_its_code")
    else {
        return;
    };
    let mut cmd = ns.supervisor();
    cmd.args([
        "run",
        "--network",
        "none",
        "--",
        "bash",
        "--norc",
        "--noprofile",
        "-i",
    ]);
    let mut term = common::terminal::Terminal::start(cmd);
    term.type_in(b"sleep 100\n");
    // Ctrl-C once `sleep` is the terminal's foreground job, as a user
    // sees it run: sooner, it can reach the terminal before the shell has
    // taken it, and the run ends (a fixed 300 ms stood for the wait).
    common::eventually(
        "sleep in the terminal's foreground",
        Duration::from_secs(10),
        || {
            let comm = std::fs::read_to_string(format!("/proc/{}/comm", term.foreground())).ok()?;
            (comm.trim() == "sleep").then_some(())
        },
    );
    term.type_in(b"\x03");
    term.type_in(b"echo alive $((40+2))\n");
    term.expect("alive 42");
    term.type_in(b"exit 5\n");
    let status = wait_at_most(&mut term.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(5));
}

/// `run -- true` stopped once its address is leased and its container
/// cloned, before any veth exists; and the container's pid.
fn stopped_at_leased(ns: &HostNs) -> (Child, u32) {
    let supervisor = ns
        .supervisor()
        .env("SUPERVISOR_TEST_PAUSE_AT", "leased")
        .args(["run", "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let pid = supervisor.id();
    common::eventually(
        "the supervisor stopping at leased",
        Duration::from_secs(10),
        || (common::process_state(pid) == Some('T')).then_some(()),
    );
    (supervisor, container_pid(pid))
}

/// The container mounts its /proc, /sys, /dev and /etc files and drops its
/// capabilities while the supervisor prepares and plumbs its network,
/// rather than after: stopped once the address is leased, before any veth
/// exists, the supervisor finds it set up already, waiting only to exec.
/// (Its /etc files are bound empty and filled in before it execs.)
#[test]
fn a_container_sets_itself_up_before_its_network_is_plumbed() {
    let Some(ns) = HostNs::new("a_container_sets_itself_up_before_its_network_is_plumbed") else {
        return;
    };
    let (mut supervisor, container) = stopped_at_leased(&ns);
    let pid = supervisor.id();
    let set_up = || {
        let mounts = std::fs::read_to_string(format!("/proc/{container}/mountinfo")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{container}/status")).ok()?;
        let bounding = status
            .lines()
            .find(|l| l.starts_with("CapBnd:"))?
            .to_string();
        let hostname = mounts.lines().any(|l| l.contains(" /etc/hostname "));
        (hostname && !bounding.ends_with("ffffffffff")).then_some(bounding)
    };
    common::eventually(
        "the container setting itself up",
        Duration::from_secs(10),
        set_up,
    );
    signal(pid, libc::SIGCONT);
    let status = wait_at_most(&mut supervisor, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

/// Everything but the exec happens before the network is complete: stopped
/// once the address is leased, before any veth exists, the supervisor finds
/// its container already under its seccomp filter, with every signal
/// blocked (the init's) and named as the init, so that releasing it costs
/// only the wait's read and starting the command. The filter alone takes
/// the kernel 0.2 ms to check and compile.
#[test]
fn a_container_is_under_its_seccomp_filter_before_its_network_is_plumbed() {
    let Some(ns) =
        HostNs::new("a_container_is_under_its_seccomp_filter_before_its_network_is_plumbed")
    else {
        return;
    };
    let (mut supervisor, container) = stopped_at_leased(&ns);
    let pid = supervisor.id();
    let field = |status: &str, name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        Some(line[name.len()..].trim().to_string())
    };
    // Its filters, then its name: the terminal guard's filter is in before
    // the main one and the init's name, so "Seccomp: 2" alone was read
    // once with the name still the supervisor's (a full suite's run).
    let confined = common::eventually(
        "the container installing its filters and becoming the init",
        Duration::from_secs(10),
        || {
            let status = std::fs::read_to_string(format!("/proc/{container}/status")).ok()?;
            let seccomp = field(&status, "Seccomp:")?;
            let name = field(&status, "Name:")?;
            (seccomp == "2" && name == "supervisor-init").then_some(status)
        },
    );
    let blocked = field(&confined, "SigBlk:").expect("SigBlk");
    let blocked = u64::from_str_radix(&blocked, 16).expect("a hex mask");
    // The supervisor blocks the signals it forwards, not SIGCHLD. An init
    // already waiting for signals (rt_sigtimedwait, 128) shows them
    // unblocked for the wait, which takes each one: none is delivered, and
    // so none is lost.
    let syscall = std::fs::read_to_string(format!("/proc/{container}/syscall")).unwrap_or_default();
    let waiting = syscall.split_whitespace().next() == Some("128");
    assert!(
        waiting || blocked & (1 << (libc::SIGCHLD - 1)) != 0,
        "{confined}"
    );
    assert_eq!(
        field(&confined, "Name:").as_deref(),
        Some("supervisor-init")
    );
    assert!(
        !ns.ok("ip -br link").contains("sv-"),
        "no veth yet: the supervisor is stopped before plumbing"
    );
    signal(pid, libc::SIGCONT);
    let status = wait_at_most(&mut supervisor, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

/// The network namespace made apart from clone3 (on its own thread, while
/// the run goes on) is the one the container runs in, and the one
/// `netns()` hands to the plumbing; until it reaches the child there is
/// none to hand, never the supervisor's own.
#[test]
fn a_container_runs_in_the_network_namespace_made_apart_and_plumbed() {
    use std::os::unix::fs::MetadataExt;
    use supervisor::spawn::{Container, NewNetns};
    let test = "a_container_runs_in_the_network_namespace_made_apart_and_plumbed";
    if !common::privileged(test) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = common::spawn_config();
    let (netns, _set_up) = NewNetns::start(|| ()).unwrap();
    let mut container = Container::spawn_into(&config, netns).unwrap();
    assert!(container.netns().is_err(), "no namespace before it is made");
    runtime.block_on(container.begin_setup()).unwrap();
    let plumbed = container.netns().unwrap().metadata().unwrap().ino();
    let ours = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert_ne!(plumbed, ours);
    let pid = container.pid();
    common::eventually("the container entering it", Duration::from_secs(10), || {
        let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
        (link.to_str()? == format!("net:[{plumbed}]")).then_some(())
    });
    runtime.block_on(async {
        container.release().await.unwrap();
        let status = container.pidfd().wait().await.unwrap();
        assert_eq!(status.code(), 0);
    });
}

/// The init starts its command before the release too: stopped once the
/// address is leased, before any veth exists, the supervisor finds the
/// command's process there already, waiting (not exec'd yet), so that
/// releasing it leaves only the exec.
#[test]
fn the_command_is_started_and_waits_for_the_release_before_the_network_is_plumbed() {
    let Some(ns) = HostNs::new(
        "the_command_is_started_and_waits_for_the_release_before_the_network_is_plumbed",
    ) else {
        return;
    };
    let (mut supervisor, init) = stopped_at_leased(&ns);
    let waiting = common::eventually("the command started", Duration::from_secs(10), || {
        let children =
            std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).ok()?;
        let command = children.split_whitespace().next()?.to_string();
        let comm = std::fs::read_to_string(format!("/proc/{command}/comm")).ok()?;
        Some((command, comm))
    });
    assert_eq!(waiting.1.trim(), "supervisor-init", "not exec'd yet");
    assert!(!ns.ok("ip -br link").contains("sv-"), "no veth yet");
    signal(supervisor.id(), libc::SIGCONT);
    let status = wait_at_most(&mut supervisor, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

/// glibc's setresuid, setresgid and setgroups change every thread of the
/// process: they take the lock of glibc's thread list and wait for any
/// thread being created. A child made by clone3 inherits that list and
/// lock as they were, without the threads: cloned while another thread of
/// the supervisor was starting or ending (it makes the network namespace
/// on one), a `--user` container waited forever. The child changes its
/// ids with the raw syscalls, which concern it alone.
#[test]
fn a_container_with_a_user_starts_while_its_parent_starts_and_ends_threads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use supervisor::spawn::{Container, Ids};
    let test = "a_container_with_a_user_starts_while_its_parent_starts_and_ends_threads";
    if !common::privileged(test) {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::spawn(|| {}).join().unwrap();
            }
        })
    };
    let mut config = common::spawn_config();
    config.user = Some(Ids {
        uid: 4242,
        gid: 4242,
        groups: vec![4243],
    });
    let mut hung = 0;
    for _ in 0..40 {
        let mut container = Container::spawn(&config).unwrap();
        let pid = container.pid();
        let outcome = runtime.block_on(async {
            let limit = Duration::from_secs(5);
            container.begin_setup().await.unwrap();
            tokio::time::timeout(limit, container.release())
                .await?
                .unwrap();
            let status = tokio::time::timeout(limit, container.pidfd().wait()).await?;
            Ok::<_, tokio::time::error::Elapsed>(status.unwrap().code())
        });
        match outcome {
            Ok(code) => assert_eq!(code, 0),
            Err(_) => {
                hung += 1;
                signal(pid as u32, libc::SIGKILL);
                let _ = runtime.block_on(container.pidfd().wait());
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert_eq!(hung, 0, "containers hung changing their ids");
}

#[test]
fn before_its_command_is_released_the_init_already_waits_holding_stdio_only() {
    let Some(ns) =
        HostNs::new("before_its_command_is_released_the_init_already_waits_holding_stdio_only")
    else {
        return;
    };
    // Once released, the command's exec alone should end the supervisor's
    // wait: the init has let go of the report pipe and the release channel
    // before, so that path never waits for the init to wake.
    let mut child = common::background(
        ns.supervisor()
            .env("SUPERVISOR_TEST_PAUSE_AT", "recorded")
            .args(["run", "--network", "none", "--", "true"]),
    );
    let pid = child.id();
    common::eventually(
        "the supervisor stopping before the release",
        Duration::from_secs(30),
        || (common::process_state(pid) == Some('T')).then_some(()),
    );
    let init = container_pid(pid);
    let fds = || {
        let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{init}/fd"))
            .expect("the init's descriptors")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        fds.sort();
        fds
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds() != ["0", "1", "2"] {
        assert!(
            Instant::now() < deadline,
            "the init still holds {:?} while its command waits for the release",
            fds()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, libc::SIGCONT);
    let status = wait_at_most(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{status}");
}
