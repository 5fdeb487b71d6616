//! `--memory`, `--cpus`, `--pids-limit`, end to end: the built binary in a
//! throwaway host each (see common/mod.rs). cgroupfs is not namespaced:
//! every test here shares the machine's /sys/fs/cgroup, so each finds its
//! container's cgroup through the container (its record, or
//! /proc/self/cgroup inside) and checks it is gone at the end.
//!
//! This machine runs cgroup v1 (hybrid); the v1 files are what the tests
//! read. The v2 backend is exercised by the last test, on a cgroup2
//! mounted in a mount namespace of its own.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{HostNs, assert_no_state, eventually, stderr, stdout, supervisor};
use serde_json::Value;

/// Allocates and touches 200 MiB.
const ALLOCATE: &str = "b = b'x' * (200 << 20); print('allocated', len(b))";

/// `run -d --name NAME OPTIONS -- COMMAND…`, which must succeed.
fn detach(ns: &HostNs, name: &str, options: &[&str], command: &[&str]) {
    let mut all = vec!["run", "-d", "--network", "none", "--name", name];
    all.extend_from_slice(options);
    all.push("--");
    all.extend_from_slice(command);
    let out = supervisor(ns, &all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn inspect(ns: &HostNs, name: &str) -> Value {
    let out = supervisor(ns, &["inspect", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("inspect prints JSON")
}

/// The container's cgroup directories, from its record.
fn cgroup_of(ns: &HostNs, name: &str) -> Vec<PathBuf> {
    let paths = inspect(ns, name)["resources"]["cgroup"].clone();
    let paths: Vec<PathBuf> = serde_json::from_value(paths).expect("cgroup paths");
    assert!(!paths.is_empty(), "{name} has no cgroup");
    paths
}

/// The directory of `controller` among `paths` (v1: one per hierarchy).
fn dir_of(paths: &[PathBuf], controller: &str) -> PathBuf {
    paths
        .iter()
        .find(|p| p.starts_with(format!("/sys/fs/cgroup/{controller}")))
        .unwrap_or_else(|| panic!("no {controller} cgroup in {paths:?}"))
        .clone()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The pids in a cgroup.
fn procs(dir: &Path) -> Vec<u32> {
    read(&dir.join("cgroup.procs"))
        .lines()
        .map(|l| l.parse().expect("a pid"))
        .collect()
}

/// The cgroup directories a container printed from /proc/self/cgroup
/// (`N:CONTROLLER:PATH` lines), as host paths.
fn printed_cgroups(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controller, path) = (parts.next()?, parts.next()?, parts.next()?);
            let controller = ["memory", "cpu", "pids"]
                .into_iter()
                .find(|c| controller.split(',').any(|x| x == *c))?;
            path.contains("/supervisor-")
                .then(|| PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}")))
        })
        .collect()
}

/// Neither the container's cgroup directories nor their (per state
/// directory) parents are left, once its supervisor has exited: it removes
/// them before it exits (retrying while the kernel lets go of the tasks),
/// and nothing does later, so there is nothing to wait for.
fn assert_gone(paths: &[PathBuf]) {
    for path in paths {
        let parent = path.parent().expect("a parent");
        assert!(
            !path.exists() && !parent.exists(),
            "{} left after its supervisor exited",
            path.display()
        );
    }
}

fn supervisor_pid(ns: &HostNs, name: &str) -> u32 {
    inspect(ns, name)["supervisor"]["pid"]
        .as_u64()
        .expect("a pid") as u32
}

fn container_pid(ns: &HostNs, name: &str) -> u32 {
    let pid = inspect(ns, name)["container"]["pid"].clone();
    pid.as_u64().expect("a container pid") as u32
}

fn stop(ns: &HostNs, name: &str) {
    let out = supervisor(ns, &["stop", "-t", "1", name]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_process_allocating_past_memory_is_oom_killed_137_and_the_exit_line_says_so() {
    let Some(ns) =
        HostNs::new("a_process_allocating_past_memory_is_oom_killed_137_and_the_exit_line_says_so")
    else {
        return;
    };
    let script = format!("grep -E ':memory:' /proc/self/cgroup; exec python3 -c \"{ALLOCATE}\"");
    let unlimited = ns.run(&["--network", "none", "--", "sh", "-c", &script]);
    assert_eq!(unlimited.status.code(), Some(0), "{}", stderr(&unlimited));
    assert!(stdout(&unlimited).contains("allocated"));

    let limited = ns.run(&[
        "--network",
        "none",
        "--memory",
        "64m",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(limited.status.code(), Some(137), "{}", stderr(&limited));
    assert!(!stdout(&limited).contains("allocated"));
    let err = stderr(&limited);
    assert!(
        err.contains("killed by the OOM killer (exit 137): it reached --memory 64m"),
        "{err}"
    );
    let cgroup = printed_cgroups(&stdout(&limited));
    assert_eq!(cgroup.len(), 1, "{}", stdout(&limited));
    assert_gone(&cgroup);
    assert_no_state(&ns);
}

#[test]
fn inspect_counts_the_oom_kills_of_a_running_container() {
    let Some(ns) = HostNs::new("inspect_counts_the_oom_kills_of_a_running_container") else {
        return;
    };
    let script = format!("python3 -c \"{ALLOCATE}\"; exec sleep 100");
    detach(&ns, "m", &["--memory", "64m"], &["sh", "-c", &script]);
    let kills = eventually("an OOM kill counted", Duration::from_secs(10), || {
        let live = inspect(&ns, "m")["live"].clone();
        (live["oom_kills"].as_u64() > Some(0)).then_some(live)
    });
    assert_eq!(kills["container_running"], true, "only python3 was killed");
    let resources = inspect(&ns, "m")["resources"].clone();
    assert_eq!(resources["memory"], 64 << 20);
    let paths = cgroup_of(&ns, "m");
    stop(&ns, "m");
    assert_gone(&paths);
    assert_no_state(&ns);
}

#[test]
fn forks_beyond_pids_limit_fail() {
    let Some(ns) = HostNs::new("forks_beyond_pids_limit_fail") else {
        return;
    };
    // Forks 50 sleepers, or until a fork fails; they die with the container.
    let forker = "import os, time\n\
        n = 0\n\
        try:\n    \
            for n in range(1, 51):\n        \
                if os.fork() == 0:\n            \
                    time.sleep(30); os._exit(0)\n    \
            print('forked', n)\n\
        except OSError as e:\n    \
            print('fork', n, 'failed', e.errno)\n";
    let unlimited = ns.container_sh(&[], &format!("python3 -c \"{forker}\""));
    assert_eq!(unlimited.trim(), "forked 50");
    let limited = ns.container_sh(
        &["--pids-limit", "20"],
        &format!("grep :pids: /proc/self/cgroup; exec python3 -c \"{forker}\""),
    );
    // The init and python3 count: the 19th fork would be the 21st process.
    let last = limited.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("fork 19 failed {}", libc::EAGAIN),
        "{limited}"
    );
    assert_gone(&printed_cgroups(&limited));
    assert_no_state(&ns);
}

#[test]
fn cpus_is_a_quota_of_a_100ms_period_and_throttles() {
    let Some(ns) = HostNs::new("cpus_is_a_quota_of_a_100ms_period_and_throttles") else {
        return;
    };
    detach(&ns, "half", &["--cpus", "0.5"], &["sleep", "100"]);
    let cpu = dir_of(&cgroup_of(&ns, "half"), "cpu");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")).trim(), "50000");
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")).trim(), "100000");
    assert_eq!(inspect(&ns, "half")["resources"]["nano_cpus"], 500_000_000);
    stop(&ns, "half");
    assert_gone(&[cpu]);

    detach(
        &ns,
        "spin",
        &["--cpus", "0.1"],
        &["sh", "-c", "while :; do :; done"],
    );
    let cpu = dir_of(&cgroup_of(&ns, "spin"), "cpu");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")).trim(), "10000");
    let throttled = |stat: String| {
        stat.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.parse::<u64>().ok())
    };
    eventually(
        "the spinning container throttled",
        Duration::from_secs(5),
        || (throttled(read(&cpu.join("cpu.stat"))) > Some(0)).then_some(()),
    );
    stop(&ns, "spin");
    assert_gone(&[cpu]);
    assert_no_state(&ns);
}

#[test]
fn the_init_and_command_are_in_the_cgroup_the_supervisor_is_not_and_ps_shows_the_limits() {
    let Some(ns) = HostNs::new(
        "the_init_and_command_are_in_the_cgroup_the_supervisor_is_not_and_ps_shows_the_limits",
    ) else {
        return;
    };
    detach(
        &ns,
        "in",
        &["--memory", "64m", "--cpus", "1", "--pids-limit", "100"],
        &["sleep", "100"],
    );
    let paths = cgroup_of(&ns, "in");
    assert_eq!(paths.len(), 3, "memory, cpu and pids: {paths:?}");
    let ps = supervisor(
        &ns,
        &[
            "ps",
            "--format",
            "{{.Name}} {{.Memory}} {{.Cpus}} {{.PidsLimit}}",
        ],
    );
    assert_eq!(stdout(&ps), "in 64m 1 100\n", "{}", stderr(&ps));
    let ps: Value = serde_json::from_slice(&supervisor(&ns, &["ps", "--json"]).stdout).unwrap();
    assert_eq!(ps[0]["memory"], 64 << 20);
    assert_eq!(ps[0]["nano_cpus"], 1_000_000_000);
    assert_eq!(ps[0]["pids_limit"], 100);
    common::assert_no_drift(&ns);
    let init = container_pid(&ns, "in");
    let children = read(Path::new(&format!("/proc/{init}/task/{init}/children")));
    let command: u32 = children.trim().parse().expect("the init has one child");
    let supervisor = supervisor_pid(&ns, "in");
    for dir in &paths {
        let inside = procs(dir);
        assert!(inside.contains(&init), "{}: {inside:?}", dir.display());
        assert!(inside.contains(&command), "{}: {inside:?}", dir.display());
        assert!(
            !inside.contains(&supervisor),
            "{}: {inside:?}",
            dir.display()
        );
    }
    stop(&ns, "in");
    assert_gone(&paths);
    assert_no_state(&ns);
}

#[test]
fn an_exec_command_joins_the_cgroup_and_is_limited_by_it() {
    let Some(ns) = HostNs::new("an_exec_command_joins_the_cgroup_and_is_limited_by_it") else {
        return;
    };
    detach(&ns, "x", &["--memory", "64m"], &["sleep", "100"]);
    let memory = dir_of(&cgroup_of(&ns, "x"), "memory");
    let out = supervisor(&ns, &["exec", "x", "cat", "/proc/self/cgroup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        printed_cgroups(&stdout(&out)),
        std::slice::from_ref(&memory)
    );
    let out = supervisor(&ns, &["exec", "x", "python3", "-c", ALLOCATE]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    stop(&ns, "x");
    assert_gone(&[memory]);

    // The same command, exec'd into a container without a limit.
    detach(&ns, "free", &[], &["sleep", "100"]);
    let out = supervisor(&ns, &["exec", "free", "python3", "-c", ALLOCATE]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stop(&ns, "free");
    assert_no_state(&ns);
}

#[test]
fn gc_removes_a_crashed_supervisors_cgroup_and_log() {
    let Some(ns) = HostNs::new("gc_removes_a_crashed_supervisors_cgroup_and_log") else {
        return;
    };
    detach(
        &ns,
        "c",
        &["--memory", "64m", "--pids-limit", "100"],
        &["sleep", "100"],
    );
    let paths = cgroup_of(&ns, "c");
    let init = container_pid(&ns, "c");
    ns.ok(&format!("kill -9 {}", supervisor_pid(&ns, "c")));
    // Reparented to this test's pid 1, which may leave it a zombie.
    eventually(
        "the container gone with its supervisor",
        Duration::from_secs(5),
        || matches!(common::process_state(init), None | Some('Z')).then_some(()),
    );
    // The container goes with the supervisor's main thread; the log's lock
    // with its last thread (the log's pump), which `gc` waits for only
    // briefly before it takes the log for a starting run's.
    eventually(
        "the crashed supervisor's log lock free",
        Duration::from_secs(5),
        || {
            ns.sh("flock -n -s /run/supervisor/logs/c.lock true")
                .status
                .success()
                .then_some(())
        },
    );
    for path in &paths {
        assert!(path.is_dir(), "a crash leaves {}", path.display());
    }
    let check = stdout(&supervisor(&ns, &["check"]));
    for path in &paths {
        let line = format!("cgroup {}: its container is gone", path.display());
        assert!(check.contains(&line), "{check}");
    }
    let gc = stdout(&supervisor(&ns, &["gc"]));
    for path in &paths {
        let line = format!("removed cgroup {}: its container is gone", path.display());
        assert!(gc.contains(&line), "{gc}");
    }
    assert!(
        gc.contains("removed log /run/supervisor/logs/c.log"),
        "{gc}"
    );
    assert_gone(&paths);
    assert_no_state(&ns);
}

#[test]
fn bad_limits_exit_125_naming_the_option_and_create_no_cgroup() {
    let Some(ns) = HostNs::new("bad_limits_exit_125_naming_the_option_and_create_no_cgroup") else {
        return;
    };
    // The state directory's cgroup parent, learnt from a good run.
    detach(&ns, "good", &["--memory", "64m"], &["sleep", "100"]);
    let memory = dir_of(&cgroup_of(&ns, "good"), "memory");
    stop(&ns, "good");
    assert_gone(std::slice::from_ref(&memory));
    let parent = memory.parent().expect("the state directory's cgroup");
    for (option, value) in [
        ("--memory", "5m"),
        ("--memory", "64x"),
        ("--memory", "-64m"),
        ("--cpus", "0"),
        ("--cpus", "abc"),
        ("--cpus", "1000"),
        ("--pids-limit", "-5"),
        ("--pids-limit", "many"),
        // More than the kernel's pids.max takes: refused there, too late.
        ("--pids-limit", "4194305"),
        // More than the kernel counts: it would be "no limit" unsaid.
        ("--memory", "17179869183g"),
    ] {
        let out = ns.run(&[
            "--network",
            "none",
            &format!("{option}={value}"),
            "--",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(125), "{option} {value}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("invalid {option} \"{value}\"")),
            "{err}"
        );
        assert!(
            !parent.exists(),
            "{option} {value} made {}",
            parent.display()
        );
    }
    assert_no_state(&ns);
}

/// The v2 backend on this machine's cgroup2 tree, mounted in a mount
/// namespace of this test's thread: on a hybrid host that tree offers no
/// memory, cpu or pids controller (v1 has them), so a limit must be
/// refused naming the controller; a cgroup without limits is made, the
/// container is cloned straight into it (CLONE_INTO_CGROUP), and it is
/// removed. On a v2 host the limit is written and read back instead.
#[test]
fn on_cgroup2_the_container_is_cloned_into_its_cgroup_and_a_missing_controller_is_named() {
    use supervisor::cgroup::Hierarchy;
    use supervisor::spawn::{Container, SpawnConfig};
    use supervisor::values::Resources;
    let test =
        "on_cgroup2_the_container_is_cloned_into_its_cgroup_and_a_missing_controller_is_named";
    if !common::privileged(test) {
        return;
    }
    let work = common::unique_temp_path("cgroup2-test");
    let (root, state) = (work.join("cgroup2"), work.join("state"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let thread_root = root.clone();
    let outcome = std::thread::spawn(move || {
        let root = thread_root;
        use nix::mount::{MntFlags, MsFlags, mount, umount2};
        // SAFETY: unshare affects only this thread's mounts (and fs_struct).
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNS) }, 0);
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        mount(None::<&str>, "/", None::<&str>, private, None::<&str>).unwrap();
        mount(
            Some("none"),
            &root,
            Some("cgroup2"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let offered = read(&root.join("cgroup.controllers"));
        let hierarchy = Hierarchy::V2 { root: root.clone() };
        let id = format!("v2test{}", std::process::id());

        let memory = Resources {
            memory: Some(64 << 20),
            ..Resources::default()
        };
        let has_memory = offered.split_whitespace().any(|c| c == "memory");
        match hierarchy.plan(&state, &id, &memory) {
            Err(err) => {
                assert!(!has_memory, "{err}");
                let err = err.to_string();
                assert!(
                    err.contains("--memory needs the memory cgroup controller"),
                    "{err}"
                );
                assert!(
                    err.contains(&format!("offers: {}", offered.trim())),
                    "{err}"
                );
            }
            Ok(plan) => {
                assert!(has_memory);
                let cgroup = plan.create().unwrap();
                let max = read(&cgroup.paths()[0].join("memory.max"));
                assert_eq!(max.trim(), "67108864");
                cgroup.remove().unwrap();
            }
        }

        let plan = hierarchy.plan(&state, &id, &Resources::default()).unwrap();
        let leaf = plan.paths()[0].clone();
        assert!(leaf.starts_with(&root), "{}", leaf.display());
        let cgroup = plan.create().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spawn = |cgroup| {
            let config = SpawnConfig {
                cgroup,
                ..common::spawn_config()
            };
            let mut container = Container::spawn(&config).unwrap();
            let pid = container.pid() as u32;
            let inside = procs(&leaf);
            runtime.block_on(async {
                container.release().await.unwrap();
                container.pidfd().wait().await.unwrap();
            });
            (pid, inside)
        };
        let (pid, inside) = spawn(None);
        assert!(
            !inside.contains(&pid),
            "without CLONE_INTO_CGROUP: {inside:?}"
        );
        let (pid, inside) = spawn(cgroup.clone_into());
        assert_eq!(
            inside,
            [pid],
            "the container, alone: not this test's process"
        );
        cgroup.remove().unwrap();
        let gone = !leaf.exists() && !leaf.parent().unwrap().exists();
        // Detached: on a loaded machine the kernel can still hold the mount
        // for a moment after the container's exit was reported (EBUSY),
        // and this thread's mount namespace ends with it anyway.
        umount2(&root, MntFlags::MNT_DETACH).unwrap();
        gone
    })
    .join();
    std::fs::remove_dir_all(&work).unwrap();
    let gone = outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert!(gone, "the cgroup and its parent are removed");
}

#[test]
fn a_detached_containers_oom_kill_is_in_its_log() {
    let Some(ns) = HostNs::new("a_detached_containers_oom_kill_is_in_its_log") else {
        return;
    };
    detach(&ns, "d", &["--memory", "64m"], &["python3", "-c", ALLOCATE]);
    // -f returns once the container has ended.
    let out = supervisor(&ns, &["logs", "-f", "d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stdout(&out);
    assert!(
        log.contains(
            "container d was killed by the OOM killer (exit 137): it reached --memory 64m"
        ),
        "{log}"
    );
    supervisor(&ns, &["gc"]);
    assert_no_state(&ns);
}
