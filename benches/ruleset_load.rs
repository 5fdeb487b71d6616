//! Loading a large ruleset: our loader against `nft -f`, on the same
//! generated file (10,000 rules and a 10,000-element map), in one run.
//!
//! The process first moves itself into a throwaway network namespace
//! (before any thread exists), so nothing touches the machine's own
//! nftables; the namespace goes when the process exits. Needs root; without
//! it the benchmark says so and does nothing. Between iterations the
//! namespace's ruleset is flushed (not timed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use supervisor::nftables::{Batch, Socket};
use supervisor::ruleset;

const RULES: usize = 10_000;
const ELEMENTS: usize = 10_000;

/// A host-firewall-and-NAT shaped ruleset: many per-service rules (a
/// quarter of them with an anonymous set), and one big port map used by a
/// dnat rule. It starts with `flush ruleset`, as replacement rulesets do.
fn generate() -> String {
    let mut text = String::from("flush ruleset\n\ntable ip bench {\n");
    text.push_str(
        "\tmap ports {\n\t\ttype inet_service : ipv4_addr . inet_service\n\t\telements = {\n",
    );
    for i in 0..ELEMENTS {
        let port = 10_000 + i;
        let sep = if i + 1 < ELEMENTS { "," } else { "" };
        text.push_str(&format!(
            "\t\t\t{port} : 172.16.{}.{} . {}{sep}\n",
            i / 250,
            i % 250 + 2,
            8000 + i % 1000
        ));
    }
    text.push_str("\t\t}\n\t}\n\n");
    text.push_str(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
    );
    text.push_str("\t\tfib daddr type local dnat ip to tcp dport map @ports\n\t}\n\n");
    text.push_str("\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n");
    text.push_str("\t\tct state established,related accept\n");
    for i in 0..RULES - 3 {
        let (a, b) = (i / 250 % 250, i % 250 + 1);
        let rule = match i % 4 {
            0 => format!(
                "ip saddr 10.{a}.{b}.0/24 tcp dport {} counter accept",
                1024 + i % 60000
            ),
            1 => format!(
                "iifname \"veth{i}\" udp dport {{ 53, {} }} accept",
                2000 + i % 60000
            ),
            2 => format!(
                "ip daddr 192.168.{a}.{b} tcp dport 1000-{} drop",
                2000 + i % 60000
            ),
            _ => format!("meta mark {i} ip saddr 10.{a}.{b}.7 accept comment \"rule {i}\""),
        };
        text.push_str("\t\t");
        text.push_str(&rule);
        text.push('\n');
    }
    text.push_str("\t\tcounter drop\n\t}\n}\n");
    text
}

fn flush() {
    let mut batch = Batch::new();
    batch.flush_ruleset(None);
    Socket::open()
        .and_then(|socket| socket.send(batch))
        .expect("flush ruleset");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bench(c: &mut Criterion, file: &Path) {
    let files = [file.to_path_buf()];
    let mut group = c.benchmark_group("ruleset_load 10k rules + 10k-element map");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("supervisor ruleset load", |b| {
        b.iter_batched(
            flush,
            |()| {
                run(Command::new(env!("CARGO_BIN_EXE_supervisor"))
                    .args(["ruleset", "load"])
                    .arg(file))
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("nft -f", |b| {
        b.iter_batched(
            flush,
            |()| run(Command::new("nft").arg("-f").arg(file)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("library: parse, check, compile, send", |b| {
        b.iter_batched(
            flush,
            |()| ruleset::apply(&files, &[]).expect("load"),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("library: parse, check, compile", |b| {
        b.iter(|| ruleset::prepare(&files, &[]).expect("compile"))
    });
    group.finish();
}

fn main() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "ruleset_load: needs root (it loads rulesets into its own network namespace); skipped"
        );
        return;
    }
    // Before criterion or anything else starts a thread: the namespace is
    // per thread, and threads created later inherit it.
    if let Err(err) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        eprintln!("ruleset_load: cannot enter a private network namespace: {err}; skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ruleset-load-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let file: PathBuf = dir.join("big.nft");
    std::fs::write(&file, generate()).expect("write generated ruleset");

    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &file);
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);
}
