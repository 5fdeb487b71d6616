//! `supervisor exec`, end to end: a command inside a running container,
//! each test in its own throwaway host (see common/mod.rs).

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::{HostNs, UNTIL_STDIN_CLOSES, crash_at, stderr, stdout, stop};

fn run_args<'a>(options: &[&'a str]) -> Vec<&'a str> {
    let mut all = options.to_vec();
    all.push("--");
    all.extend_from_slice(UNTIL_STDIN_CLOSES);
    all
}

/// `supervisor exec ARGS…` in `ns`, stdin null.
fn exec(ns: &HostNs, args: &[&str]) -> Output {
    ns.supervisor()
        .arg("exec")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn supervisor exec")
}

/// `exec NAME sh -c SCRIPT`, which must exit 0; its stdout.
fn exec_sh(ns: &HostNs, options: &[&str], script: &str) -> String {
    let mut args = options.to_vec();
    args.extend_from_slice(&["sh", "-c", script]);
    let out = exec(ns, &args);
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn exec_sees_the_containers_eth0_with_its_address_and_its_hostname() {
    let Some(ns) = HostNs::new("exec_sees_the_containers_eth0_with_its_address_and_its_hostname")
    else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&[
        "--name",
        "web",
        "--hostname",
        "box",
        "--ip",
        "172.16.0.9",
    ]));
    let seen = exec_sh(&ns, &["web"], "hostname; ip -4 -o addr show eth0");
    let mut lines = seen.lines();
    assert_eq!(lines.next(), Some("box"));
    assert!(
        lines.next().is_some_and(|l| l.contains("172.16.0.9/24")),
        "{seen}"
    );
    stop(web);
}

#[test]
fn exec_exits_with_the_commands_code_and_126_or_127_naming_a_command_that_cannot_run_and_125_for_an_empty_name()
 {
    let Some(ns) = HostNs::new(
        "exec_exits_with_the_commands_code_and_126_or_127_naming_a_command_that_cannot_run_and_125_for_an_empty_name",
    ) else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&["--name", "web"]));
    assert_eq!(exec(&ns, &["web", "true"]).status.code(), Some(0));
    assert_eq!(
        exec(&ns, &["web", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    let out = exec(&ns, &["web", "/etc"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(
        stderr(&out).starts_with("supervisor: /etc: cannot execute"),
        "{}",
        stderr(&out)
    );
    let out = exec(&ns, &["web", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        stderr(&out),
        "supervisor: no-such-command: command not found\n"
    );
    let out = exec(&ns, &["web", ""]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (
            Some(125),
            "supervisor: invalid command \"\": the program name is empty\n"
        )
    );
    stop(web);
}

#[test]
fn exec_takes_the_containers_env_and_env_workdir_and_user_options() {
    let Some(ns) = HostNs::new("exec_takes_the_containers_env_and_env_workdir_and_user_options")
    else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&["--name", "web", "-e", "FROM_RUN=1"]));
    let script = r#"echo "$FROM_RUN $FROM_EXEC"; pwd; id -un"#;
    assert_eq!(exec_sh(&ns, &["web"], script), "1 \n/\nroot\n");
    assert_eq!(
        exec_sh(
            &ns,
            &["-e", "FROM_EXEC=2", "-w", "/tmp", "-u", "nobody", "web"],
            script
        ),
        "1 2\n/tmp\nnobody\n"
    );
    let out = exec(&ns, &["-u", "no-such-user", "web", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("no-such-user"), "{}", stderr(&out));
    // A directory the container lacks is named, on one line.
    let out = exec(&ns, &["-w", "/no/such/dir", "web", "true"]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (
            Some(125),
            "supervisor: container setup failed while changing to the working directory \
             \"/no/such/dir\": No such file or directory (os error 2)\n"
        )
    );
    stop(web);
}

#[test]
fn exec_into_an_unknown_or_a_stopped_container_fails_naming_it() {
    let Some(ns) = HostNs::new("exec_into_an_unknown_or_a_stopped_container_fails_naming_it")
    else {
        return;
    };
    let out = exec(&ns, &["ghost", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "supervisor: no such container: ghost\n");
    // Its supervisor killed while it ran: the record is left, the container
    // is gone.
    crash_at(&ns, "running", &["--name", "dead", "--", "sleep", "1000"]);
    let out = exec(&ns, &["dead", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "supervisor: container dead is not running\n");
}

#[test]
fn exec_runs_in_the_containers_pid_namespace_and_cannot_see_the_hosts_processes() {
    let Some(ns) =
        HostNs::new("exec_runs_in_the_containers_pid_namespace_and_cannot_see_the_hosts_processes")
    else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&["--name", "web"]));
    // The host's supervisor of `web` is a process the container must not see.
    let host_pid = web.id();
    let seen = exec_sh(
        &ns,
        &["web"],
        "read pid _ < /proc/self/stat; echo $$ $pid; for p in /proc/[0-9]*; do cat $p/comm; done",
    );
    let mut lines = seen.lines();
    // The container's /proc knows the process by the pid it has in the
    // container's namespace: only a process inside that namespace.
    let first = lines.next().unwrap_or_default();
    let (own, in_proc) = first.split_once(' ').unwrap_or_else(|| {
        panic!("/proc/self does not resolve: not in the container's pid namespace: {first:?}")
    });
    assert_eq!(own, in_proc, "$$ is the pid in the container's /proc");
    let names: Vec<&str> = lines.collect();
    assert!(names.contains(&"supervisor-init"), "{names:?}");
    assert!(!names.contains(&"supervisor"), "{names:?}");
    let out = exec(&ns, &["web", "test", "-e", &format!("/proc/{host_pid}")]);
    assert_eq!(out.status.code(), Some(1), "the host's pid is not there");
    stop(web);
}

#[test]
fn exec_applies_the_containers_seccomp_filter() {
    let Some(ns) = HostNs::new("exec_applies_the_containers_seccomp_filter") else {
        return;
    };
    // The attack: a new user namespace, which gives its creator every
    // capability inside it. docker's profile refuses it without SYS_ADMIN.
    let (confined, _out) = ns.start(&run_args(&["--name", "confined"]));
    let out = exec(&ns, &["confined", "unshare", "-U", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    stop(confined);
    // The same attack succeeds with the filter turned off: it is the
    // filter that refuses it, not a missing capability.
    let (open, _out) = ns.start(&run_args(&[
        "--name",
        "open",
        "--security-opt",
        "seccomp=unconfined",
    ]));
    let out = exec(&ns, &["open", "unshare", "-U", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stop(open);
}

#[test]
fn exec_keeps_the_containers_capabilities() {
    let Some(ns) = HostNs::new("exec_keeps_the_containers_capabilities") else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&["--name", "web", "--cap-drop", "ALL"]));
    let caps = exec_sh(
        &ns,
        &["web"],
        "grep -E '^Cap(Eff|Bnd|Amb)' /proc/self/status",
    );
    assert_eq!(
        caps,
        "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\n"
    );
    let no_new_privs = exec_sh(&ns, &["web"], "grep NoNewPrivs /proc/self/status");
    assert_eq!(no_new_privs, "NoNewPrivs:\t1\n");
    stop(web);
}

#[test]
fn exec_without_a_terminal_passes_term_int_and_hup_on_to_its_command() {
    let Some(ns) = HostNs::new("exec_without_a_terminal_passes_term_int_and_hup_on_to_its_command")
    else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&["--name", "web"]));
    for (signal, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
    ] {
        let script = format!(
            "trap 'echo got {name}; exit 3' {name}; echo ready; while :; do sleep 0.05; done"
        );
        let mut child = ns
            .supervisor()
            .args(["exec", "web", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn supervisor exec");
        let mut out = common::wait_ready(&mut child);
        // SAFETY: kill on our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, signal) };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).expect("read exec's stdout");
        let status = child.wait().expect("wait exec");
        assert_eq!(
            (rest.as_str(), status.code()),
            (format!("got {name}\n").as_str(), Some(3)),
            "SIG{name}: {status}"
        );
    }
    stop(web);
}

#[test]
fn exec_it_gives_an_interactive_shell_the_terminal_and_exits_with_its_code() {
    let Some(ns) =
        HostNs::new("exec_it_gives_an_interactive_shell_the_terminal_and_exits_with_its_code")
    else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&["--name", "web"]));
    let shell = || {
        let mut cmd = ns.supervisor();
        cmd.args(["exec", "-it", "web", "sh"]);
        common::terminal::Terminal::start(cmd)
    };
    let exit_code = |term: &mut common::terminal::Terminal| {
        common::eventually("exec's exit", std::time::Duration::from_secs(10), || {
            term.child.try_wait().expect("try_wait")
        })
        .code()
    };
    let mut term = shell();
    term.type_in(b"echo $((6*7))\n");
    term.expect("42");
    // Ctrl-D at an empty prompt: end of input.
    term.type_in(b"\x04");
    assert_eq!(exit_code(&mut term), Some(0));
    let mut term = shell();
    term.type_in(b"exit 5\n");
    assert_eq!(exit_code(&mut term), Some(5));
    stop(web);
}

#[test]
fn exec_installs_the_program_run_compiled_and_compiles_it_again_when_that_is_gone() {
    let Some(ns) = HostNs::new(
        "exec_installs_the_program_run_compiled_and_compiles_it_again_when_that_is_gone",
    ) else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&["--name", "web"]));
    // The record names the program: exec does not build docker's profile
    // again to find it (most of its own time).
    let record = ns.ok("cat /run/supervisor/containers/web.json");
    let record: serde_json::Value = serde_json::from_str(&record).expect("a record");
    let program = record["exec"]["seccomp_program"]
        .as_str()
        .unwrap_or_else(|| panic!("no program in the record: {record}"))
        .to_string();
    ns.ok(&format!("test -s {program}"));
    let unshare = || exec(&ns, &["web", "unshare", "-U", "true"]).status.code();
    assert_eq!(unshare(), Some(1), "confined by the recorded program");
    ns.ok(&format!("rm {program}"));
    assert_eq!(
        unshare(),
        Some(1),
        "confined by the profile, compiled again"
    );
    stop(web);
}

#[test]
fn exec_on_the_users_terminal_cannot_type_into_it() {
    let Some(ns) = HostNs::new("exec_on_the_users_terminal_cannot_type_into_it") else {
        return;
    };
    let (web, _out) = ns.start(&run_args(&["--name", "web"]));
    // With -t or without, the terminal exec runs on is the user's.
    for tty in [&["-it"][..], &["-i"][..]] {
        let mut cmd = ns.supervisor();
        let script = common::terminal::TYPE_INTO_THE_TERMINAL;
        cmd.arg("exec").args(tty).args(["web", "sh", "-c", script]);
        let seen = common::terminal::Terminal::start(cmd).output_at_the_end();
        assert!(seen.contains("typing refused"), "{tty:?}: {seen:?}");
    }
    stop(web);
}

/// Watches the container's processes for one whose executable is the
/// supervisor's (an exec on its way in, before its command's exec) and
/// opens it, as the runc exploit (CVE-2019-5736) did to overwrite the
/// host's binary once it exits; prints "caught PATH", or "never" once
/// /tmp/done exists.
const WATCH_FOR_THE_SUPERVISORS_BINARY: &str = r#"
import os, sys
done = sys.argv[1] if len(sys.argv) > 1 else "/tmp/done"
print("ready", flush=True)
while not os.path.exists(done):
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in (1, os.getpid()):
            continue
        try:
            fd = os.open(f"/proc/{p}/exe", os.O_RDONLY)
        except OSError:
            continue
        target = os.readlink(f"/proc/self/fd/{fd}")
        os.close(fd)
        if "supervisor" in target:
            print("caught", target, flush=True)
            raise SystemExit
print("never", flush=True)
"#;

#[test]
fn a_container_never_reaches_the_supervisors_binary_through_an_exec_on_its_way_in() {
    let Some(ns) = HostNs::new(
        "a_container_never_reaches_the_supervisors_binary_through_an_exec_on_its_way_in",
    ) else {
        return;
    };
    let watch = ["python3", "-c", WATCH_FOR_THE_SUPERVISORS_BINARY];
    let (web, mut out) = ns.start(&[&["--name", "web", "--"][..], &watch].concat());
    for _ in 0..200 {
        exec(&ns, &["web", "true"]);
    }
    exec(&ns, &["web", "touch", "/tmp/done"]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "never\n");
    stop(web);
}

#[test]
fn a_container_run_without_its_init_never_exposes_the_supervisors_binary_before_its_exec() {
    let Some(ns) = HostNs::new(
        "a_container_run_without_its_init_never_exposes_the_supervisors_binary_before_its_exec",
    ) else {
        return;
    };
    // Every capability but CAP_SYS_PTRACE: at least the container's, so
    // only a PID 1 that is not dumpable keeps it out (as it keeps out root
    // in the container, or an exec on its way in, once its pid is known).
    let mut watcher = ns
        .command("setpriv")
        .args(["--bounding-set", "-sys_ptrace", "--", "python3", "-c"])
        .args([WATCH_FOR_THE_SUPERVISORS_BINARY, "/run/done"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn watcher");
    let mut out = common::wait_ready(&mut watcher);
    for _ in 0..100 {
        let run = ns.run(&["--init=false", "--", "true"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    ns.ok("touch /run/done");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "never\n");
    assert!(watcher.wait().unwrap().success());
}

#[test]
fn exec_refuses_a_container_still_starting_and_never_runs_in_the_hosts_tree() {
    let Some(ns) =
        HostNs::new("exec_refuses_a_container_still_starting_and_never_runs_in_the_hosts_tree")
    else {
        return;
    };
    // A rootfs without the directory it is made in: a command that finds
    // that directory runs in the host's tree, not the container's.
    let rootfs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("exec-starting-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&rootfs);
    std::fs::create_dir_all(rootfs.join("bin")).expect("the rootfs's bin");
    std::fs::create_dir_all(rootfs.join("etc")).expect("the rootfs's etc");
    common::copy_executable("/bin/busybox", &rootfs.join("bin/busybox"));
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).expect("bin/sh");
    let root = rootfs.to_str().expect("a UTF-8 path");
    // Its child held before it pivots into the rootfs (a FIFO: it cannot
    // stop itself), while its record already names its process.
    let fifo = rootfs.with_extension("fifo");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let mut starting = ns
        .supervisor()
        .env(
            "SUPERVISOR_TEST_PAUSE_AT",
            format!("root-bound:{}", fifo.display()),
        )
        .args(["run", "--name", "web", "--rootfs", root, "--"])
        .args(UNTIL_STDIN_CLOSES)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let held = common::eventually("the child at root-bound", Duration::from_secs(30), || {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .ok()
    });
    common::eventually("its process recorded", Duration::from_secs(30), || {
        let ps = stdout(&common::supervisor(&ns, &["ps", "--json"]));
        let list: serde_json::Value = serde_json::from_str(&ps).ok()?;
        list.get(0)?.get("container_pid")?.as_u64()
    });
    let ps = stdout(&common::supervisor(&ns, &["ps", "--json"]));
    assert!(ps.contains(r#""status": "starting""#), "{ps}");
    let ps = stdout(&common::supervisor(
        &ns,
        &["ps", "-a", "--format", "{{.Status}}"],
    ));
    assert_eq!(ps, "Starting\n");
    let script = format!("test -e {root} && echo in the host\\'s tree");
    let out = exec(&ns, &["web", "sh", "-c", &script]);
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (
            Some(125),
            String::new(),
            "supervisor: web is still starting\n".to_string()
        )
    );
    // Released, the same exec runs in the container's tree.
    drop(held);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(starting.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the container's first line");
    assert_eq!(line, "ready\n");
    common::eventually("ps saying it runs", Duration::from_secs(30), || {
        let ps = stdout(&common::supervisor(&ns, &["ps", "--json"]));
        ps.contains(r#""status": "running""#).then_some(())
    });
    let out = exec(&ns, &["web", "sh", "-c", &format!("{script}; true")]);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), String::new()),
        "{}",
        stderr(&out)
    );
    stop(starting);
    let _ = std::fs::remove_dir_all(&rootfs);
    let _ = std::fs::remove_file(&fifo);
}
