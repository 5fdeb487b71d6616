//! `supervisor bench` end to end, small: a few containers in a host of
//! its own (the bench then builds its own namespaces inside it), checking
//! the table and the shapes of the JSON, CSV and SVG it writes.

mod common;

use std::path::PathBuf;

use common::{HostNs, run, stderr, stdout};

/// A scratch directory for the files a bench writes, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = common::unique_temp_path(test);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The rows of the table under `configuration`, up to the next blank line
/// or configuration, as (phase, cells).
fn rows<'a>(table: &'a str, configuration: &str) -> Vec<(String, Vec<&'a str>)> {
    table
        .lines()
        .skip_while(|l| l.trim_end() != configuration)
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            let split = cells.len() - 4;
            (cells[..split].join(" "), cells[split..].to_vec())
        })
        .collect()
}

/// `supervisor bench ARGS` in `host`, which must succeed; its table.
fn bench(host: &HostNs, args: &[&str]) -> String {
    let out = run(host.supervisor().arg("bench").args(args));
    assert!(out.status.success(), "bench failed: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn bench_prints_percentiles_per_phase_and_writes_every_sample() {
    let test = "bench_prints_percentiles_per_phase_and_writes_every_sample";
    let Some(host) = HostNs::new(test) else {
        return;
    };
    let scratch = Scratch::new(test);
    let (json, csv) = (scratch.path("out.json"), scratch.path("out.csv"));
    let table = bench(
        &host,
        &["--containers", "5", "--json", &json, "--csv", &csv],
    );
    assert!(
        table.starts_with("supervisor bench --containers 5 --concurrency 1"),
        "{table}"
    );
    assert!(
        table.contains(
            "5 containers per configuration, 1 at a time, back to back, no published port"
        ),
        "{table}"
    );
    let phases = rows(&table, "supervisor");
    let names: Vec<&str> = phases.iter().map(|(n, _)| n.as_str()).collect();
    for phase in [
        "clone3",
        "plumb",
        "publish batch",
        "network ready",
        "startup",
        "teardown",
        "end to end",
    ] {
        assert!(names.contains(&phase), "no {phase} row in:\n{table}");
    }
    for (name, cells) in &phases {
        let values: Vec<f64> = cells.iter().map(|c| c.parse().expect("a number")).collect();
        assert!(
            values.windows(2).all(|w| w[0] <= w[1]),
            "{name}: p50 ≤ p90 ≤ p99 ≤ max: {cells:?}"
        );
    }
    let throughput = table
        .lines()
        .find(|l| l.starts_with("supervisor ") && l.contains("MiB"))
        .unwrap_or_else(|| panic!("no throughput row:\n{table}"));
    assert!(throughput.contains(" / "), "{throughput}");

    let json = scratch.read("out.json");
    assert!(
        json.starts_with("{\n  \"command\": \"supervisor bench --containers 5"),
        "{json}"
    );
    assert_eq!(json.matches("\"end_to_end_us\": ").count(), 5, "{json}");
    assert_eq!(json.matches("\"name\": \"supervisor\"").count(), 1);
    assert_eq!(json.matches('{').count(), json.matches('}').count());
    assert_eq!(json.matches("\"phases_us\": {\"").count(), 5, "{json}");
    assert_eq!(json.matches("\"clone3\": ").count(), 5, "{json}");

    let csv = scratch.read("out.csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("configuration,published_before,container,metric,value,unit")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r[0] == "supervisor" && r[1] == "0"));
    for container in 0..5 {
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r[2] == container.to_string())
            .collect();
        assert!(mine.iter().any(|r| r[3] == "end to end" && r[5] == "us"));
        assert!(mine.iter().any(|r| r[3] == "max rss" && r[5] == "KiB"));
        assert!(mine.iter().any(|r| r[3] == "plumb"));
    }
    // The bench's bridge and tables lived in its own namespace.
    assert_eq!(host.ok("ip -br link | grep -c sv0 || true").trim(), "0");
}

#[test]
fn bench_with_published_ports_compares_with_the_naive_baseline_and_scale() {
    let test = "bench_with_published_ports_compares_with_the_naive_baseline_and_scale";
    let Some(host) = HostNs::new(test) else {
        return;
    };
    let scratch = Scratch::new(test);
    let (json, svg) = (scratch.path("out.json"), scratch.path("out.svg"));
    let table = bench(
        &host,
        &[
            "--containers",
            "5",
            "--publish",
            "--baseline",
            "--scale",
            "0,50",
            "--json",
            &json,
            "--plot",
            &svg,
        ],
    );
    assert!(table.contains("each publishing one port"), "{table}");
    for configuration in ["supervisor, 0 published", "supervisor, 50 published"] {
        let phases = rows(&table, configuration);
        assert!(
            phases.iter().any(|(n, _)| n == "publish batch"),
            "{configuration}:\n{table}"
        );
    }
    let naive = table
        .lines()
        .find(|l| l.starts_with("naive baseline ("))
        .unwrap_or_else(|| panic!("no baseline:\n{table}"));
    let naive_phases = rows(&table, naive.trim_end());
    let names: Vec<&str> = naive_phases.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "unshare",
            "host links",
            "container links",
            "port rules",
            "network ready",
            "release to exit",
            "teardown",
            "until exec",
            "end to end"
        ],
        "{table}"
    );
    assert!(
        table.contains("naive baseline / supervisor, 0 published, same run, at p50: until exec "),
        "{table}"
    );
    let scale: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.contains("ports published"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(scale.len(), 4, "{table}");
    assert!(
        scale[2].trim_start().starts_with("0 ") && scale[2].trim_end().ends_with("1.00x, 1.00x")
    );
    assert!(scale[3].trim_start().starts_with("50 "));

    let json = scratch.read("out.json");
    assert!(json.contains("\"publish\": true"));
    assert_eq!(json.matches("\"published_before\": 50").count(), 1);
    assert_eq!(json.matches("\"baseline\": true").count(), 1);
    assert_eq!(json.matches("\"end_to_end_us\": ").count(), 15);
    let svg = scratch.read("out.svg");
    assert!(svg.starts_with("<svg "), "{svg}");
    assert_eq!(
        svg.matches("<path ").count(),
        2 * 3,
        "two panels of three curves"
    );
}

#[test]
fn bench_ipv6_alternates_dual_stack_with_ipv4_and_hooks_a_cgroup_of_its_own() {
    let test = "bench_ipv6_alternates_dual_stack_with_ipv4_and_hooks_a_cgroup_of_its_own";
    let Some(host) = HostNs::new(test) else {
        return;
    };
    let scratch = Scratch::new(test);
    let files = format!(
        "--json {} --csv {}",
        scratch.path("out.json"),
        scratch.path("out.csv")
    );
    let args = format!("--containers 3 --publish --ipv6 {files}");
    let table = bench(&host, &args.split(' ').collect::<Vec<_>>());
    assert!(
        table.starts_with("supervisor bench --containers 3 --concurrency 1 --publish --ipv6"),
        "{table}"
    );
    let ipv4 = rows(&table, "supervisor, IPv4");
    let dual = rows(&table, "supervisor, dual stack");
    assert!(ipv4.iter().any(|(n, _)| n == "network ready"), "{table}");
    assert!(!ipv4.iter().any(|(n, _)| n.starts_with("[::1]")), "{table}");
    assert!(dual.iter().any(|(n, _)| n == "[::1] proxies"), "{table}");
    assert!(
        table.contains(
            "supervisor, dual stack / supervisor, IPv4, same run, alternated, at p50: until exec "
        ),
        "{table}"
    );
    let root = supervisor::cgroup::cgroup2_mount()
        .expect("mountinfo")
        .expect("a cgroup2 hierarchy is mounted");
    let note = table
        .lines()
        .find(|l| l.starts_with("note: dual stack: the [::1] connect hook attached to "))
        .unwrap_or_else(|| panic!("no note of the hook's cgroup:\n{table}"));
    let dir = note["note: dual stack: the [::1] connect hook attached to ".len()..]
        .split(' ')
        .next()
        .map(PathBuf::from)
        .expect("a directory");
    // Never the root (every process of the machine), and gone at the end.
    assert_eq!(dir.parent(), Some(root.as_path()), "{note}");
    assert!(!dir.exists(), "{} left behind", dir.display());

    let json = scratch.read("out.json");
    assert_eq!(json.matches("\"dual_stack\": true").count(), 1, "{json}");
    assert_eq!(json.matches("\"end_to_end_us\": ").count(), 6, "{json}");
    assert_eq!(
        json.matches("\"over\": \"supervisor, IPv4\"").count(),
        3,
        "{json}"
    );
    let csv = scratch.read("out.csv");
    assert_eq!(
        csv.lines().filter(|l| l.ends_with(",ratio")).count(),
        3,
        "{csv}"
    );
}

#[test]
fn bench_ipv6_without_publish_is_refused_before_doing_anything() {
    let out = run(std::process::Command::new(common::SUPERVISOR).args([
        "bench",
        "--ipv6",
        "--containers",
        "1",
    ]));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("--publish"), "{}", stderr(&out));
}

#[test]
fn bench_refuses_bad_counts_before_doing_anything() {
    let out =
        run(std::process::Command::new(common::SUPERVISOR).args(["bench", "--containers", "0"]));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("--containers"), "{}", stderr(&out));
}

#[test]
fn bench_cni_times_add_and_del_of_ours_and_the_reference_chain_at_each_scale() {
    let test = "bench_cni_times_add_and_del_of_ours_and_the_reference_chain_at_each_scale";
    let Some(host) = HostNs::new(test) else {
        return;
    };
    let table = bench(&host, &["--cni", "--containers", "2", "--scale", "0,3"]);
    assert!(
        table.starts_with("supervisor bench --cni --containers 2 --scale 0,3\n"),
        "{table}"
    );
    assert!(
        !table.contains("note:"),
        "a chain was not measured:\n{table}"
    );
    for chain in ["reference bridge + host-local + portmap", "supervisor"] {
        for attached in [0, 3] {
            let name = format!("{chain}, {attached} attached");
            let row = table
                .lines()
                .find(|l| l.starts_with(&name))
                .unwrap_or_else(|| panic!("no row {name}:\n{table}"));
            let cells: Vec<f64> = row[name.len()..]
                .split_whitespace()
                .map(|c| c.parse().expect("milliseconds"))
                .collect();
            assert_eq!(cells.len(), 6, "{row}");
            assert!(cells[0] <= cells[1] && cells[1] <= cells[2], "ADD: {row}");
            assert!(cells[3] <= cells[4] && cells[4] <= cells[5], "DEL: {row}");
        }
    }
    // The bench's bridges and netns lived in its own namespace.
    assert_eq!(host.ok("ip -br link | grep -c cni || true").trim(), "0");
}
