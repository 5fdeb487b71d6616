//! The loader against the kernel, with nft as the reference: every sample in
//! tests/rulesets/ loaded by `supervisor ruleset load` into one fresh host
//! namespace and by `nft -f` into another must leave the same ruleset
//! (`nft list ruleset`) and the same bytecode (`nft --debug=netlink list
//! ruleset`). Failures of any kind, including the kernel's own refusals,
//! must leave the kernel byte-for-byte as it was.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{HostNs, stderr, stdout};

/// Loaded into a namespace before error cases, so "unchanged" means something.
const PRELOAD: &str = "table ip pre {
	set nets { type ipv4_addr; flags interval; elements = { 10.1.0.0/16 } }
	chain input { type filter hook input priority 0; policy accept;
		ip saddr @nets counter accept
	}
}
";

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rulesets")
}

fn nft_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "nft"));
    files.sort();
    files
}

/// What a namespace's nftables state looks like to nft: the listing and the
/// bytecode behind it.
fn kernel_state(ns: &HostNs) -> (String, String) {
    let bytecode = ns.ok("nft --debug=netlink list ruleset");
    (ns.ok("nft list ruleset"), sort_element_runs(&bytecode))
}

/// Hash sets dump their elements in an order that depends on a per-set
/// random seed, so runs of element lines are compared sorted.
fn sort_element_runs(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with("\telement ") {
            run.push(line);
            continue;
        }
        run.sort_unstable();
        out.append(&mut run);
        out.push(line);
    }
    run.sort_unstable();
    out.append(&mut run);
    out.join("\n")
}

fn preloaded(test: &str) -> Option<HostNs> {
    let ns = HostNs::new(test)?;
    ns.ok(&format!("nft -f - <<'EOF'\n{PRELOAD}EOF"));
    Some(ns)
}

fn load(ns: &HostNs, files: &[&Path]) -> std::process::Output {
    common::run(ns.supervisor().arg("ruleset").arg("load").args(files))
}

#[test]
fn every_sample_leaves_the_kernel_as_nft_leaves_it() {
    let files = nft_files(&samples_dir());
    if HostNs::new("every_sample_leaves_the_kernel_as_nft_leaves_it").is_none() {
        return;
    }
    assert!(
        !files.is_empty(),
        "no samples in {}",
        samples_dir().display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let name = file.display();
        let (Some(ours), Some(theirs)) = (HostNs::new("sample"), HostNs::new("sample")) else {
            return;
        };
        let by_nft = theirs.sh(&format!(
            "nft -I {} -f {}",
            samples_dir().display(),
            file.display()
        ));
        if !by_nft.status.success() {
            failures.push(format!(
                "{name}: nft refuses the sample:\n{}",
                stderr(&by_nft)
            ));
            continue;
        }
        let by_us = load(&ours, &[file]);
        if !by_us.status.success() {
            failures.push(format!(
                "{name}: our loader refuses the sample:\n{}",
                stderr(&by_us)
            ));
            continue;
        }
        let (want_list, want_code) = kernel_state(&theirs);
        let (got_list, got_code) = kernel_state(&ours);
        if got_list != want_list {
            failures.push(format!(
                "{name}: nft list ruleset differs\n--- nft -f\n{want_list}\n--- ours\n{got_list}"
            ));
        } else if got_code != want_code {
            failures.push(format!(
                "{name}: bytecode differs\n--- nft -f\n{want_code}\n--- ours\n{got_code}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} samples differ:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// nft/supervisor.nft (its ip, ip6 and bridge tables) with the define the
/// supervisor fills in, loaded by nft and by our loader; then as `run`
/// leaves it, its network's elements added, which must be what nft's
/// `add element` gives (the subnet an interval, its comment the bridge).
#[test]
fn the_supervisor_ruleset_loads_as_nft_loads_it() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("nft/supervisor.nft");
    // The defines as `supervisor run` fills them in, for nft's -D.
    let defines: Vec<String> = supervisor::firewall::defines()
        .into_iter()
        .map(|d| format!("{}={}", d.name, d.value))
        .collect();
    let nft_defines: Vec<String> = defines.iter().map(|d| format!("-D '{d}'")).collect();
    let Some(theirs) = HostNs::new("the_supervisor_ruleset_loads_as_nft_loads_it") else {
        return;
    };
    theirs.ok(&format!(
        "nft {} -f {}",
        nft_defines.join(" "),
        file.display()
    ));
    let want = kernel_state(&theirs);
    assert!(want.0.contains("table bridge supervisor"), "{}", want.0);

    // Our loader, from the command line.
    let Some(ours) = HostNs::new("supervisor_ruleset") else {
        return;
    };
    let mut cmd = ours.supervisor();
    cmd.args(["ruleset", "load"]);
    for d in &defines {
        cmd.arg("-D").arg(d);
    }
    let out = common::run(cmd.arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    let got = kernel_state(&ours);
    assert_eq!(got.0, want.0, "nft list ruleset differs");
    assert_eq!(got.1, want.1, "bytecode differs");

    // And as `run` loads it, embedded: the container's elements are gone
    // again after it exits, its network's stay with the bridge.
    let Some(run) = HostNs::new("supervisor_ruleset_by_run") else {
        return;
    };
    let out = common::run(run.supervisor().args(["run", "--", "true"]));
    assert!(out.status.success(), "run: {}", stderr(&out));
    theirs.ok("nft add element ip supervisor bridges '{ \"sv0\" }' \
         && nft add element ip supervisor same_bridge '{ \"sv0\" . \"sv0\" }' \
         && nft add element ip supervisor subnets '{ 172.16.0.0/24 comment \"sv0\" }'");
    let want = kernel_state(&theirs);
    let got = kernel_state(&run);
    assert_eq!(got.0, want.0, "the state `run` leaves differs");
    assert_eq!(got.1, want.1, "the bytecode `run` leaves differs");
}

/// The first line of an error sample: `# expect: [FILE:]LINE:COL: message`
/// for the loader's own errors (FILE for an error in an included file, next
/// to the sample), `# expect-kernel: LINE:COL: ERRNO` for refusals by the
/// kernel. Returns the expected start of the error line and a text it must
/// contain.
fn expectation(file: &Path) -> Option<(String, String)> {
    let text = fs::read_to_string(file).ok()?;
    let first = text.lines().next()?;
    let (rest, kernel) = match first.strip_prefix("# expect-kernel: ") {
        Some(rest) => (rest, true),
        None => (first.strip_prefix("# expect: ")?, false),
    };
    let (place, message) = rest.split_once(": ")?;
    let parts: Vec<&str> = place.split(':').collect();
    let position = match parts.as_slice() {
        [line, col] => format!("{}:{line}:{col}: ", file.display()),
        [name, line, col] => format!("{}:{line}:{col}: ", file.with_file_name(name).display()),
        _ => return None,
    };
    if kernel {
        return Some((position + "kernel says: ", errno_text(message.trim())?));
    }
    Some((position, message.trim().to_string()))
}

/// The C library's text for an errno name (`EEXIST` is "File exists").
fn errno_text(name: &str) -> Option<String> {
    (1..200)
        .find(|&n| format!("{:?}", nix::errno::Errno::from_raw(n)) == name)
        .map(|n| {
            let text = std::io::Error::from_raw_os_error(n).to_string();
            text.split(" (os error")
                .next()
                .unwrap_or_default()
                .to_string()
        })
}

#[test]
fn error_samples_fail_at_their_position_and_change_nothing() {
    let files = nft_files(&samples_dir().join("errors"));
    let Some(ns) = preloaded("error_samples_fail_at_their_position_and_change_nothing") else {
        return;
    };
    let before = kernel_state(&ns);
    let mut failures = Vec::new();
    for file in &files {
        let Some((position, message)) = expectation(file) else {
            failures.push(format!(
                "{}: first line is not `# expect: LINE:COL: message`",
                file.display()
            ));
            continue;
        };
        let out = load(&ns, &[file]);
        let err = stderr(&out);
        if out.status.code() != Some(1) || !err.starts_with(&position) || !err.contains(&message) {
            failures.push(format!(
                "{}: want exit 1 and `{position}…{message}`, got {} with:\n{err}",
                file.display(),
                out.status
            ));
        }
        if kernel_state(&ns) != before {
            failures.push(format!(
                "{}: the failed load changed the kernel",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The IPv6 and igmp error samples are ones nft 1.0.6 refuses too (`nft
/// -c`), at the same line and column; the loader's message may say more.
const IPV6_ERRORS_NFT_REFUSES: &[&str] = &[
    "ip6-priority-field",
    "ip6-dscp-out-of-range",
    "ip6-flowlabel-out-of-range",
    "ip6-prefix-too-long",
    "ip6-ipv4-address",
    "ip6-address-triple-colon",
    "ip6-reversed-range",
    "icmpv6-unknown-type",
    "igmp-unknown-type",
    "igmp-after-tcp",
    "icmp-unknown-type",
    "icmp-unknown-code",
    "icmp-after-tcp",
    "icmp-after-icmpv6",
    "icmpv6-after-tcp",
    "tcp-after-icmpv6-nexthdr",
    "icmpv6-mtu-of-echo",
    "icmpv6-id-of-packet-too-big",
    "inet-icmpv6-then-ip",
    "inet-ip6-then-ip",
    "nfproto-in-ip6-table",
    "dnat-ip6-to-ipv4",
    "dnat-ip6-map-to-ipv4",
    "snat-ip6-to-ipv4",
    "dnat-ip6-empty-port",
    "inet-snat-ip6-without-family",
    "dnat-ip-in-ip6-table",
];

#[test]
fn ipv6_error_samples_are_refused_by_nft_at_the_same_place() {
    let Some(ns) = HostNs::new("ipv6_error_samples_are_refused_by_nft_at_the_same_place") else {
        return;
    };
    let dir = samples_dir().join("errors");
    let mut failures = Vec::new();
    for name in IPV6_ERRORS_NFT_REFUSES {
        let file = dir.join(format!("{name}.nft"));
        let (position, _) = expectation(&file).expect("an # expect: line");
        // nft writes FILE:LINE:COL-COL: Error: ...
        let out = ns.sh(&format!("nft -c -f {}", file.display()));
        let err = stderr(&out);
        let first = err.lines().next().unwrap_or_default();
        let place = position.trim_end_matches(": ");
        if out.status.success() || !first.starts_with(&format!("{place}-")) {
            failures.push(format!("{name}: we say {place}, nft says: {first}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn checking_any_sample_changes_nothing() {
    let Some(ns) = preloaded("checking_any_sample_changes_nothing") else {
        return;
    };
    let before = kernel_state(&ns);
    for file in nft_files(&samples_dir()) {
        let out = common::run(ns.supervisor().args(["ruleset", "check"]).arg(&file));
        assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
        assert!(stdout(&out).is_empty());
        assert_eq!(
            kernel_state(&ns),
            before,
            "checking {} changed the kernel",
            file.display()
        );
    }
}

/// Writes `text` as a file named `name` in a fresh directory.
fn write_sample(dir: &tempdir::Dir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, text).expect("write sample");
    path
}

#[test]
fn a_kernel_refusal_names_the_source_position_and_applies_nothing() {
    let Some(ns) = preloaded("a_kernel_refusal_names_the_source_position_and_applies_nothing")
    else {
        return;
    };
    let before = kernel_state(&ns);
    let dir = tempdir::Dir::new("refusal");
    let file = write_sample(
        &dir,
        "refused.nft",
        "table ip fresh {\n\tchain c { type filter hook input priority 0; }\n}\ndelete table ip absent\n",
    );
    let out = load(&ns, &[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "{}:4:1: kernel says: delete table ip absent: No such file or directory",
            file.display()
        )
    );
    assert_eq!(
        kernel_state(&ns),
        before,
        "the table before the refused command must not stay"
    );
}

#[test]
fn an_element_the_kernel_refuses_is_reported_at_its_own_position() {
    let Some(ns) = preloaded("an_element_the_kernel_refuses_is_reported_at_its_own_position")
    else {
        return;
    };
    let before = kernel_state(&ns);
    let dir = tempdir::Dir::new("element");
    // 10.1.0.0/16 is already in the kernel's set: 10.0.0.0/8 overlaps it.
    let file = write_sample(
        &dir,
        "overlap.nft",
        "table ip pre {\n\tset nets { type ipv4_addr; flags interval; }\n}\nadd element ip pre nets {\n\t192.168.0.0/16,\n\t10.0.0.0/8 }\n",
    );
    let out = load(&ns, &[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "{}:6:2: kernel says: add element to set ip pre nets",
            file.display()
        )),
        "{err}"
    );
    assert_eq!(kernel_state(&ns), before);
}

#[test]
fn several_files_load_as_one_transaction() {
    let Some(ns) = preloaded("several_files_load_as_one_transaction") else {
        return;
    };
    let before = kernel_state(&ns);
    let dir = tempdir::Dir::new("several");
    let good = write_sample(&dir, "good.nft", "table inet one {\n\tchain c { }\n}\n");
    let bad = write_sample(&dir, "bad.nft", "delete table inet absent\n");
    let out = load(&ns, &[&good, &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("{}:1:1: kernel says:", bad.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        kernel_state(&ns),
        before,
        "the first file must not be applied alone"
    );

    let out = load(&ns, &[&good]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ns.ok("nft list tables").contains("table inet one"));
}

/// Names past the kernel's limits used to corrupt memory (300,000 bytes:
/// "double free or corruption") or wrap their 16-bit length (65,538 bytes:
/// exit 0, with table `aaa` created). Each must fail at the name and leave
/// the kernel as it was.
#[test]
fn names_too_long_for_the_kernel_fail_at_the_name_and_change_nothing() {
    let Some(ns) = preloaded("names_too_long_for_the_kernel_fail_at_the_name_and_change_nothing")
    else {
        return;
    };
    let before = kernel_state(&ns);
    let dir = tempdir::Dir::new("long-names");
    for len in [256, 65_538, 300_000] {
        let long = "a".repeat(len);
        let cases = [
            ("table", format!("table ip {long} {{ }}\n"), 10),
            (
                "chain",
                format!("table ip t {{\n\tchain {long} {{ }}\n}}\n"),
                8,
            ),
            (
                "map",
                format!("table ip t {{\n\tmap {long} {{ type ipv4_addr : ipv4_addr; }}\n}}\n"),
                6,
            ),
        ];
        for (what, text, col) in cases {
            let file = write_sample(&dir, &format!("{what}-{len}.nft"), &text);
            let line = if what == "table" { 1 } else { 2 };
            for verb in ["check", "load"] {
                let out = common::run(ns.supervisor().args(["ruleset", verb]).arg(&file));
                let err = stderr(&out);
                assert_eq!(out.status.code(), Some(1), "{what} {len} {verb}: {err}");
                assert!(
                    err.starts_with(&format!(
                        "{}:{line}:{col}: a {what} name of {len} bytes",
                        file.display()
                    )),
                    "{what} {len} {verb}: {err}"
                );
                assert_eq!(kernel_state(&ns), before, "{what} {len} {verb}");
            }
        }
    }
}

#[test]
fn a_file_that_cannot_be_read_is_one_line_naming_it() {
    let Some(ns) = HostNs::new("a_file_that_cannot_be_read_is_one_line_naming_it") else {
        return;
    };
    let out = common::run(
        ns.supervisor()
            .args(["ruleset", "load", "/nonexistent/rules.nft"]),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("/nonexistent/rules.nft: "), "{err}");
}

/// A scratch directory removed on drop.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Dir {
            // Time as well as pid: runs in separate pid namespaces share /tmp.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = std::env::temp_dir()
                .join(format!("supervisor-{tag}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&path).expect("create scratch dir");
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
