//! The README's own commands, run as a new user would run them: the quick
//! start on a terminal, its second terminal, and the throwaway-namespace
//! recipe. Each in its own throwaway host (see common/mod.rs).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::terminal::Terminal;
use common::{HostNs, SUPERVISOR, eventually, stderr, stdout};

/// The quick start's command line.
const QUICK_START: [&str; 8] = [
    "run",
    "--publish",
    "8080:8000",
    "--",
    "nc",
    "-l",
    "-p",
    "8000",
];

/// The children of process `pid`, as the host sees them.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|c| c.parse().expect("a pid"))
        .collect()
}

/// Starts the quick start on a terminal and waits until `nc` runs under the
/// container's init, holds the terminal and listens; returns the terminal.
fn quick_start_on_a_terminal(ns: &HostNs) -> (Terminal, u32) {
    let mut cmd = ns.supervisor();
    cmd.args(QUICK_START);
    let term = Terminal::start(cmd);
    let nc = eventually("nc holding the terminal", Duration::from_secs(10), || {
        let init = *children(term.child.id()).first()?;
        let command = *children(init).first()?;
        let name = std::fs::read_to_string(format!("/proc/{command}/comm")).ok()?;
        (name.trim() == "nc" && term.foreground() == command as i32).then_some(command)
    });
    eventually("nc listening", Duration::from_secs(10), || {
        let out = Command::new("nsenter")
            .arg(format!("--target={nc}"))
            .args(["--net", "--", "ss", "-ltnH", "sport = :8000"])
            .output()
            .ok()?;
        (!out.stdout.is_empty()).then_some(())
    });
    (term, nc)
}

/// Waits for the supervisor on `term` to exit, for at most `limit`.
fn exit_code_within(term: &mut Terminal, limit: Duration) -> Option<i32> {
    eventually("the supervisor's exit", limit, || {
        term.child.try_wait().expect("try_wait")
    })
    .code()
}

/// What `ps` and `gc` would see, and what they would not: no container, no
/// leftovers, and no record, lease, element or veth.
fn assert_nothing_left(ns: &HostNs) {
    // Not a leftover: it goes with the container's namespace, which the
    // kernel tears down after the exit.
    common::wait_for_no_veth(ns);
    let ps = common::run(ns.supervisor().args(["ps", "--json"]));
    assert_eq!(stdout(&ps).trim(), "[]", "{}", stderr(&ps));
    let gc = common::run(ns.supervisor().arg("gc"));
    assert_eq!(stdout(&gc), "", "gc found leftovers: {}", stderr(&gc));
    common::assert_no_state(ns);
}

#[test]
fn ctrl_c_on_a_terminal_ends_the_quick_start_at_once_with_130_and_leaves_nothing() {
    let Some(ns) = HostNs::new(
        "ctrl_c_on_a_terminal_ends_the_quick_start_at_once_with_130_and_leaves_nothing",
    ) else {
        return;
    };
    let (mut term, _) = quick_start_on_a_terminal(&ns);
    term.type_in(b"\x03");
    // A hang guard, past the 10 s stop timeout: 130 is nc's own death by
    // the SIGINT, where waiting out the timeout would end in its SIGKILL.
    let code = exit_code_within(&mut term, Duration::from_secs(30));
    assert_eq!(
        code,
        Some(130),
        "killed by SIGINT, not after the stop timeout"
    );
    assert_nothing_left(&ns);
}

#[test]
fn ctrl_z_on_a_terminal_leaves_the_quick_start_running_and_ctrl_c_still_ends_it() {
    let Some(ns) =
        HostNs::new("ctrl_z_on_a_terminal_leaves_the_quick_start_running_and_ctrl_c_still_ends_it")
    else {
        return;
    };
    let (mut term, nc) = quick_start_on_a_terminal(&ns);
    term.type_in(b"\x1a");
    // Stopped, nc would leave the terminal hung: nothing could resume it,
    // and Ctrl-C would wait behind the stop.
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(common::process_state(nc), Some('T'), "nc stopped");
    term.type_in(b"\x03");
    assert_eq!(
        exit_code_within(&mut term, Duration::from_secs(10)),
        Some(130)
    );
    assert_nothing_left(&ns);
}

#[test]
fn the_quick_starts_second_terminal_talks_both_ways_and_ctrl_d_there_ends_the_run() {
    let Some(ns) = HostNs::new(
        "the_quick_starts_second_terminal_talks_both_ways_and_ctrl_d_there_ends_the_run",
    ) else {
        return;
    };
    let (mut term, _) = quick_start_on_a_terminal(&ns);
    // The README's second terminal.
    let mut second = ns
        .command("nc")
        .args(["-N", "127.0.0.1", "8080"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn nc");
    let mut typed = second.stdin.take().expect("piped stdin");
    typed.write_all(b"hello\n").unwrap();
    term.expect("hello");
    term.type_in(b"back\n");
    let mut line = String::new();
    BufReader::new(second.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "back\n");
    // Ctrl-D: end of input, and -N shuts the connection down.
    drop(typed);
    assert_eq!(second.wait().unwrap().code(), Some(0));
    assert_eq!(
        exit_code_within(&mut term, Duration::from_secs(10)),
        Some(0)
    );
    assert_nothing_left(&ns);
}

/// The README's throwaway-namespace recipe, its lines in order, comments
/// and the build step left out, with the binary under test.
fn namespace_recipe() -> Vec<String> {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```")
        .find(|block| block.contains("ip netns add sv-demo"))
        .expect("the README has the recipe");
    block
        .lines()
        .skip(1)
        .map(|line| line.split(" #").next().unwrap_or("").trim())
        .filter(|line| !line.is_empty() && !line.starts_with("scripts/"))
        .map(|line| {
            line.replace(
                "target/x86_64-unknown-linux-gnu/release/supervisor",
                SUPERVISOR,
            )
        })
        .collect()
}

/// Everything under /run but ip's own netns directory.
fn run_tree(ns: &HostNs) -> String {
    ns.ok("find /run -mindepth 1 -not -path '/run/netns*' | sort; ls -A /run/netns 2>/dev/null || true")
}

#[test]
fn the_throwaway_namespace_recipe_works_as_written_and_leaves_nothing_behind() {
    let Some(ns) =
        HostNs::new("the_throwaway_namespace_recipe_works_as_written_and_leaves_nothing_behind")
    else {
        return;
    };
    let recipe = namespace_recipe();
    let [add, run, second, del] = &recipe[..] else {
        panic!("the recipe changed: {recipe:?}");
    };
    let before = run_tree(&ns);
    ns.ok(add);
    let mut first = ns
        .command("sh")
        .args(["-c", run])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the recipe's run");
    // Until nc listens, the connection is refused and nc -N exits 1.
    eventually(
        "the second terminal connecting",
        Duration::from_secs(10),
        || {
            let mut nc = ns
                .command("sh")
                .args(["-c", second])
                .stdin(Stdio::piped())
                .spawn()
                .expect("spawn the recipe's nc");
            // A refused nc may have exited already: the write then fails
            // (EPIPE), and so does nc.
            let _ = nc.stdin.take().unwrap().write_all(b"hello\n");
            nc.wait().unwrap().success().then_some(())
        },
    );
    let out = eventually("the run's exit", Duration::from_secs(10), || {
        first.try_wait().expect("try_wait")
    });
    let mut shown = String::new();
    std::io::Read::read_to_string(first.stdout.as_mut().unwrap(), &mut shown).unwrap();
    assert_eq!(shown, "hello\n");
    assert_eq!(out.code(), Some(0));
    ns.ok(del);
    assert_eq!(run_tree(&ns), before, "the recipe left files in /run");
}

/// The README's ruleset-check example, as a new user would paste it.
fn ruleset_check_example() -> Vec<String> {
    let readme = include_str!("../README.md");
    let line = readme
        .split("```")
        .skip(1)
        .step_by(2)
        .flat_map(str::lines)
        .find(|line| line.starts_with("supervisor ruleset check "))
        .expect("the README shows a `supervisor ruleset check` command");
    line.split_whitespace().skip(1).map(String::from).collect()
}

#[test]
fn the_readmes_ruleset_check_of_the_base_ruleset_passes_as_written() {
    let args = ruleset_check_example();
    assert!(
        args.iter().any(|a| a == "nft/supervisor.nft"),
        "the example checks the base ruleset: {args:?}"
    );
    let out = Command::new(SUPERVISOR)
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("supervisor runs");
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

/// The README's CNI install line (without `sudo`, from the binary under
/// test) and its hand-driven ADD and DEL block, as a new user pastes them.
fn cni_example() -> (String, Vec<String>) {
    let readme = include_str!("../README.md");
    let blocks: Vec<&str> = readme.split("```").skip(1).step_by(2).collect();
    let install = blocks
        .iter()
        .flat_map(|block| block.lines())
        .find(|line| line.contains("install ") && line.contains("/opt/cni/bin/"))
        .expect("the README shows how to install the plugin");
    let install = install.split(" #").next().unwrap_or("").trim();
    let install = install.trim_start_matches("sudo ").replace(
        "target/x86_64-unknown-linux-gnu/release/supervisor",
        SUPERVISOR,
    );
    let block = blocks
        .iter()
        .find(|block| block.contains("CNI_COMMAND=ADD"))
        .expect("the README drives the plugin by hand");
    let lines = block
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect();
    (install, lines)
}

#[test]
fn the_readmes_cni_install_and_hand_driven_add_and_del_work_as_written_after_the_quick_start() {
    let Some(ns) = HostNs::new(
        "the_readmes_cni_install_and_hand_driven_add_and_del_work_as_written_after_the_quick_start",
    ) else {
        return;
    };
    // The quick start's run leaves the bridge sv0 (172.16.0.1/24).
    let out = ns.run(&["--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A fresh /opt, this host's own, with no cni/bin in it: as on a
    // machine that never had a plugin there.
    ns.ok("mount -t tmpfs -o mode=755 tmpfs /opt");
    let (install, lines) = cni_example();
    ns.ok(&install);
    let script = format!("set -e\n{}", lines.join("\n"));
    let shown = ns.ok(&script);
    assert!(
        shown.contains(r#""ips":[{"address":"10.88.7.2/24","gateway":"10.88.7.1""#),
        "the ADD's result: {shown}"
    );
    // DEL answered once the attachment's record was gone.
    let out = ns.supervisor().args(["ps", "-aq"]).output().expect("ps");
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
}
