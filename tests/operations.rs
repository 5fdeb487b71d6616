//! `ps`, `stop`, `inspect`, `gc` and unique names, end to end: the built
//! binary in its own throwaway host each (see common/mod.rs).

mod common;

use std::process::{Output, Stdio};

use common::{
    HostNs, UNTIL_STDIN_CLOSES, args, assert_no_state, container_veths, crash_at, elements,
    eth0_address, leases, record, records, stderr, stdout, stop, supervisor, wait_for_no_veth,
};
use serde_json::Value;

/// Field 22 of /proc/PID/stat: when `pid` started, which a record keeps
/// to tell its supervisor from a later process with its pid.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).expect("JSON output")
}

#[test]
fn a_second_run_with_a_live_name_is_refused_naming_the_first() {
    let Some(ns) = HostNs::new("a_second_run_with_a_live_name_is_refused_naming_the_first") else {
        return;
    };
    let (first, _out) = ns.start(&args(&["--name", "web"], UNTIL_STDIN_CLOSES));
    let id = record(&ns, "web")["id"].as_str().unwrap().to_string();
    let (leases_before, veths_before) = (leases(&ns), container_veths(&ns));

    let out = ns.run(&["--name", "web", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out),
        format!(
            "supervisor: the name \"web\" is in use by container {id} (supervisor pid {}); \
             stop it or choose another name\n",
            first.id()
        )
    );
    assert_eq!(leases(&ns), leases_before, "the refused run leased nothing");
    assert_eq!(container_veths(&ns), veths_before, "and created no link");
    assert_eq!(
        record(&ns, "web")["id"],
        id.as_str(),
        "the first is untouched"
    );

    stop(first);
    assert_eq!(records(&ns), "", "the record goes at exit");
    assert_eq!(leases(&ns), "");
    let out = ns.run(&["--name", "web", "true"]);
    assert!(
        out.status.success(),
        "the name is free again: {}",
        stderr(&out)
    );
}

#[test]
fn ps_lists_running_containers_and_json_is_a_stable_array() {
    let Some(ns) = HostNs::new("ps_lists_running_containers_and_json_is_a_stable_array") else {
        return;
    };
    let (alpha, _a) = ns.start(&args(
        &["--name", "alpha", "--ip", "172.16.0.20", "-p", "8080:80"],
        UNTIL_STDIN_CLOSES,
    ));
    let (beta, _b) = ns.start(&args(
        &["--name", "beta", "--network", "none"],
        UNTIL_STDIN_CLOSES,
    ));

    let text = stdout(&supervisor(&ns, &["ps"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("NAME"), "{text}");
    let alpha_line: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(alpha_line[0], "alpha", "{text}");
    assert_eq!(alpha_line[2], alpha.id().to_string(), "{text}");
    assert_eq!(alpha_line[3], "172.16.0.20", "{text}");
    assert_eq!(alpha_line[4], "0.0.0.0:8080->80/tcp", "{text}");
    let beta_line: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!((beta_line[0], beta_line[3]), ("beta", "-"), "{text}");

    let list = json(&supervisor(&ns, &["ps", "--json"]));
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 2);
    let first = list[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "address",
            "address6",
            "command",
            "container_pid",
            "exit_code",
            "finished_at",
            "id",
            "labels",
            "memory",
            "name",
            "nano_cpus",
            "network",
            "pid",
            "pids_limit",
            "ports",
            "started_at",
            "status",
            "uptime_secs"
        ]
    );
    assert_eq!(first["status"], "running");
    assert_eq!(
        first["exit_code"],
        serde_json::Value::Null,
        "until it exits"
    );
    assert_eq!(first["finished_at"], serde_json::Value::Null);
    assert_eq!(first["memory"], serde_json::Value::Null, "unlimited");
    assert_eq!(first["name"], "alpha");
    assert_eq!(first["pid"], alpha.id());
    assert_eq!(first["address"], "172.16.0.20");
    assert_eq!(first["address6"], serde_json::Value::Null, "IPv4 only");
    assert_eq!(first["network"], "bridge");
    assert!(first["container_pid"].as_u64().is_some());
    assert_eq!(
        first["ports"],
        serde_json::json!([
            {"host_ip": null, "host_port": 8080, "container_port": 80, "protocol": "tcp"}
        ])
    );
    assert_eq!(first["command"][0], "sh");
    assert_eq!(list[1]["name"], "beta");
    assert_eq!(list[1]["address"], Value::Null);

    stop(alpha);
    stop(beta);
    assert_eq!(
        json(&supervisor(&ns, &["ps", "--json"])),
        Value::Array(vec![])
    );
}

#[test]
fn stop_terminates_then_kills_and_returns_once_cleaned_up() {
    let Some(ns) = HostNs::new("stop_terminates_then_kills_and_returns_once_cleaned_up") else {
        return;
    };
    // PID 1 of a namespace only sees the signals it handles.
    let (polite, _p) = ns.start(&[
        "--name",
        "polite",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    let (stubborn, _s) = ns.start(&[
        "--name",
        "stubborn",
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    let stubborn_id = record(&ns, "stubborn")["id"].as_str().unwrap().to_string();

    let out = supervisor(
        &ns,
        &["stop", "--time", "1", "polite", &stubborn_id[..6], "nosuch"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].ends_with(
            "stubborn did not exit within 1 s (stop --time) of SIGTERM: killing it (SIGKILL); \
             its command handles or ignores SIGTERM without exiting (or, run with \
             --init=false, has no handler as PID 1): make it exit on SIGTERM, or give it \
             more time with stop --time SECS"
        ),
        "{err}"
    );
    assert_eq!(lines[1], "supervisor: no such container: nosuch");
    assert_eq!(stdout(&out), "polite\nstubborn\n");
    // `stop` returned after both supervisors cleaned up and exited.
    assert_eq!(records(&ns), "");
    assert_eq!(leases(&ns), "");
    let (mut polite, mut stubborn) = (polite, stubborn);
    assert_eq!(polite.wait().unwrap().code(), Some(0), "SIGTERM handled");
    assert_eq!(
        stubborn.wait().unwrap().code(),
        Some(137),
        "SIGKILL after 1 s"
    );
    wait_for_no_veth(&ns);

    let out = supervisor(&ns, &["stop", "polite"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "supervisor: no such container: polite\n");
}

#[test]
fn stop_without_a_time_gives_the_container_its_own_stop_timeout() {
    let Some(ns) = HostNs::new("stop_without_a_time_gives_the_container_its_own_stop_timeout")
    else {
        return;
    };
    let (mut stubborn, _s) = ns.start(&[
        "--name",
        "stubborn",
        "--network",
        "none",
        "--stop-timeout",
        "1",
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    assert_eq!(record(&ns, "stubborn")["stop_timeout"], 1);
    let out = supervisor(&ns, &["stop", "stubborn"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "stubborn did not exit within 1 s (its run --stop-timeout) of SIGTERM: killing it \
             (SIGKILL)"
        ),
        "{err}"
    );
    assert_eq!(stdout(&out), "stubborn\n");
    assert_eq!(stubborn.wait().unwrap().code(), Some(137));
}

#[test]
fn stop_kill_and_exec_refuse_a_state_directory_another_user_can_write() {
    let Some(ns) =
        HostNs::new("stop_kill_and_exec_refuse_a_state_directory_another_user_can_write")
    else {
        return;
    };
    let (container, _out) = ns.start(&args(&["--name", "x"], UNTIL_STDIN_CLOSES));
    // Another user's state directory, holding a record whose "supervisor"
    // is a process of theirs to choose: `stop x` signalled it.
    let mut victim = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let start_time = start_time(victim.id());
    let mut planted = record(&ns, "x");
    planted["supervisor"] = serde_json::json!({"pid": victim.id(), "start_time": start_time});
    ns.ok("mkdir -p /run/evil/containers");
    std::fs::write(ns.path("/run/evil/containers/x.json"), planted.to_string()).unwrap();
    ns.ok("chown -R 65534 /run/evil");
    for command in [&["stop", "x"][..], &["kill", "x"], &["exec", "x", "true"]] {
        let mut full = vec![command[0], "--state-dir", "/run/evil"];
        full.extend_from_slice(&command[1..]);
        let out = supervisor(&ns, &full);
        assert!(!out.status.success(), "{command:?}");
        assert!(
            stderr(&out).starts_with("supervisor: /run/evil: owned by uid 65534, not 0;"),
            "{command:?}: {}",
            stderr(&out)
        );
        assert_eq!(victim.try_wait().unwrap(), None, "{command:?} signalled it");
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    stop(container);
    assert_no_state(&ns);
}

#[test]
fn stop_ends_a_plain_command_without_waiting_out_the_grace_period() {
    let Some(ns) = HostNs::new("stop_ends_a_plain_command_without_waiting_out_the_grace_period")
    else {
        return;
    };
    // No trap: under the default init, sleep dies of SIGTERM itself.
    let (plain, _out) = ns.start(&[
        "--name",
        "plain",
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 100",
    ]);
    let out = supervisor(&ns, &["stop", "--time", "30", "plain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Waiting out the grace period would end in its SIGKILL: 137, and
    // stop's warning that the container did not exit within it.
    assert!(!stderr(&out).contains("did not exit"), "{}", stderr(&out));
    let mut plain = plain;
    assert_eq!(plain.wait().unwrap().code(), Some(143), "killed by SIGTERM");
    assert_no_state(&ns);
}

#[test]
fn commands_that_need_root_say_which_privilege_is_missing_and_change_nothing() {
    let Some(ns) =
        HostNs::new("commands_that_need_root_say_which_privilege_is_missing_and_change_nothing")
    else {
        return;
    };
    let (web, _out) = ns.start(&[
        "--name",
        "web",
        "--",
        "sh",
        "-c",
        "echo ready; read _ || true",
    ]);
    let as_nobody = |args: &[&str]| {
        common::run(
            ns.command("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(common::SUPERVISOR)
                .args(args),
        )
    };
    for (args, message) in [
        (
            &["stop", "web"][..],
            "supervisor: stop needs CAP_KILL to signal containers, which run as root: \
             run it as root\n",
        ),
        (
            &["inspect", "web"],
            "supervisor: inspect needs CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_NET_ADMIN to look \
             into the container's namespaces and firewall: run it as root\n",
        ),
        (
            &["gc"],
            "supervisor: gc needs CAP_NET_ADMIN to remove links and firewall elements: \
             run it as root\n",
        ),
        (
            &["rm", "-f", "web"],
            "supervisor: rm needs CAP_KILL to stop containers, which run as root, and remove \
             what they leave: run it as root\n",
        ),
    ] {
        let out = as_nobody(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), message, "{args:?}");
    }
    let file = common::unique_temp_path("privileges").with_extension("nft");
    std::fs::write(
        &file,
        "table inet t {\n  chain c { type filter hook input priority 0; }\n}\n",
    )
    .unwrap();
    let load = as_nobody(&["ruleset", "load", file.to_str().unwrap()]);
    let check = as_nobody(&["ruleset", "check", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(load.status.code(), Some(1));
    assert_eq!(
        stderr(&load),
        "ruleset load needs CAP_NET_ADMIN to change the kernel's nftables: run it as root \
         (ruleset check needs nothing)\n"
    );
    assert!(check.status.success(), "{}", stderr(&check));
    // Reading is open to anyone, as the records are.
    assert!(as_nobody(&["ps"]).status.success());
    // A user who forgot sudo where root's state directory exists is told
    // that, not that the directory is root's (exit 125: their own error).
    for (args, message) in [
        (
            &["run", "--", "true"][..],
            "supervisor: missing capabilities CAP_SYS_ADMIN, CAP_SETPCAP, CAP_NET_ADMIN: \
             run as root\n",
        ),
        (
            &["exec", "web", "true"],
            "supervisor: exec into web needs root (CAP_SYS_ADMIN, to join its namespaces)\n",
        ),
    ] {
        let out = as_nobody(args);
        assert_eq!(
            (out.status.code(), stderr(&out).as_str()),
            (Some(125), message),
            "{args:?}"
        );
    }
    assert_eq!(records(&ns), "web.json\n");
    stop(web);
}

#[test]
fn inspect_shows_the_record_with_its_link_and_addresses() {
    let Some(ns) = HostNs::new("inspect_shows_the_record_with_its_link_and_addresses") else {
        return;
    };
    let (web, _out) = ns.start(&args(
        &["--name", "web", "--ip", "172.16.0.40", "-p", "8080:80"],
        UNTIL_STDIN_CLOSES,
    ));
    let view = json(&supervisor(&ns, &["inspect", "web"]));
    let id = view["id"].as_str().unwrap();
    let veth = format!("sv-{id}");
    assert_eq!(view["name"], "web");
    assert_eq!(view["supervisor"]["pid"], web.id());
    assert!(view["supervisor"]["start_time"].as_u64().unwrap() > 0);
    assert_eq!(view["address"], "172.16.0.40");
    assert_eq!(view["bridge"], "sv0");
    assert_eq!(view["veth"], veth.as_str());
    let live = &view["live"];
    assert_eq!(live["supervisor_running"], true);
    assert_eq!(live["container_running"], true);
    assert_eq!(live["link"]["name"], veth.as_str());
    assert_eq!(live["link"]["up"], true);
    assert_eq!(live["link"]["bridge"], "sv0");
    let eth0 = serde_json::json!({"interface": "eth0", "address": "172.16.0.40", "prefix_len": 24});
    assert!(
        live["addresses"].as_array().unwrap().contains(&eth0),
        "{live}"
    );
    let generation = view["generation"].as_u64().expect("a generation");
    assert_eq!(
        live["elements"],
        serde_json::json!([
            "tcp_ports 8080",
            format!("spoof_guard \"{veth}\" . 172.16.0.40 . 02:42:ac:10:00:28"),
            format!("mac_guard \"{veth}\" . 02:42:ac:10:00:28"),
            "generations 172.16.0.40",
            format!("live 172.16.0.40 . {generation:#010x}")
        ])
    );
    // By id prefix too.
    assert_eq!(
        json(&supervisor(&ns, &["inspect", &id[..4]]))["name"],
        "web"
    );

    let out = supervisor(&ns, &["inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "supervisor: no such container: nosuch\n");
    stop(web);
}

#[test]
fn gc_removes_what_no_live_supervisor_explains_and_keeps_the_rest() {
    let Some(ns) = HostNs::new("gc_removes_what_no_live_supervisor_explains_and_keeps_the_rest")
    else {
        return;
    };
    let (web, _out) = ns.start(&args(
        &["--name", "web", "--ip", "172.16.0.50", "-p", "8080:80"],
        UNTIL_STDIN_CLOSES,
    ));
    let web_veth = record(&ns, "web")["veth"].as_str().unwrap().to_string();
    // A dead supervisor: a pid that has exited, with a start time of its own.
    let dead: u32 = ns.ok("sh -c 'echo $$'").trim().parse().unwrap();
    ns.ok(&format!(
        r#"cd /run/supervisor/containers
        echo '{{"name":"ghost","id":"0000deadbeef","supervisor":{{"pid":{dead},"start_time":1}},
              "bridge":"sv0","address":"172.16.0.60","started_at":0,"command":[]}}' > ghost.json
        echo '{{"name": tru' > junk.json
        echo half > .half.json.tmp
        echo stray > /run/supervisor/leases/not-a-bridge
        cd /run/supervisor/leases/sv0
        printf 'name=ghost\nid=0000deadbeef\npid={dead}\npid_start=1\n' > 172.16.0.60
        echo garbage > 172.16.0.61
        printf 'name=web\nid=x\npid=1\npid_start=1\n' > 10.1.2.3
        ip link add sv-0000deadbeef type veth peer name ghost-peer
        ip link set sv-0000deadbeef master sv0
        ip link add sv-0123456789ab type veth peer name stray-peer
        ip link set sv-0123456789ab master sv0
        ip link add sv-mine type veth peer name mine-peer
        nft add element ip supervisor tcp_ports '{{ 7777 comment "ghost 0000deadbeef" : 172.16.0.60 . 80 }}'"#
    ));

    let out = supervisor(&ns, &["gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut removed: Vec<&str> = text.lines().collect();
    removed.sort();
    let expected = [
        "removed element tcp_ports 7777 of ghost (0000deadbeef): no live container has it"
            .to_string(),
        "removed lease 10.1.2.3: not a container address here (bridge sv0)".to_string(),
        format!(
            "removed lease 172.16.0.60: its supervisor (pid {dead}, container ghost 0000deadbeef) is gone (bridge sv0)"
        ),
        "removed lease 172.16.0.61: unreadable (bridge sv0)".to_string(),
        "removed link sv-0000deadbeef: no live container has it".to_string(),
        "removed link sv-0123456789ab: no live container has it".to_string(),
        "removed record /run/supervisor/containers/.half.json.tmp: unfinished".to_string(),
        "removed record /run/supervisor/containers/junk.json: corrupt (expected ident at line 2 column 0)".to_string(),
        format!("removed record ghost (0000deadbeef): its supervisor (pid {dead}) is gone"),
    ];
    assert_eq!(removed, expected, "{text}");

    // The live container and a stranger's link are untouched.
    assert_eq!(records(&ns), "web.json\n");
    assert_eq!(elements(&ns), 5, "web's port, two guards, generation (two)");
    assert_eq!(leases(&ns), "172.16.0.50\n");
    let mut links = container_veths(&ns);
    links.sort();
    assert_eq!(links, [web_veth, "sv-mine".to_string()]);
    assert_eq!(
        json(&supervisor(&ns, &["inspect", "web"]))["live"]["container_running"],
        true
    );
    let again = supervisor(&ns, &["gc"]);
    assert!(again.status.success());
    assert_eq!(stdout(&again), "", "nothing left to remove");
    stop(web);
}

#[test]
fn gc_goes_on_past_what_it_cannot_remove_names_each_and_fails() {
    let Some(ns) = HostNs::new("gc_goes_on_past_what_it_cannot_remove_names_each_and_fails") else {
        return;
    };
    // The bridge, the tables and the lease directory, as any run leaves them.
    let out = ns.run(&["true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Its veth dies with its namespace, in the kernel's own time: wait, or
    // gc may find it still going and list it too.
    ns.ok("for i in $(seq 1000); do ip -br link show type veth | grep -q . || exit 0; sleep 0.01; done; exit 1");
    let dead: u32 = ns.ok("sh -c 'echo $$'").trim().parse().unwrap();
    ns.ok(&format!(
        r#"cd /run/supervisor/containers
        echo '{{"name":"ghost","id":"0000deadbeef","supervisor":{{"pid":{dead},"start_time":1}},
              "bridge":"sv0","address":"172.16.0.60","started_at":0,"command":[]}}' > ghost.json
        echo '{{"name": tru' > junk.json
        cd /run/supervisor/leases/sv0
        printf 'name=ghost\nid=0000deadbeef\npid={dead}\npid_start=1\n' > 172.16.0.60
        ip link add sv-0000deadbeef type veth peer name ghost-peer
        ip link set sv-0000deadbeef master sv0
        nft add element ip supervisor tcp_ports '{{ 7777 comment "ghost 0000deadbeef" : 172.16.0.60 . 80 }}'
        # Not even root can change a read-only mount.
        mount --bind /run/supervisor/leases/sv0 /run/supervisor/leases/sv0
        mount -o remount,bind,ro /run/supervisor/leases/sv0"#
    ));

    let out = supervisor(&ns, &["gc"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mut removed: Vec<String> = stdout(&out).lines().map(String::from).collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            "removed element tcp_ports 7777 of ghost (0000deadbeef): no live container has it",
            "removed link sv-0000deadbeef: no live container has it",
            "removed record /run/supervisor/containers/junk.json: corrupt (expected ident at line 2 column 0)",
        ],
        "the rest is removed"
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert_eq!(lines[0], "supervisor: could not remove 2 things:");
    assert!(
        lines[1]
            .starts_with("  lease 172.16.0.60 of ghost (bridge sv0): /run/supervisor/leases/sv0"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("  the leases of bridge sv0: "),
        "{err}"
    );
    for line in &lines[1..] {
        assert!(
            line.ends_with("Read-only file system (os error 30)"),
            "{err}"
        );
        assert_eq!(
            line.matches("Read-only").count(),
            1,
            "each cause once: {err}"
        );
    }
    // Kept while its lease is: it explains what is left.
    assert_eq!(records(&ns), "ghost.json\n");

    ns.ok("umount /run/supervisor/leases/sv0");
    let again = supervisor(&ns, &["gc"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let mut removed: Vec<String> = stdout(&again).lines().map(String::from).collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            format!(
                "removed lease 172.16.0.60: its supervisor (pid {dead}, container ghost 0000deadbeef) is gone (bridge sv0)"
            ),
            format!("removed record ghost (0000deadbeef): its supervisor (pid {dead}) is gone"),
        ]
    );
    assert_eq!(records(&ns), "");
    assert_eq!(leases(&ns), "");
}

#[test]
fn a_run_whose_teardown_fails_names_each_failure_once_and_keeps_the_commands_code() {
    let Some(ns) = HostNs::new("a_run_whose_teardown_fails_names_each_failure_once") else {
        return;
    };
    let mut child = ns
        .supervisor()
        .args([
            "run",
            "--name",
            "web",
            "--",
            "sh",
            "-c",
            "echo ready; read _; exit 3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    let _out = common::wait_ready(&mut child);
    // Not even root can change a read-only mount.
    ns.ok(
        "for dir in /run/supervisor/leases/sv0 /run/supervisor/files; do
             mount --bind $dir $dir && mount -o remount,bind,ro $dir
           done",
    );
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("supervisor: teardown: giving back its address 172.16.0.2: "),
        "{err}"
    );
    assert!(
        lines[1].starts_with("supervisor: teardown: removing /run/supervisor/files/"),
        "{err}"
    );
    for line in lines {
        assert_eq!(line.matches("Read-only file system").count(), 1, "{err}");
    }
    // The rest went: the record last.
    assert_eq!(records(&ns), "");
}

#[test]
fn gc_with_another_subnet_keeps_a_live_containers_lease_and_says_so() {
    let Some(ns) = HostNs::new("gc_with_another_subnet_keeps_a_live_containers_lease") else {
        return;
    };
    let (web, _out) = ns.start(&args(
        &["--name", "web", "--ip", "172.16.0.50"],
        UNTIL_STDIN_CLOSES,
    ));
    let id = record(&ns, "web")["id"].as_str().unwrap().to_string();
    let out = supervisor(&ns, &["gc", "--subnet", "10.1.0.0/24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("kept lease 172.16.0.50: outside 10.1.0.0/24, but its supervisor (pid ")
            && text.ends_with(&format!(", container web {id}) is alive (bridge sv0)\n")),
        "{text}"
    );
    assert_eq!(leases(&ns), "172.16.0.50\n");
    // The address is still taken: a second container cannot have it.
    let out = ns.run(&["--ip", "172.16.0.50", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("address 172.16.0.50 is in use by container web"),
        "{}",
        stderr(&out)
    );
    stop(web);
}

#[test]
fn a_name_or_address_held_by_a_dead_supervisor_is_reclaimed_by_the_next_run() {
    let Some(ns) =
        HostNs::new("a_name_or_address_held_by_a_dead_supervisor_is_reclaimed_by_the_next_run")
    else {
        return;
    };
    let sleeper = ["sleep", "1000"];
    crash_at(
        &ns,
        "running",
        &args(&["--name", "web", "--ip", "172.16.0.30"], &sleeper),
    );
    assert_eq!(records(&ns), "web.json\n");
    assert_eq!(leases(&ns), "172.16.0.30\n");
    let eth0 = eth0_address(&ns, &["--name", "web", "--ip", "172.16.0.30"]);
    assert!(eth0.contains("172.16.0.30/24"), "{eth0}");
    assert_no_state(&ns);

    // The address alone: the dead one's record goes with it.
    crash_at(
        &ns,
        "running",
        &args(&["--name", "old", "--ip", "172.16.0.31"], &sleeper),
    );
    let out = ns.run(&["--name", "new", "--ip", "172.16.0.31", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_state(&ns);

    // A port published by a dead supervisor: taken back, and its record.
    crash_at(
        &ns,
        "running",
        &args(&["--name", "holder", "-p", "8080:80"], &sleeper),
    );
    assert_eq!(elements(&ns), 5, "its port, two guards, generation (two)");
    let out = ns.run(&["--name", "taker", "-p", "8080:80", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_state(&ns);

    // `stop` of a container whose supervisor died cleans up after it.
    crash_at(&ns, "running", &args(&["--name", "gone"], &sleeper));
    let out = supervisor(&ns, &["stop", "gone"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "gone\n");
    assert_no_state(&ns);
    wait_for_no_veth(&ns);
}

#[test]
fn commands_on_an_empty_or_missing_state_directory_are_quiet() {
    let Some(ns) = HostNs::new("commands_on_an_empty_or_missing_state_directory_are_quiet") else {
        return;
    };
    let out = supervisor(&ns, &["ps", "--json"]);
    assert_eq!(stdout(&out), "[]\n");
    let out = supervisor(&ns, &["gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let out = ns
        .supervisor()
        .args(["stop", "web"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ps_summarises_thousands_of_ports_in_the_table_and_lists_them_all_in_json() {
    // A record is enough: `ps` reads records, and this test process is
    // the live supervisor it names.
    let dir = common::unique_temp_path("ps-ports");
    let containers = dir.join("containers");
    std::fs::create_dir_all(&containers).unwrap();
    let me = std::process::id();
    let start_time = start_time(me);
    let ports: Vec<Value> = (0..5000u32)
        .map(|i| {
            serde_json::json!({"host_ip": null, "host_port": 10000 + i, "container_port": 10000 + i, "protocol": "tcp"})
        })
        .chain((0..3000u32).map(|i| {
            serde_json::json!({"host_ip": "127.0.0.1", "host_port": 20000 + 2 * i, "container_port": 80, "protocol": "udp"})
        }))
        .collect();
    let record = serde_json::json!({
        "name": "many", "id": "0123456789ab",
        "supervisor": {"pid": me, "start_time": start_time},
        "ports": ports, "started_at": 0, "command": ["true"],
    });
    std::fs::write(containers.join("many.json"), record.to_string()).unwrap();
    let ps = |args: &[&str]| {
        common::run(
            std::process::Command::new(common::SUPERVISOR)
                .arg("--state-dir")
                .arg(&dir)
                .arg("ps")
                .args(args),
        )
    };

    let out = ps(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row = text.lines().nth(1).expect("a row");
    assert!(
        row.contains(
            "0.0.0.0:10000-14999->10000-14999/tcp, 127.0.0.1:20000->80/udp, 127.0.0.1:20002->80/udp, 127.0.0.1:20004->80/udp, …(+2997 more)"
        ),
        "{text}"
    );
    assert!(row.chars().count() < 250, "{row}");

    let listed = json(&ps(&["--json"]));
    assert_eq!(listed[0]["ports"].as_array().map(Vec::len), Some(8000));
    assert_eq!(listed[0]["ports"][7999]["host_port"], 25998);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_and_gc_right_after_a_container_ends_leave_its_dying_veth_to_the_kernel() {
    let Some(ns) =
        HostNs::new("check_and_gc_right_after_a_container_ends_leave_its_dying_veth_to_the_kernel")
    else {
        return;
    };
    // The kernel deletes the veth once it has torn down the container's
    // namespace, milliseconds after the run returns: catch that moment.
    let mut caught = 0;
    for round in 0..40 {
        let out = ns.run(&["--", "true"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let dying = !container_veths(&ns).is_empty();
        let command = if round % 2 == 0 { "check" } else { "gc" };
        let seen = supervisor(&ns, &[command]);
        assert_eq!(
            (seen.status.success(), stdout(&seen).as_str()),
            (true, ""),
            "{command} right after a run (its veth still listed: {dying}): {}",
            stderr(&seen)
        );
        caught += usize::from(dying);
    }
    eprintln!("a dying veth was still there in {caught} of 40 rounds");
    wait_for_no_veth(&ns);
    assert_no_state(&ns);
}

#[test]
fn a_state_directory_holding_what_the_supervisor_does_not_make_is_refused_and_left_alone() {
    let Some(ns) = HostNs::new(
        "a_state_directory_holding_what_the_supervisor_does_not_make_is_refused_and_left_alone",
    ) else {
        return;
    };
    ns.ok("mkdir -p /run/etc-like && echo root:x:0:0 > /run/etc-like/passwd");
    let refused = |args: &[&str], code: i32| {
        let out = common::run(
            ns.supervisor()
                .args(["--state-dir", "/run/etc-like"])
                .args(args),
        );
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "supervisor: --state-dir /run/etc-like: it holds \"passwd\", which is not the \
             supervisor's: give an empty or new directory\n",
            "{args:?}"
        );
    };
    refused(&["run", "--", "true"], 125);
    refused(&["run", "-d", "--", "sleep", "1"], 125);
    refused(&["gc"], 1);
    assert_eq!(ns.ok("ls /run/etc-like"), "passwd\n", "nothing made there");
    // A new directory, and then the one the supervisor made, are fine.
    for _ in 0..2 {
        let out = common::run(ns.supervisor().args([
            "--state-dir",
            "/run/fresh",
            "run",
            "-p",
            "8080:80",
            "--",
            "true",
        ]));
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// Whether any process here holds the namespace `link` (as `readlink`
/// prints it): as its own, or through an open descriptor.
fn namespace_held(link: &str) -> bool {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    processes.flatten().any(|process| {
        let path = process.path();
        let own = std::fs::read_link(path.join("ns/mnt")).is_ok_and(|l| l.as_os_str() == link);
        let open = std::fs::read_dir(path.join("fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == link))
        });
        own || open
    })
}

/// Whether process `pid` holds an open descriptor of namespace `link`.
fn holds_descriptor_of(pid: u32, link: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == link))
    })
}

#[test]
fn the_supervisor_holds_its_containers_mount_namespace_before_releasing_the_command() {
    let Some(ns) = HostNs::new(
        "the_supervisor_holds_its_containers_mount_namespace_before_releasing_the_command",
    ) else {
        return;
    };
    // A command that exits at once would otherwise take the namespace with
    // it before the supervisor looks, and its init's exit would do every
    // unmount on the way to the supervisor's own exit, not the holder.
    let mut child = common::background(
        ns.supervisor()
            .env("SUPERVISOR_TEST_PAUSE_AT", "recorded")
            .args(["run", "-p", "8080:80", "--", "true"]),
    );
    let pid = child.id();
    common::eventually(
        "the supervisor stopping at recorded",
        std::time::Duration::from_secs(30),
        || (common::process_state(pid) == Some('T')).then_some(()),
    );
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("read the supervisor's children");
    let container: u32 = children.trim().parse().expect("one container pid");
    let link = std::fs::read_link(format!("/proc/{container}/ns/mnt"))
        .expect("the container's mount namespace");
    let link = link.to_string_lossy().into_owned();
    let held = holds_descriptor_of(pid, &link);
    // SAFETY: kill on our own child's pid, not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let status = child.wait().expect("wait for the supervisor");
    assert!(status.success(), "{status}");
    assert!(held, "no descriptor of {link} before the release");
    assert_no_state(&ns);
}

#[test]
fn a_finished_containers_mount_namespace_goes_soon_after_its_supervisor() {
    let Some(ns) =
        HostNs::new("a_finished_containers_mount_namespace_goes_soon_after_its_supervisor")
    else {
        return;
    };
    // The supervisor keeps the namespace past the container's exit and
    // leaves its last close (the unmounts) to the holder of its netfilter
    // socket, after its own exit: its mounts, volumes included, must
    // still go then.
    let out = ns.run(&["--", "readlink", "/proc/self/ns/mnt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let link = stdout(&out).trim().to_string();
    assert!(link.starts_with("mnt:["), "not a namespace: {link:?}");
    common::eventually(
        "the container's mount namespace let go",
        std::time::Duration::from_secs(5),
        || (!namespace_held(&link)).then_some(()),
    );
    assert_no_state(&ns);
}

/// `gc --bridge` names the bridge whose links and lease directory it
/// sweeps: a name no bridge can have (`all`, `default`: the sysctls' own;
/// one that cannot name a lease directory) is refused as `run` refuses it,
/// and nothing is made.
#[test]
fn gc_refuses_a_bridge_name_no_bridge_can_have_as_run_does() {
    let Some(ns) = HostNs::new("gc_refuses_a_bridge_name_no_bridge_can_have_as_run_does") else {
        return;
    };
    for bad in ["all", "default", "a/b", ".x"] {
        let out = supervisor(&ns, &["gc", "--bridge", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stdout(&out));
        let run = supervisor(&ns, &["run", "--bridge", bad, "--", "true"]);
        assert_eq!(stderr(&out), stderr(&run), "{bad}: gc and run differ");
        assert!(
            stderr(&out).starts_with(&format!("supervisor: invalid --bridge {bad:?}: ")),
            "{bad}: {}",
            stderr(&out)
        );
    }
    assert_eq!(ns.ok("ls -A /run"), "", "nothing made");
}
