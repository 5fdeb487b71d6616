//! docker's everyday options, end to end: `run --env-file` and `--label`,
//! `ps --filter`, `-q` and `--format`, `kill`, `stop --all` and `inspect`
//! of several containers. Each test has its own throwaway host (see
//! common/mod.rs).

mod common;

use std::io::BufRead;
use std::process::Output;
use std::time::Duration;

use common::{
    HostNs, UNTIL_STDIN_CLOSES, args, container_veths, leases, records, stderr, stdout, supervisor,
};
use serde_json::Value;

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
}

fn id_of(ns: &HostNs, name: &str) -> String {
    common::record(ns, name)["id"]
        .as_str()
        .expect("an id")
        .to_string()
}

#[test]
fn env_file_values_are_seen_inside_and_dash_e_wins() {
    let Some(ns) = HostNs::new("env_file_values_are_seen_inside_and_dash_e_wins") else {
        return;
    };
    ns.ok(
        "printf '# settings\\n\\nA=from file\\nB=file\\nC=\"quoted\" \\nHOST_ONLY\\n' > /run/app.env",
    );
    let mut cmd = ns.supervisor();
    cmd.env("HOST_ONLY", "passed through").args(args(
        &[
            "run",
            "--network",
            "none",
            "--env-file",
            "/run/app.env",
            "-e",
            "B=flag",
        ],
        &["sh", "-c", "echo \"$A|$B|$C|$HOST_ONLY\""],
    ));
    let out = common::run(&mut cmd);
    assert_eq!(ok(&out), "from file|flag|\"quoted\" |passed through\n");
}

#[test]
fn a_bad_env_file_line_is_refused_naming_file_and_line_and_nothing_is_created() {
    let Some(ns) =
        HostNs::new("a_bad_env_file_line_is_refused_naming_file_and_line_and_nothing_is_created")
    else {
        return;
    };
    ns.ok("printf 'A=1\\n\\nMY VAR=2\\n' > /run/bad.env");
    let out = ns.run(&args(
        &["--env-file", "/run/bad.env", "-p", "8080:80"],
        &["true"],
    ));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "supervisor: --env-file /run/bad.env:3: the variable name contains whitespace\n"
    );
    let out = ns.run(&args(&["--env-file", "/run/missing.env"], &["true"]));
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).starts_with("supervisor: reading --env-file /run/missing.env: No such file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(records(&ns), "", "no record");
    assert_eq!(leases(&ns), "", "no lease");
    assert!(container_veths(&ns).is_empty(), "no link");
}

/// `/dev/zero` never ends: read whole, it held the supervisor until the
/// OOM killer ended it (exit 137, nothing said); an endless file is refused
/// naming it once it passes the size no environment could take.
#[test]
fn an_endless_env_or_label_file_is_refused_naming_it_and_nothing_is_created() {
    let Some(ns) =
        HostNs::new("an_endless_env_or_label_file_is_refused_naming_it_and_nothing_is_created")
    else {
        return;
    };
    for option in ["--env-file", "--label-file"] {
        let out = ns.run(&args(&[option, "/dev/zero", "-p", "8080:80"], &["true"]));
        assert_eq!(
            (out.status.code(), stderr(&out)),
            (
                Some(125),
                format!("supervisor: reading {option} /dev/zero: larger than 4 MiB\n")
            )
        );
    }
    common::assert_no_state(&ns);
    assert!(container_veths(&ns).is_empty(), "no link");
}

/// One variable longer than the kernel passes to a command (131,071 bytes
/// as `KEY=VALUE`) failed the exec once the network was made, and blamed
/// the command: "true: cannot execute: Argument list too long", 126.
#[test]
fn an_env_file_variable_longer_than_the_kernel_passes_is_refused_naming_it() {
    let Some(ns) =
        HostNs::new("an_env_file_variable_longer_than_the_kernel_passes_is_refused_naming_it")
    else {
        return;
    };
    ns.ok("printf 'SMALL=1\\nBIG=%0131067d\\n' 0 > /run/big.env");
    let fits = ns.run(&args(
        &["--env-file", "/run/big.env", "--network", "none"],
        &["true"],
    ));
    assert_eq!(fits.status.code(), Some(0), "{}", stderr(&fits));
    ns.ok("printf 'SMALL=1\\nBIG=%0131068d\\n' 0 > /run/big.env");
    let out = ns.run(&args(
        &["--env-file", "/run/big.env", "-p", "8080:80"],
        &["true"],
    ));
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(125),
            "supervisor: invalid environment variable BIG: 131072 bytes as KEY=VALUE, more than the kernel passes to a command (131071)\n".to_string()
        )
    );
    common::assert_no_state(&ns);
    assert!(container_veths(&ns).is_empty(), "no link");
}

/// `docker run --rm -it IMAGE CMD` is the first line a docker user types:
/// the same flags work here, as what `run` does anyway (stdin passes
/// through, the terminal is the command's when there is one, a foreground
/// run leaves nothing); with `-d`, where they would mean something else,
/// they are refused naming both, and nothing is made.
#[test]
fn dockers_rm_and_it_are_accepted_in_the_foreground_and_refused_with_detach() {
    let Some(ns) =
        HostNs::new("dockers_rm_and_it_are_accepted_in_the_foreground_and_refused_with_detach")
    else {
        return;
    };
    let mut child = ns
        .supervisor()
        .args(["run", "--rm", "-it", "--name", "cat", "--", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn supervisor");
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"typed\n").expect("write stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("wait supervisor");
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (Some(0), "typed\n".to_string(), String::new())
    );
    for flags in [&["-d", "-i"][..], &["-d", "-t"], &["--rm", "-d"]] {
        let out = ns.run(&args(flags, &["true"]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {err}");
        assert!(
            err.starts_with("supervisor: the argument '-")
                && err
                    .lines()
                    .next()
                    .unwrap()
                    .contains("cannot be used with '--"),
            "{flags:?}: {err}"
        );
    }
    common::assert_no_state(&ns);
    assert!(container_veths(&ns).is_empty(), "no link");
}

#[test]
fn labels_show_in_inspect_and_ps_filters_by_label_and_name() {
    let Some(ns) = HostNs::new("labels_show_in_inspect_and_ps_filters_by_label_and_name") else {
        return;
    };
    let (alpha, _a) = ns.start(&args(
        &[
            "--name",
            "alpha",
            "--network",
            "none",
            "--label",
            "tier=web",
            "-l",
            "canary",
        ],
        UNTIL_STDIN_CLOSES,
    ));
    let (beta, _b) = ns.start(&args(
        &["--name", "beta", "--network", "none", "--label", "tier=db"],
        UNTIL_STDIN_CLOSES,
    ));
    let view: Value = serde_json::from_str(&ok(&supervisor(&ns, &["inspect", "alpha"]))).unwrap();
    assert_eq!(
        view["labels"],
        serde_json::json!({"tier": "web", "canary": ""})
    );

    let names = |filters: &[&str]| {
        let mut all = vec!["ps", "--format", "{{.Name}}"];
        for filter in filters {
            all.extend(["--filter", filter]);
        }
        ok(&supervisor(&ns, &all))
    };
    assert_eq!(names(&["label=tier"]), "alpha\nbeta\n");
    assert_eq!(names(&["label=tier=web"]), "alpha\n");
    assert_eq!(names(&["label=canary"]), "alpha\n");
    assert_eq!(
        names(&["label=canary", "label=tier=db"]),
        "",
        "labels ANDed"
    );
    assert_eq!(names(&["name=alp"]), "alpha\n");
    assert_eq!(
        names(&["name=alp", "name=et"]),
        "alpha\nbeta\n",
        "names ORed"
    );
    assert_eq!(names(&["name=et", "label=tier=web"]), "", "keys ANDed");
    let out = supervisor(&ns, &["ps", "--filter", "status=running"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "supervisor: invalid --filter \"status=running\": expected name=SUBSTRING, label=KEY or label=KEY=VALUE\n"
    );
    common::stop(alpha);
    common::stop(beta);
}

#[test]
fn ps_quiet_prints_ids_and_format_takes_templates_and_json() {
    let Some(ns) = HostNs::new("ps_quiet_prints_ids_and_format_takes_templates_and_json") else {
        return;
    };
    let (alpha, _a) = ns.start(&args(
        &["--name", "alpha", "-p", "8080:80", "--label", "tier=web"],
        UNTIL_STDIN_CLOSES,
    ));
    let (beta, _b) = ns.start(&args(
        &["--name", "beta", "--network", "none"],
        UNTIL_STDIN_CLOSES,
    ));
    let (alpha_id, beta_id) = (id_of(&ns, "alpha"), id_of(&ns, "beta"));

    assert_eq!(
        ok(&supervisor(&ns, &["ps", "-q"])),
        format!("{alpha_id}\n{beta_id}\n")
    );
    assert_eq!(
        ok(&supervisor(
            &ns,
            &["ps", "--format", "{{.Name}} {{.Ports}} {{.Label \"tier\"}}"]
        )),
        "alpha 0.0.0.0:8080->80/tcp web\nbeta  \n"
    );
    let table = ok(&supervisor(
        &ns,
        &["ps", "--format", "table {{.ID}}\\t{{.Name}}"],
    ));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ID", "NAME"]
    );
    assert_eq!(lines[1], format!("{alpha_id}   alpha"));
    let json_lines = ok(&supervisor(&ns, &["ps", "--format", "json"]));
    let rows: Vec<Value> = json_lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "alpha");
    assert_eq!(rows[0]["labels"]["tier"], "web");
    assert_eq!(rows[1]["id"], beta_id.as_str());
    let pretty: Value = serde_json::from_str(&ok(&supervisor(&ns, &["ps", "--json"]))).unwrap();
    assert_eq!(
        pretty.as_array().map(Vec::len),
        Some(2),
        "--json still an array"
    );

    let out = supervisor(&ns, &["ps", "--format", "{{.Name}} {{.Image}}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("supervisor: unknown field \"{{.Image}}\" in --format"),
        "{}",
        stderr(&out)
    );
    common::stop(alpha);
    common::stop(beta);
}

#[test]
fn kill_sends_the_signal_to_the_containers_trap_and_returns_at_once() {
    let Some(ns) = HostNs::new("kill_sends_the_signal_to_the_containers_trap_and_returns_at_once")
    else {
        return;
    };
    let script = "trap 'echo got-USR1' USR1; trap 'echo got-TERM; exit 3' TERM; \
                  echo ready; while :; do sleep 0.1; done";
    let (mut child, mut out) = ns.start(&args(
        &["--name", "web", "--network", "none"],
        &["sh", "-c", script],
    ));
    let mut next_line = || {
        let mut line = String::new();
        out.read_line(&mut line).expect("container output");
        line
    };
    assert_eq!(
        ok(&supervisor(&ns, &["kill", "-s", "USR1", "web"])),
        "web\n"
    );
    assert_eq!(next_line(), "got-USR1\n");
    assert!(
        child.try_wait().unwrap().is_none(),
        "USR1 is trapped: still running"
    );
    assert_eq!(
        ok(&supervisor(&ns, &["kill", "--signal", "SIGTERM", "web"])),
        "web\n"
    );
    assert_eq!(next_line(), "got-TERM\n");
    let status = child.wait().expect("supervisor exits");
    assert_eq!(status.code(), Some(3), "the trap's exit code");
}

#[test]
fn kill_of_an_unknown_name_fails_naming_it_and_still_kills_the_others() {
    let Some(ns) =
        HostNs::new("kill_of_an_unknown_name_fails_naming_it_and_still_kills_the_others")
    else {
        return;
    };
    let (mut web, _out) = ns.start(&args(
        &["--name", "web", "--network", "none"],
        UNTIL_STDIN_CLOSES,
    ));
    let out = supervisor(&ns, &["kill", "nosuch", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "supervisor: no such container: nosuch\n");
    assert_eq!(stdout(&out), "web\n");
    let status = web.wait().expect("supervisor exits");
    assert_eq!(status.code(), Some(137), "SIGKILL by default");
    assert_eq!(records(&ns), "");
}

#[test]
fn stop_all_stops_every_running_container() {
    let Some(ns) = HostNs::new("stop_all_stops_every_running_container") else {
        return;
    };
    let (mut alpha, _a) = ns.start(&args(&["--name", "alpha"], UNTIL_STDIN_CLOSES));
    let (mut beta, _b) = ns.start(&args(
        &["--name", "beta", "--network", "none"],
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    ));
    let out = supervisor(&ns, &["stop", "--all", "-t", "1"]);
    let stopped = ok(&out);
    let mut names: Vec<&str> = stopped.lines().collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
    // The one ignoring SIGTERM is killed after -t's second, not the
    // default 10, and stop says which it waited.
    assert!(
        stderr(&out).contains("beta did not exit within 1 s (stop --time)"),
        "-t 1 honoured for the one ignoring SIGTERM: {}",
        stderr(&out)
    );
    assert!(alpha.wait().is_ok() && beta.wait().is_ok());
    assert_eq!(records(&ns), "");
    assert_eq!(leases(&ns), "");
    assert_eq!(
        ok(&supervisor(&ns, &["stop", "--all"])),
        "",
        "none left: quiet"
    );
}

#[test]
fn inspect_of_several_names_prints_an_array_and_fails_naming_the_unknown() {
    let Some(ns) =
        HostNs::new("inspect_of_several_names_prints_an_array_and_fails_naming_the_unknown")
    else {
        return;
    };
    let (alpha, _a) = ns.start(&args(&["--name", "alpha"], UNTIL_STDIN_CLOSES));
    let (beta, _b) = ns.start(&args(
        &["--name", "beta", "--network", "none"],
        UNTIL_STDIN_CLOSES,
    ));
    let both: Value =
        serde_json::from_str(&ok(&supervisor(&ns, &["inspect", "alpha", "beta"]))).unwrap();
    let names: Vec<&str> = both
        .as_array()
        .expect("an array")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(both[0]["live"]["container_running"], true);

    let out = supervisor(&ns, &["inspect", "alpha", "nosuch", "beta"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "supervisor: no such container: nosuch\n");
    let known: Value = serde_json::from_str(&stdout(&out)).expect("the known ones, as JSON");
    assert_eq!(known.as_array().map(Vec::len), Some(2));
    common::stop(alpha);
    common::stop(beta);
}

/// The attack: a record whose container pid is now someone else's (here,
/// the same pid with another start time, as after pid reuse). `kill` must
/// check the start time through the pidfd, as `stop` does, and refuse.
#[test]
fn kill_refuses_a_recorded_pid_whose_start_time_is_not_the_containers() {
    let Some(ns) =
        HostNs::new("kill_refuses_a_recorded_pid_whose_start_time_is_not_the_containers")
    else {
        return;
    };
    let (mut web, _out) = ns.start(&args(
        &["--name", "web", "--network", "none"],
        UNTIL_STDIN_CLOSES,
    ));
    let path = format!("/proc/{}/root/run/supervisor/containers/web.json", ns.pid());
    // Once released: the supervisor writes the record again then (the
    // `starting` mark goes), which would undo an edit made before.
    let mut record: Value = common::eventually("web released", Duration::from_secs(30), || {
        let record: Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
        record.get("starting").is_none().then_some(record)
    });
    let start_time = record["container"]["start_time"]
        .as_u64()
        .expect("a container");
    record["container"]["start_time"] = (start_time + 1).into();
    std::fs::write(&path, record.to_string()).unwrap();

    let out = supervisor(&ns, &["kill", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "supervisor: container web is not running\n");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        web.try_wait().unwrap().is_none(),
        "the process at that pid was not killed"
    );
    common::stop(web);
}
