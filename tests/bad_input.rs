//! What a user types wrong, or an attacker types on purpose, on `run`'s
//! command line: refused with one clear line naming the option and the
//! value, exit 125, and nothing changed in the system (the ruleset, links,
//! addresses, routes and every file under /run).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use common::{HostNs, stderr, stdout};

/// Everything a run could change.
fn system(ns: &HostNs) -> String {
    ns.ok("nft list ruleset; ip link; ip addr; ip route; \
         cat /proc/sys/net/ipv4/ip_forward; find /run | sort")
}

/// `supervisor ARGS…` in `ns`: its exit code and stderr, asserted to be a
/// refusal of one line (what clap adds after it is usage, not the reason).
fn refused(ns: &HostNs, args: &[&OsStr]) -> String {
    let out = common::run(ns.supervisor().args(args));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
    err.lines().next().unwrap_or_default().to_string()
}

#[test]
fn bad_global_network_options_are_refused_in_every_network_mode_and_change_nothing() {
    let Some(ns) = HostNs::new(
        "bad_global_network_options_are_refused_in_every_network_mode_and_change_nothing",
    ) else {
        return;
    };
    let before = system(&ns);
    let bad: &[(&[&str], &str)] = &[
        (&["--subnet", "1.2.3.4/99"], "invalid subnet \"1.2.3.4/99\""),
        (&["--subnet", "nonsense"], "invalid subnet \"nonsense\""),
        (
            &["--bridge", "a-much-too-long-bridge"],
            "invalid --bridge \"a-much-too-long-bridge\"",
        ),
        (&["--bridge", "a/b"], "invalid --bridge \"a/b\""),
        (&["--bridge", "a b"], "invalid --bridge \"a b\""),
        (&["--bridge", "all"], "invalid --bridge \"all\""),
        // The kernel would make br0 of it (a template), left behind.
        (&["--bridge", "br%d"], "invalid --bridge \"br%d\""),
        // The name of a container's host link, which a run or ADD whose
        // link it names would take for its own leftover and delete.
        (&["--bridge", "sv-abc"], "invalid --bridge \"sv-abc\""),
        (
            &["--ipv6", "--subnet6", "fd00::/129"],
            "invalid --subnet6 \"fd00::/129\"",
        ),
        (
            &["--subnet6", "10.0.0.0/24"],
            "invalid --subnet6 \"10.0.0.0/24\"",
        ),
    ];
    for mode in ["none", "bridge", "container:web"] {
        for (options, message) in bad {
            let run = ["run", "--network", mode, "--", "true"];
            let args: Vec<&OsStr> = options.iter().chain(&run).map(OsStr::new).collect();
            let line = refused(&ns, &args);
            assert!(
                line.starts_with(&format!("supervisor: {message}")),
                "--network {mode} {options:?}: {line}"
            );
        }
    }
    assert_eq!(system(&ns), before, "a refused run changed the system");
}

#[test]
fn hostile_names_labels_env_and_hostnames_are_refused_naming_them_and_change_nothing() {
    let Some(ns) = HostNs::new(
        "hostile_names_labels_env_and_hostnames_are_refused_naming_them_and_change_nothing",
    ) else {
        return;
    };
    let before = system(&ns);
    let long_name = "a".repeat(300);
    let long_hostname = "h".repeat(65);
    // Each option with its value, and how its refusal starts.
    let bad: &[(&str, &[u8], String)] = &[
        (
            "--name",
            long_name.as_bytes(),
            format!(
                "invalid container name \"{}\"… (300 bytes)",
                &long_name[..64]
            ),
        ),
        ("--name", b"..", "invalid container name \"..\"".into()),
        ("--name", b"-", "invalid container name \"-\"".into()),
        ("--name", b"a\nb", "invalid container name \"a\\nb\"".into()),
        (
            "--name",
            b"\xff",
            "invalid --name \"\\xFF\": not UTF-8".into(),
        ),
        (
            "--label",
            b"k=\xff",
            "invalid --label \"k=\\xFF\": not UTF-8".into(),
        ),
        ("-e", b"A=\xff", "invalid -e \"A=\\xFF\": not UTF-8".into()),
        (
            "--hostname",
            b"h\xff",
            "invalid --hostname \"h\\xFF\": not UTF-8".into(),
        ),
        ("--label", b"=", "invalid --label \"=\"".into()),
        ("--label", b"==", "invalid --label \"==\"".into()),
        // An escape sequence for the terminal of whoever runs `ps --format`.
        (
            "--label",
            b"k=\x1b[2J",
            "invalid --label \"k=\\u{1b}[2J\": contains a control".into(),
        ),
        ("-e", b"=x", "invalid --env \"=x\"".into()),
        (
            "--hostname",
            long_hostname.as_bytes(),
            format!("invalid hostname \"{long_hostname}\""),
        ),
    ];
    for (option, value, message) in bad {
        let value = OsStr::from_bytes(value);
        let args = ["run", "-p", "8080:80", option].map(OsStr::new);
        let args = [&args[..], &[value], &["--", "true"].map(OsStr::new)].concat();
        let line = refused(&ns, &args);
        assert!(
            line.starts_with(&format!("supervisor: {message}")),
            "{option} {value:?}: {line}"
        );
    }
    assert_eq!(system(&ns), before, "a refused run changed the system");
}

/// `stop ID` finds a container by name first: a container named with
/// another's id would take its place, and the one meant would run on.
#[test]
fn a_name_shaped_like_a_container_id_is_refused_so_stop_by_id_stops_that_container() {
    let Some(ns) = HostNs::new(
        "a_name_shaped_like_a_container_id_is_refused_so_stop_by_id_stops_that_container",
    ) else {
        return;
    };
    let detached = |name: &str| {
        let args = [
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            "--",
            "sleep",
            "100",
        ];
        common::run(ns.supervisor().args(args))
    };
    assert!(detached("web").status.success());
    let out = common::run(ns.supervisor().args(["ps", "-q"]));
    let id = stdout(&out).trim().to_string();
    assert_eq!(id.len(), 12, "{id:?}");
    let impostor = detached(&id);
    assert_eq!(impostor.status.code(), Some(125), "{}", stderr(&impostor));
    assert!(
        stderr(&impostor).starts_with(&format!(
            "supervisor: invalid container name \"{id}\": 12 hex digits"
        )),
        "{}",
        stderr(&impostor)
    );
    let stop = common::run(ns.supervisor().args(["stop", "-t", "1", &id]));
    assert_eq!(stdout(&stop), "web\n", "{}", stderr(&stop));
    common::assert_no_state(&ns);
}

/// `run -- ''`: exec(3) of an empty name fails only in the container, once
/// the network is made; refused first, as any other bad part of the line.
#[test]
fn an_empty_program_name_is_refused_naming_it_and_changes_nothing() {
    let Some(ns) = HostNs::new("an_empty_program_name_is_refused_naming_it_and_changes_nothing")
    else {
        return;
    };
    let before = system(&ns);
    for network in ["bridge", "none"] {
        let line = refused(
            &ns,
            &["run", "--network", network, "--", ""].map(OsStr::new),
        );
        assert_eq!(
            line, "supervisor: invalid command \"\": the program name is empty",
            "--network {network}"
        );
    }
    assert_eq!(system(&ns), before, "a refused run changed the system");
}

/// A value starting with '-' (a negative number, or `-1:80`) given to an
/// option was taken for an option of its own: "unexpected argument '-1'
/// found", with the tip to write `-- -1`, which would make it the command.
/// It is the option's value, refused naming the option.
#[test]
fn a_value_starting_with_a_dash_is_refused_as_the_value_of_its_option() {
    let Some(ns) =
        HostNs::new("a_value_starting_with_a_dash_is_refused_as_the_value_of_its_option")
    else {
        return;
    };
    let before = system(&ns);
    // The arguments (split at spaces), and how the refusal starts.
    let bad = [
        (
            "run --stop-timeout -1 -- true",
            "invalid value '-1' for '--stop-timeout <SECS>'",
        ),
        ("run -m -5 -- true", "invalid --memory \"-5\""),
        ("run --cpus -1 -- true", "invalid --cpus \"-1\""),
        ("stop -t -1 web", "invalid value '-1' for '--time <SECS>'"),
        ("logs --tail -1 web", "invalid value '-1' for '--tail <N>'"),
        ("run -u -1 -- true", "invalid --user \"-1\""),
        ("run --user -1:0 -- true", "invalid --user \"-1:0\""),
        ("run -p -1:80 -- true", "invalid --publish \"-1:80\""),
        ("run -p -5 -- true", "invalid --publish \"-5\""),
        (
            "run -d --log-max-size -1 -- true",
            "invalid value '-1' for '--log-max-size <SIZE>'",
        ),
        (
            "kill -s -9 web",
            "invalid value '-9' for '--signal <SIGNAL>'",
        ),
    ];
    for (args, start) in bad {
        let args: Vec<&OsStr> = args.split(' ').map(OsStr::new).collect();
        let line = refused(&ns, &args);
        assert!(
            line.starts_with(&format!("supervisor: {start}")),
            "{args:?}: {line}"
        );
    }
    assert_eq!(system(&ns), before, "a refused command changed the system");
    // exec's --user is looked up in the container's own files.
    let started = ns.run(&["-d", "--name", "web", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", stderr(&started));
    let out = common::run(ns.supervisor().args(["exec", "-u", "-1", "web", "true"]));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let line = stderr(&out);
    assert!(
        line.starts_with("supervisor: invalid --user \"-1\""),
        "{line}"
    );
    let stopped = common::run(ns.supervisor().args(["stop", "-t", "0", "web"]));
    assert!(stopped.status.success(), "{}", stderr(&stopped));
}

/// `--state-dir run/state` was taken relative to the working directory: a
/// `run -d` there, then `ps` or `gc` from anywhere else, saw no container,
/// and a `run` elsewhere none of its leases. Refused for every command,
/// from the option or the environment, and nothing made. (Relative to the
/// namespace's root, where the commands run, it names its own /run: a
/// regression makes nothing outside the throwaway host.)
#[test]
fn a_relative_state_dir_is_refused_for_every_command_and_changes_nothing() {
    let Some(ns) =
        HostNs::new("a_relative_state_dir_is_refused_for_every_command_and_changes_nothing")
    else {
        return;
    };
    let before = system(&ns);
    let want = "supervisor: invalid value 'run/state' for '--state-dir <STATE_DIR>': must be an absolute path";
    for args in [
        &["--state-dir", "run/state", "run", "-d", "--", "true"][..],
        &["run", "--state-dir", "run/state", "--", "true"],
        &["ps", "--state-dir", "run/state"],
        &["gc", "--state-dir", "run/state"],
    ] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let line = refused(&ns, &args);
        assert!(line.starts_with(want), "{args:?}: {line}");
    }
    refused_from_the_environment(
        &ns,
        ("SUPERVISOR_STATE_DIR", "run/state"),
        &["run", "--", "true"],
        want,
    );
    assert_eq!(system(&ns), before, "a refused command changed the system");
}

/// `args` with `variable` set to a bad value exit 125 saying `want`.
fn refused_from_the_environment(ns: &HostNs, variable: (&str, &str), args: &[&str], want: &str) {
    let out = common::run(ns.supervisor().env(variable.0, variable.1).args(args));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).starts_with(want), "{}", stderr(&out));
}

/// `--loopback6-cgroup` takes an absolute path to a cgroup2 directory or
/// `none`: anything else is refused naming the value, from the option or
/// the environment, and nothing made.
#[test]
fn a_loopback6_cgroup_neither_absolute_nor_none_is_refused_and_changes_nothing() {
    let Some(ns) =
        HostNs::new("a_loopback6_cgroup_neither_absolute_nor_none_is_refused_and_changes_nothing")
    else {
        return;
    };
    let before = system(&ns);
    let want = "supervisor: invalid value 'unified' for '--loopback6-cgroup <PATH>': expected an absolute path to a cgroup2 directory, or none";
    let run_with = |path: &str| {
        let words = [
            "--loopback6-cgroup",
            path,
            "--ipv6",
            "run",
            "-p",
            "8080:80",
            "--",
            "true",
        ];
        let args: Vec<&OsStr> = words.iter().map(OsStr::new).collect();
        refused(&ns, &args)
    };
    let line = run_with("unified");
    assert!(line.starts_with(want), "{line}");
    refused_from_the_environment(
        &ns,
        ("SUPERVISOR_LOOPBACK6_CGROUP", "unified"),
        &["--ipv6", "run", "-p", "8080:80", "--", "true"],
        want,
    );
    // A path that is no cgroup2 directory (missing, a file, a FIFO, a
    // cgroup1 hierarchy's) was taken, and the hook failed after the start
    // without a word (a FIFO: the supervisor hung on its open).
    let fifo = common::unique_temp_path("not-a-cgroup-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let fifo = fifo.to_str().unwrap().to_string();
    for path in ["/nonexistent", "/etc/passwd", fifo.as_str(), "/proc"] {
        let line = run_with(path);
        let want =
            format!("supervisor: invalid --loopback6-cgroup {path}: not a cgroup2 directory");
        assert_eq!(line, want);
    }
    let _ = std::fs::remove_file(&fifo);
    // Checked for `run` only: a stale value in the environment does not
    // stop `ps` (nor `stop`, `gc`).
    let ps = ns
        .supervisor()
        .env("SUPERVISOR_LOOPBACK6_CGROUP", "/nonexistent")
        .arg("ps")
        .output()
        .unwrap();
    assert!(ps.status.success(), "{}", stderr(&ps));
    assert_eq!(system(&ns), before, "a refused command changed the system");
}

/// A 10,000-byte --name was repeated whole: a 10 KB error line. Every
/// refusal quotes a long value shortened, its first 64 characters and its
/// length, clap's own refusals too.
#[test]
fn a_long_bad_value_is_quoted_shortened_with_its_length() {
    let Some(ns) = HostNs::new("a_long_bad_value_is_quoted_shortened_with_its_length") else {
        return;
    };
    let before = system(&ns);
    let long = "9".repeat(10_000);
    let first = &long[..64];
    let cases: &[(&str, &str)] = &[
        ("--name", "invalid container name"),
        ("--hostname", "invalid hostname"),
        ("-p", "invalid --publish"),
        ("-u", "invalid --user"),
        ("--memory", "invalid --memory"),
        ("--stop-timeout", "invalid value"),
    ];
    for (option, start) in cases {
        let line = refused(
            &ns,
            &[
                OsStr::new("run"),
                OsStr::new(option),
                OsStr::new(&long),
                OsStr::new("true"),
            ],
        );
        assert!(
            line.len() < 400,
            "{option}: {} bytes: {line:.200}",
            line.len()
        );
        assert!(
            line.starts_with(&format!("supervisor: {start}")),
            "{option}: {line}"
        );
        assert!(line.contains(first), "{option}: {line}");
        assert!(line.contains("… (10000 bytes)"), "{option}: {line}");
    }
    // Short ones are quoted whole, as before.
    let line = refused(
        &ns,
        &[
            OsStr::new("run"),
            OsStr::new("--name"),
            OsStr::new("a/b"),
            OsStr::new("true"),
        ],
    );
    assert!(
        line.starts_with("supervisor: invalid container name \"a/b\": "),
        "{line}"
    );
    assert_eq!(system(&ns), before, "a refused run changed the system");
}

/// `run --env-file FIFO` waits for the FIFO's writer (`--env-file <(…)`
/// is a pipe, read as docker reads it), and waited with the signals `run`
/// forwards blocked: Ctrl-C and SIGTERM did nothing, only SIGKILL ended
/// it. Nothing is made yet: they end it as they end any command.
#[test]
fn a_run_waiting_for_its_env_file_ends_on_sigint_or_sigterm_and_changes_nothing() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let Some(ns) =
        HostNs::new("a_run_waiting_for_its_env_file_ends_on_sigint_or_sigterm_and_changes_nothing")
    else {
        return;
    };
    ns.ok("mkfifo /run/env.fifo");
    let before = system(&ns);
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut child = ns
            .supervisor()
            .args(["run", "--env-file", "/run/env.fifo", "--", "true"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn supervisor");
        // nsenter execs the supervisor: the child is it.
        let pid = child.id();
        common::eventually(
            "run waits for the FIFO's writer",
            Duration::from_secs(10),
            || {
                std::fs::read_to_string(format!("/proc/{pid}/wchan"))
                    .ok()
                    .filter(|wchan| wchan == "wait_for_partner")
            },
        );
        // SAFETY: kill on our own child's pid, which we have not reaped.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
        let waited = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if waited.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(signal),
            "run --env-file FIFO went on waiting after signal {signal}: {status:?}"
        );
    }
    assert_eq!(system(&ns), before, "an interrupted run changed the system");
}

/// `run -e =x` is refused naming it; `exec -e =x` gave the command an
/// environment entry without a name.
#[test]
fn exec_refuses_an_env_entry_without_a_name_as_run_does() {
    let Some(ns) = HostNs::new("exec_refuses_an_env_entry_without_a_name_as_run_does") else {
        return;
    };
    let started = ns.run(&[
        "-d",
        "--network",
        "none",
        "--name",
        "web",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(started.status.success(), "{}", stderr(&started));
    for entry in ["=x", "", "=", "==x"] {
        let out = common::run(ns.supervisor().args(["exec", "-e", entry, "web", "env"]));
        assert_eq!(out.status.code(), Some(125), "{entry:?}: {}", stdout(&out));
        assert!(
            stderr(&out).starts_with(&format!("supervisor: invalid --env \"{entry}\": ")),
            "{entry:?}: {}",
            stderr(&out)
        );
    }
    let out = common::run(ns.supervisor().args(["exec", "-e", "A==x", "web", "env"]));
    assert!(stdout(&out).contains("A==x\n"), "{}", stderr(&out));
    let stopped = common::run(ns.supervisor().args(["stop", "-t", "0", "web"]));
    assert!(stopped.status.success(), "{}", stderr(&stopped));
}

/// With `ip_nonlocal_bind` an address that is not the host's binds, and
/// its publishing is the admin's choice: the route lookup that refuses a
/// broadcast address must not refuse it when the kernel has no route to
/// give (`prohibit`: EACCES, `blackhole`: EINVAL), as it did.
#[test]
fn a_nonlocal_address_the_kernel_has_no_route_to_still_publishes_with_nonlocal_bind() {
    let Some(ns) = HostNs::new(
        "a_nonlocal_address_the_kernel_has_no_route_to_still_publishes_with_nonlocal_bind",
    ) else {
        return;
    };
    ns.ok(
        "sysctl -qw net.ipv4.ip_nonlocal_bind=1 && ip route add prohibit 203.0.113.0/24 \
         && ip route add blackhole 198.51.100.0/24",
    );
    for mapping in ["203.0.113.5:8080:80", "198.51.100.5:8080:80"] {
        let out = ns.run(&["-p", mapping, "true"]);
        assert!(out.status.success(), "{mapping}: {}", stderr(&out));
    }
}

/// The kernel binds a socket to a multicast or broadcast address (a
/// subnet's directed broadcast too), so the host port's check passed and
/// the run went on, publishing a port no connection ever reaches (none to
/// such an address is local to the host).
#[test]
fn a_port_published_on_a_multicast_or_broadcast_address_is_refused_and_changes_nothing() {
    let Some(ns) = HostNs::new(
        "a_port_published_on_a_multicast_or_broadcast_address_is_refused_and_changes_nothing",
    ) else {
        return;
    };
    // A subnet of the host's, whose directed broadcast address binds too.
    ns.ok("ip link add b0 type veth peer name b1 && ip addr add 10.99.0.1/24 dev b0 && ip link set b1 up && ip link set b0 up");
    let before = system(&ns);
    for (options, addr) in [
        (&["-p", "224.0.0.1:8080:80"][..], "224.0.0.1"),
        (&["-p", "10.99.0.255:8080:80"], "10.99.0.255"),
        (&["-p", "127.255.255.255:8080:80"], "127.255.255.255"),
        (
            &["-p", "127.0.0.1:8081:80", "-p", "10.99.0.255:8080:80/udp"],
            "10.99.0.255",
        ),
        (&["-p", "255.255.255.255:8080:80/udp"], "255.255.255.255"),
        (&["--ipv6", "-p", "[ff02::1]:8080:80"], "ff02::1"),
    ] {
        let args: Vec<&OsStr> = ["run"]
            .iter()
            .chain(options)
            .chain(&["--", "true"])
            .map(OsStr::new)
            .collect();
        let line = refused(&ns, &args);
        assert!(
            line.starts_with("supervisor: cannot publish ")
                && line.contains(&format!("{addr} is not an address of this host")),
            "{options:?}: {line}"
        );
    }
    assert_eq!(system(&ns), before, "a refused run changed the system");
}

/// A usage error's `Usage:` line shows what the user typed, not the global
/// options whose environment variables are set (clap counts a value from
/// the environment as given): with SUPERVISOR_LOOPBACK6_CGROUP=none, the
/// setting the README suggests in a throwaway namespace, `exec web` showed
/// `Usage: supervisor exec --loopback6-cgroup <PATH> <NAME|ID> <CMD>...`,
/// as if the option were required. Refused before anything is touched:
/// no namespace needed.
#[test]
fn a_usage_line_leaves_out_the_global_options_set_only_in_the_environment() {
    let usage = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = std::process::Command::new(common::SUPERVISOR);
        cmd.env_remove("SUPERVISOR_LOOPBACK6_CGROUP");
        for (key, value) in env {
            cmd.env(key, value);
        }
        let out = common::run(cmd.args(args));
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        let err = stderr(&out);
        let line = err.lines().find(|l| l.starts_with("Usage: "));
        line.unwrap_or_else(|| panic!("no usage line: {err}"))
            .to_string()
    };
    let set = [
        ("SUPERVISOR_LOOPBACK6_CGROUP", "none"),
        ("SUPERVISOR_BRIDGE", "sv9"),
        ("SUPERVISOR_IPV6", "1"),
        ("SUPERVISOR_STATE_DIR", "/run/sv9"),
    ];
    assert_eq!(
        usage(&set, &["exec", "web"]),
        "Usage: supervisor exec <NAME|ID> <CMD>..."
    );
    assert_eq!(
        usage(&set, &["stop"]),
        "Usage: supervisor stop <NAME|ID>..."
    );
    assert_eq!(
        usage(&set, &["run", "-d"]),
        "Usage: supervisor run --detach <CMD>..."
    );
    // Typed, an option stays, whatever its variable.
    assert_eq!(
        usage(&set, &["--bridge", "b", "--ipv6", "stop"]),
        "Usage: supervisor stop --bridge <BRIDGE> --ipv6 <NAME|ID>..."
    );
    assert_eq!(
        usage(&set, &["stop", "--bridge=b"]),
        "Usage: supervisor stop --bridge <BRIDGE> <NAME|ID>..."
    );
}
