//! Exited containers as docker's users expect: `ps -a`, `rm`, `inspect`
//! and `logs` of a detached container after its end, and `gc` of what it
//! left. The built binary in its own throwaway host each (see
//! common/mod.rs); a detached supervisor lives in the test's pid
//! namespace, so every test stops (or kills) what it started.

mod common;

use std::time::Duration;

use common::{HostNs, assert_no_state, eventually, records, stderr, stdout, supervisor};
use serde_json::Value;

/// `supervisor ARGS…`'s stdout; it must succeed.
fn ok(ns: &HostNs, args: &[&str]) -> String {
    let out = supervisor(ns, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `run -d --name NAME OPTIONS -- COMMAND…`; it must start.
fn detach(ns: &HostNs, name: &str, options: &[&str], command: &[&str]) {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(options);
    all.push("--");
    all.extend_from_slice(command);
    let out = supervisor(ns, &all);
    assert_eq!(out.status.code(), Some(0), "{all:?}: {}", stderr(&out));
}

/// `ps -a --json`, by name.
fn ps_all(ns: &HostNs) -> Vec<Value> {
    let text = ok(ns, &["ps", "-a", "--json"]);
    serde_json::from_str::<Value>(&text)
        .expect("ps --json is JSON")
        .as_array()
        .expect("an array")
        .clone()
}

fn row<'a>(rows: &'a [Value], name: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["name"] == name)
}

/// Waits until `ps -a` shows `name` exited.
fn wait_exited(ns: &HostNs, name: &str) -> Value {
    eventually(&format!("{name} exited"), Duration::from_secs(10), || {
        row(&ps_all(ns), name)
            .filter(|r| r["status"] == "exited")
            .cloned()
    })
}

/// The files of the state directory's exited records and logs.
fn remains(ns: &HostNs) -> String {
    ns.ok("cd /run/supervisor && ls -A exited logs 2>/dev/null | grep -v -e '^$' -e ':$' -e '^.lock$' || true")
}

#[test]
fn ps_a_shows_an_exited_container_with_its_code_and_rm_removes_what_it_left() {
    let Some(ns) =
        HostNs::new("ps_a_shows_an_exited_container_with_its_code_and_rm_removes_what_it_left")
    else {
        return;
    };
    detach(
        &ns,
        "done",
        &["--label", "tier=batch"],
        &["sh", "-c", "echo bye; exit 3"],
    );
    detach(&ns, "up", &["--network", "none"], &["sleep", "100"]);
    let done = wait_exited(&ns, "done");
    assert_eq!(done["exit_code"], 3);
    assert!(done["finished_at"].as_u64().unwrap() >= done["started_at"].as_u64().unwrap());
    assert_eq!(done["pid"], Value::Null);
    assert_eq!(done["labels"]["tier"], "batch");
    let rows = ps_all(&ns);
    let up = row(&rows, "up").expect("up is listed");
    assert_eq!(up["status"], "running");
    assert_eq!(up["exit_code"], Value::Null);
    assert_eq!(up["finished_at"], Value::Null);
    assert!(up["pid"].is_u64(), "{up}");
    assert_eq!(rows.len(), 2, "{rows:?}");

    let running = ok(&ns, &["ps"]);
    assert_eq!(
        running.lines().count(),
        2,
        "ps alone: the running: {running}"
    );
    assert!(
        running.lines().nth(1).unwrap().starts_with("up "),
        "{running}"
    );
    let table = ok(&ns, &["ps", "-a"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].ends_with("STATUS"), "{table}");
    assert!(
        lines[1].starts_with("done ")
            && lines[1].contains(" Exited (3) ")
            && lines[1].ends_with(" ago"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("up ") && lines[2].contains(" Up "),
        "{table}"
    );
    let ids = ok(&ns, &["ps", "-a", "-q"]);
    assert_eq!(ids.lines().count(), 2, "{ids}");
    assert!(ids.contains(done["id"].as_str().unwrap()), "{ids}");
    let templated = ok(
        &ns,
        &[
            "ps",
            "-a",
            "--filter",
            "label=tier=batch",
            "--format",
            "{{.Name}} {{.ExitCode}}",
        ],
    );
    assert_eq!(templated, "done 3\n");
    let lines = ok(
        &ns,
        &["ps", "-a", "--format", "json", "--filter", "name=do"],
    );
    assert_eq!(lines.lines().count(), 1, "{lines}");

    let id = done["id"].as_str().unwrap();
    let inspected: Value = serde_json::from_str(&ok(&ns, &["inspect", &id[..8]])).unwrap();
    assert_eq!(inspected["name"], "done");
    assert_eq!(inspected["state"]["status"], "exited");
    assert_eq!(inspected["state"]["exit_code"], 3);
    assert_eq!(inspected["state"]["finished_at"], done["finished_at"]);
    let both: Value = serde_json::from_str(&ok(&ns, &["inspect", "done", "up"])).unwrap();
    assert_eq!(
        both[0]["state"]["status"], "exited",
        "in the targets' order"
    );
    assert_eq!(both[1]["state"]["status"], "running");
    assert!(both[1]["live"].is_object(), "{both}");
    assert_eq!(ok(&ns, &["logs", "done"]), "bye\n");
    assert_eq!(ok(&ns, &["logs", id]), "bye\n", "by its id too");

    // docker's `stop` of a stopped container: its name, 0, nothing changed.
    assert_eq!(ok(&ns, &["stop", "done"]), "done\n");
    assert_eq!(row(&ps_all(&ns), "done").unwrap()["exit_code"], 3);
    assert_eq!(ok(&ns, &["logs", "done"]), "bye\n", "its log is kept");

    let refused = supervisor(&ns, &["rm", "up"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "supervisor: container up is running: stop it first, or rm -f\n"
    );
    assert!(ok(&ns, &["ps"]).contains("up "), "still running");

    let some = supervisor(&ns, &["rm", "nosuch", "done"]);
    assert_eq!(some.status.code(), Some(1), "{}", stderr(&some));
    assert_eq!(stderr(&some), "supervisor: no such container: nosuch\n");
    assert_eq!(stdout(&some), "done\n", "the others are still removed");
    assert!(row(&ps_all(&ns), "done").is_none());
    assert_eq!(supervisor(&ns, &["logs", "done"]).status.code(), Some(1));
    assert_eq!(supervisor(&ns, &["inspect", "done"]).status.code(), Some(1));

    assert_eq!(ok(&ns, &["rm", "-f", "up"]), "up\n");
    assert_eq!(ps_all(&ns), Vec::<Value>::new());
    assert_eq!(remains(&ns), "", "nothing of either is left");
    assert_eq!(records(&ns), "");
    assert_no_state(&ns);
}

#[test]
fn a_crashed_supervisors_container_shows_as_dead_and_rm_cleans_up_after_it() {
    let Some(ns) =
        HostNs::new("a_crashed_supervisors_container_shows_as_dead_and_rm_cleans_up_after_it")
    else {
        return;
    };
    detach(&ns, "c", &["-p", "8080:80"], &["sleep", "100"]);
    let pid = row(&ps_all(&ns), "c").expect("c runs")["pid"].clone();
    ns.ok(&format!("kill -9 {pid}"));
    let dead = eventually("c dead", Duration::from_secs(5), || {
        row(&ps_all(&ns), "c")
            .filter(|r| r["status"] == "dead")
            .cloned()
    });
    assert_eq!(dead["exit_code"], Value::Null);
    assert_eq!(ok(&ns, &["ps", "-q"]), "", "ps alone leaves it out");
    let table = ok(&ns, &["ps", "-a"]);
    assert!(
        table.lines().nth(1).unwrap().starts_with("c ") && table.ends_with(" Dead\n"),
        "{table}"
    );
    let inspected: Value = serde_json::from_str(&ok(&ns, &["inspect", "c"])).unwrap();
    assert_eq!(inspected["state"]["status"], "dead");

    assert_eq!(ok(&ns, &["rm", "c"]), "c\n", "no -f: it is not running");
    assert_eq!(ps_all(&ns), Vec::<Value>::new());
    assert_eq!(remains(&ns), "");
    assert_no_state(&ns);
}

#[test]
fn gc_removes_exited_records_with_their_logs() {
    let Some(ns) = HostNs::new("gc_removes_exited_records_with_their_logs") else {
        return;
    };
    detach(&ns, "e", &["--network", "none"], &["sh", "-c", "exit 7"]);
    let e = wait_exited(&ns, "e");
    assert_eq!(e["exit_code"], 7);
    let gc = ok(&ns, &["gc"]);
    assert!(
        gc.contains(&format!(
            "removed exited record e ({}): it exited 7",
            e["id"].as_str().unwrap()
        )),
        "{gc}"
    );
    assert!(
        gc.contains("removed log /run/supervisor/logs/e.log"),
        "{gc}"
    );
    assert_eq!(ps_all(&ns), Vec::<Value>::new());
    assert_eq!(remains(&ns), "");
    assert_no_state(&ns);
}

#[test]
fn a_new_run_of_an_exited_name_replaces_it_and_a_foreground_run_leaves_nothing() {
    let Some(ns) =
        HostNs::new("a_new_run_of_an_exited_name_replaces_it_and_a_foreground_run_leaves_nothing")
    else {
        return;
    };
    detach(
        &ns,
        "r",
        &["--network", "none"],
        &["sh", "-c", "echo first; exit 1"],
    );
    let first = wait_exited(&ns, "r");
    assert_eq!(first["exit_code"], 1);
    detach(
        &ns,
        "r",
        &["--network", "none"],
        &["sh", "-c", "echo second; exec sleep 100"],
    );
    eventually(
        "the first run's exited record gone",
        Duration::from_secs(5),
        || (remains(&ns) == "r.lock\nr.log\n").then_some(()),
    );
    let rows = ps_all(&ns);
    assert_eq!(rows.len(), 1, "one r: {rows:?}");
    assert_eq!(rows[0]["status"], "running");
    assert_eq!(ok(&ns, &["stop", "r"]), "r\n");
    let second = wait_exited(&ns, "r");
    assert_eq!(second["exit_code"], 143, "SIGTERM's, as docker's");
    assert_ne!(second["id"], first["id"]);
    assert_eq!(ps_all(&ns).len(), 1, "one r");
    assert_eq!(ok(&ns, &["logs", "r"]), "second\n");

    let foreground = supervisor(
        &ns,
        &[
            "run",
            "--name",
            "f",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "exit 4",
        ],
    );
    assert_eq!(foreground.status.code(), Some(4), "{}", stderr(&foreground));
    assert!(
        row(&ps_all(&ns), "f").is_none(),
        "it saw its code: nothing left"
    );
    // A foreground run of an exited name replaces it too: the earlier
    // record must not come back, with its id and code, once this one ends.
    let over = supervisor(
        &ns,
        &[
            "run",
            "--name",
            "r",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "exit 5",
        ],
    );
    assert_eq!(over.status.code(), Some(5), "{}", stderr(&over));
    assert!(row(&ps_all(&ns), "r").is_none(), "{:?}", ps_all(&ns));
    assert_eq!(supervisor(&ns, &["inspect", "r"]).status.code(), Some(1));
    // Its log went with its record: no `logs r` of a container `ps -a`
    // does not show, nothing for `check` or `gc`.
    assert_eq!(supervisor(&ns, &["logs", "r"]).status.code(), Some(1));
    assert_eq!(remains(&ns), "");
    assert_eq!(ok(&ns, &["check"]), "");
    assert_no_state(&ns);
}

#[test]
fn check_names_a_log_no_record_explains_and_gc_removes_it() {
    let Some(ns) = HostNs::new("check_names_a_log_no_record_explains_and_gc_removes_it") else {
        return;
    };
    detach(&ns, "e", &["--network", "none"], &["sh", "-c", "echo out"]);
    wait_exited(&ns, "e");
    assert_eq!(
        ok(&ns, &["check"]),
        "",
        "an exited container's log is its own"
    );
    ns.ok("rm /run/supervisor/exited/e.json");
    let out = supervisor(&ns, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "log /run/supervisor/logs/e.log: no record explains it\n"
    );
    assert!(
        ok(&ns, &["gc"]).contains("removed log /run/supervisor/logs/e.log"),
        "gc removes what check named"
    );
    assert_eq!(ok(&ns, &["check"]), "");
    assert_eq!(remains(&ns), "");
    assert_no_state(&ns);
}

#[test]
fn rm_leaves_a_log_a_new_run_of_the_name_is_writing() {
    let Some(ns) = HostNs::new("rm_leaves_a_log_a_new_run_of_the_name_is_writing") else {
        return;
    };
    detach(&ns, "w", &["--network", "none"], &["sh", "-c", "echo old"]);
    wait_exited(&ns, "w");
    // A `run -d --name w` between its log's start and its claim of the
    // name: the log's lock is held by a writer, no record is live yet.
    // Its writer lets go of it with the record's replacement, under the
    // store's lock (which `rm` takes, not this): just after `ps -a` shows
    // it exited.
    let held = eventually(
        "the ended writer's lock free",
        Duration::from_secs(10),
        || {
            let lock = std::fs::File::open(ns.path("/run/supervisor/logs/w.lock")).unwrap();
            nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
        },
    );
    assert_eq!(ok(&ns, &["rm", "w"]), "w\n");
    assert_eq!(remains(&ns), "w.lock\nw.log\n", "the writer's log stays");
    assert!(row(&ps_all(&ns), "w").is_none(), "the exited record went");
    drop(held);
    assert_eq!(ok(&ns, &["rm", "w"]), "w\n", "a log alone is removed");
    assert_eq!(remains(&ns), "");
    assert_no_state(&ns);
}

/// A prefix of both a running container's id and an exited one's names
/// neither: every command that takes either refuses it, naming both ids
/// (docker: "multiple IDs found with provided prefix"). A whole id or a
/// name still names its container.
#[test]
fn a_prefix_of_a_running_and_an_exited_containers_ids_is_refused_naming_both() {
    let Some(ns) =
        HostNs::new("a_prefix_of_a_running_and_an_exited_containers_ids_is_refused_naming_both")
    else {
        return;
    };
    detach(&ns, "up", &["--network", "none"], &["sleep", "100"]);
    detach(&ns, "done", &["--network", "none"], &["true"]);
    wait_exited(&ns, "done");
    let up = row(&ps_all(&ns), "up").expect("up")["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The exited record's id made to share up's first four characters.
    let done = format!(
        "{}{}",
        &up[..4],
        if up[4..].starts_with('0') {
            "11111111"
        } else {
            "00000000"
        }
    );
    let file = ns.path("/run/supervisor/exited/done.json");
    let mut record: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    record["id"] = Value::from(done.clone());
    std::fs::write(&file, record.to_string()).unwrap();

    let prefix = &up[..4];
    let joined = format!("container:{prefix}");
    for args in [
        &["inspect", prefix][..],
        &["logs", prefix],
        &["stop", prefix],
        &["rm", prefix],
        &["rm", "-f", prefix],
        &["kill", prefix],
        &["exec", prefix, "true"],
        &["run", "--network", &joined, "--", "true"],
    ] {
        let out = supervisor(&ns, args);
        assert!(!out.status.success(), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("matches several containers") && err.contains(&up) && err.contains(&done),
            "{args:?}: {err}"
        );
    }
    assert_eq!(row(&ps_all(&ns), "up").expect("up")["status"], "running");
    let inspected: Value = serde_json::from_str(&ok(&ns, &["inspect", &up[..5]])).unwrap();
    assert_eq!(inspected["name"], "up");
    let inspected: Value = serde_json::from_str(&ok(&ns, &["inspect", &done])).unwrap();
    assert_eq!(inspected["name"], "done");
    ok(&ns, &["rm", "-f", "up", "done"]);
    assert_no_state(&ns);
}

/// The pid of the process stopped at fault point `point` (see
/// src/milestones.rs), once it has stopped there.
fn stopped_at(point: &str) -> u32 {
    let wanted = format!("{}={point}", "SUPERVISOR_TEST_PAUSE_AT");
    let paused = |pid: &u32| {
        common::process_state(*pid) == Some('T')
            && std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()))
    };
    eventually(
        &format!("a supervisor stopped at {point}"),
        Duration::from_secs(10),
        || {
            std::fs::read_dir("/proc")
                .expect("/proc")
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .find(paused)
        },
    )
}

/// `ps -a` shows a detached container exited once its log is whole and its
/// writer gone, as the record it replaces said until then: whoever sees it
/// exited (a script polling `ps -a`) finds all its output in `logs`, and
/// `rm` or `gc` removes its log (a log whose writer lives is a new run's,
/// and stays).
#[test]
fn a_detached_container_shows_as_exited_only_once_its_log_is_whole_and_closed() {
    let Some(ns) =
        HostNs::new("a_detached_container_shows_as_exited_only_once_its_log_is_whole_and_closed")
    else {
        return;
    };
    let out = common::run(
        ns.supervisor()
            .env("SUPERVISOR_TEST_PAUSE_AT", "log ending")
            .args(["run", "-d", "--name", "done", "--network", "none"])
            .args(["--", "sh", "-c", "echo bye"]),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let supervisor = stopped_at("log ending");
    let rows = ps_all(&ns);
    // Let go before asserting, so that a failure leaves nothing stopped.
    ns.ok(&format!("kill -CONT {supervisor}"));
    let shown = row(&rows, "done").expect("done is listed");
    assert_eq!(
        shown["status"], "running",
        "shown exited while its log is still written: {shown}"
    );
    wait_exited(&ns, "done");
    assert_eq!(ok(&ns, &["logs", "done"]), "bye\n");
    assert_eq!(ok(&ns, &["rm", "done"]), "done\n");
    assert_eq!(remains(&ns), "", "rm removed its log");
    assert_no_state(&ns);
}
