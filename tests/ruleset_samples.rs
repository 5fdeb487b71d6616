//! The sample rulesets through the front end (no kernel needed): every valid
//! sample loads; every error sample fails at the line, column and with the
//! message its first line expects.
//!
//! Error samples start with one of:
//!   `# expect: [FILE:]LINE:COL: message`   the loader refuses it there
//!                                          (FILE when the error is in an
//!                                          included file, next to the sample)
//!   `# expect-kernel: LINE:COL: ERRNO`     the loader accepts it; only the
//!                                          kernel refuses the command there

use std::path::{Path, PathBuf};

use supervisor::ruleset::ast::{CommandKind, Family, Hook};
use supervisor::ruleset::{self, Define};

fn samples(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "nft"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_valid_sample_loads() {
    let files = samples("tests/rulesets");
    assert!(files.len() >= 30, "only {} samples", files.len());
    for file in files {
        if let Err(err) = ruleset::load_file(&file, &[]) {
            panic!("{} should load, but: {err}", file.display());
        }
    }
}

enum Expect {
    Loader {
        file: Option<String>,
        line: u32,
        col: u32,
        message: String,
    },
    Kernel,
}

fn expectation(path: &Path) -> Expect {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or_default();
    if first.starts_with("# expect-kernel: ") {
        return Expect::Kernel;
    }
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: no '# expect:' first line", path.display()));
    let (place, message) = rest.split_once(": ").unwrap();
    let parts: Vec<&str> = place.split(':').collect();
    let (file, line, col) = match parts.as_slice() {
        [line, col] => (None, line, col),
        [file, line, col] => (Some(file.to_string()), line, col),
        _ => panic!("{}: bad place '{place}'", path.display()),
    };
    Expect::Loader {
        file,
        line: line.parse().unwrap(),
        col: col.parse().unwrap(),
        message: message.to_string(),
    }
}

#[test]
fn every_error_sample_fails_where_and_how_it_says() {
    let files = samples("tests/rulesets/errors");
    assert!(files.len() >= 30, "only {} error samples", files.len());
    for path in files {
        let result = ruleset::load_file(&path, &[]);
        match expectation(&path) {
            Expect::Kernel => {
                if let Err(err) = result {
                    panic!(
                        "{}: only the kernel should refuse it, but: {err}",
                        path.display()
                    );
                }
            }
            Expect::Loader {
                file,
                line,
                col,
                message,
            } => {
                let err = match result {
                    Ok(_) => panic!("{}: loaded, but should fail", path.display()),
                    Err(err) => err,
                };
                let expected_file = match file {
                    Some(name) => path.with_file_name(name),
                    None => path.clone(),
                };
                let expected = format!("{}:{line}:{col}: {message}", expected_file.display());
                assert_eq!(err.to_string(), expected, "{}", path.display());
            }
        }
    }
}

#[test]
fn command_line_defines_come_before_the_first_line() {
    let text = "table ip t {\n\tchain c {\n\t\tiifname $wan tcp dport $ports accept\n\t}\n}\n";
    let defines = vec![
        "wan=\"eth0\"".parse::<Define>().unwrap(),
        "ports={ 22, 80 }".parse::<Define>().unwrap(),
    ];
    let ruleset = ruleset::load_str("inline.nft", text, Path::new("."), &defines).unwrap();
    assert_eq!(ruleset.commands.len(), 3);

    let err = ruleset::load_str("inline.nft", text, Path::new("."), &defines[..1]).unwrap_err();
    assert_eq!(err.to_string(), "inline.nft:3:26: unknown variable $ports");

    let bad = vec![Define::new("wan", "\"eth0")];
    let err = ruleset::load_str("inline.nft", text, Path::new("."), &bad).unwrap_err();
    assert_eq!(err.to_string(), "-D wan:1:1: unterminated string");
}

#[test]
fn a_malformed_define_argument_is_refused() {
    assert!("novalue".parse::<Define>().is_err());
    assert!("tcp=1".parse::<Define>().is_err());
    assert!("1x=1".parse::<Define>().is_err());
    assert_eq!(
        "lan=10.0.0.0/8".parse::<Define>().unwrap(),
        Define::new("lan", "10.0.0.0/8")
    );
}

#[test]
fn priorities_resolve_to_numbers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rulesets/10-priorities.nft");
    let ruleset = ruleset::load_file(&path, &[]).unwrap();
    let priorities: Vec<(Hook, i32)> = ruleset
        .commands
        .iter()
        .filter_map(|c| match &c.kind {
            CommandKind::AddChain(chain) => chain.base.as_ref().map(|b| (b.hook, b.priority)),
            _ => None,
        })
        .collect();
    assert_eq!(
        priorities,
        vec![
            (Hook::Prerouting, -300),
            (Hook::Prerouting, -145),
            (Hook::Prerouting, -110),
            (Hook::Input, 0),
            (Hook::Input, 50),
            (Hook::Postrouting, 120),
            (Hook::Forward, -5),
            (Hook::Output, 250),
            (Hook::Output, -100),
            (Hook::Input, 100),
        ]
    );
}

#[test]
fn bridge_priorities_are_the_bridge_familys_own() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rulesets/39-bridge-filter.nft");
    let ruleset = ruleset::load_file(&path, &[]).unwrap();
    let priorities: Vec<(&str, i32)> = ruleset
        .commands
        .iter()
        .filter_map(|c| match &c.kind {
            CommandKind::AddChain(chain) => {
                assert_eq!(chain.table.family, Family::Bridge);
                chain
                    .base
                    .as_ref()
                    .map(|b| (chain.name.as_str(), b.priority))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        priorities,
        vec![
            ("pre", -300),
            ("pre_late", -290),
            ("input", -200),
            ("forward", -205),
            ("output", 100),
            ("post", 300),
            ("post_numbers", 250),
        ]
    );
}

#[test]
fn a_later_protocol_match_is_no_conflict_but_a_later_transport_match_is() {
    let rule = |family: &str, rule: &str| {
        let text = format!("table {family} t {{\n\tchain c {{\n\t\t{rule}\n\t}}\n}}\n");
        ruleset::load_str("t.nft", &text, Path::new("."), &[]).map(|_| ())
    };
    for family in ["ip", "inet", "bridge"] {
        assert_eq!(rule(family, "tcp flags syn ip protocol udp accept"), Ok(()));
        assert_eq!(rule(family, "tcp dport 22 meta l4proto udp accept"), Ok(()));
        // With tcp and udp both in the context, nft names the first
        // protocol that is not the one the match needs.
        let err = rule(family, "tcp dport 22 ip protocol udp udp dport 53 accept").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.nft:3:32: conflicting protocols specified: tcp vs. udp"
        );
        let err = rule(family, "tcp dport 22 ip protocol udp tcp sport 1 accept").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.nft:3:32: conflicting protocols specified: udp vs. tcp"
        );
        let err = rule(family, "meta l4proto { tcp, udp } tcp dport 1 accept").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.nft:3:29: conflicting protocols specified: udp vs. tcp"
        );
    }
}

/// A conntrack address of the IP version the table or the rule excludes
/// could never match: nft refuses it, and so do we (it loaded, a rule that
/// silently never matched).
#[test]
fn a_conntrack_address_of_the_other_ip_version_is_a_conflict() {
    let rule = |family: &str, rule: &str| {
        let text = format!("table {family} t {{\n\tchain c {{\n\t\t{rule}\n\t}}\n}}\n");
        ruleset::load_str("t.nft", &text, Path::new("."), &[])
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let conflict = |at: &str, was: &str, wanted: &str| {
        Err(format!(
            "t.nft:3:{at}: conflicting protocols specified: {was} vs. {wanted}"
        ))
    };
    assert_eq!(
        rule("ip6", "ct original ip saddr 10.0.0.1 accept"),
        conflict("3", "ip6", "ip")
    );
    assert_eq!(
        rule("ip", "ct reply ip6 saddr ::1 accept"),
        conflict("3", "ip", "ip6")
    );
    assert_eq!(
        rule("inet", "ip saddr 1.2.3.4 ct reply ip6 saddr ::1 accept"),
        conflict("20", "ip", "ip6")
    );
    assert_eq!(rule("inet", "ct reply ip6 saddr ::1 accept"), Ok(()));
    assert_eq!(rule("ip6", "ct reply ip6 saddr ::1 accept"), Ok(()));
}

#[test]
fn a_table_block_expands_like_nft_table_then_chains_then_sets_then_rules() {
    let text = "table inet t {\n\
                \tchain a {\n\t\tip saddr @s accept\n\t}\n\
                \tset s {\n\t\ttype ipv4_addr\n\t}\n\
                \tchain b {\n\t\tjump a\n\t}\n\
                }\n";
    let ruleset = ruleset::load_str("t.nft", text, Path::new("."), &[]).unwrap();
    let kinds: Vec<String> = ruleset
        .commands
        .iter()
        .map(|c| {
            let place = format!("{}:{}", c.span.line, c.span.col);
            match &c.kind {
                CommandKind::AddTable(t) => {
                    assert_eq!(t.id.family, Family::Inet);
                    format!("table {place}")
                }
                CommandKind::AddChain(chain) => format!("chain {} {place}", chain.name),
                CommandKind::AddSet(set) => format!("set {} {place}", set.name),
                CommandKind::AddRule(rule) => format!("rule {} {place}", rule.chain),
                other => format!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "table 1:1",
            "chain a 2:2",
            "chain b 8:2",
            "set s 5:2",
            "rule a 3:3",
            "rule b 9:3"
        ]
    );
}

#[test]
fn several_files_load_as_one_transaction_in_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rulesets");
    let files = vec![
        dir.join("01-minimal-input-filter.nft"),
        dir.join("07-flat-commands.nft"),
    ];
    let ruleset = ruleset::load_files(&files, &[]).unwrap();
    let single: usize = files
        .iter()
        .map(|f| ruleset::load_file(f, &[]).unwrap().commands.len())
        .sum();
    assert_eq!(ruleset.commands.len(), single);
}

#[test]
fn an_unreadable_file_names_itself() {
    let err = ruleset::load_file(Path::new("/nonexistent/x.nft"), &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/x.nft: cannot read: No such file or directory (os error 2)"
    );
}

/// A fresh file holding `text` for one test, in a directory of its own
/// that goes when the file is dropped. Named by time as well as pid: runs
/// of the suite in separate pid namespaces share /tmp.
fn scratch_file(tag: &str, text: &str) -> ScratchFile {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "supervisor-samples-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.nft");
    std::fs::write(&path, text).unwrap();
    ScratchFile(path)
}

struct ScratchFile(PathBuf);

impl std::ops::Deref for ScratchFile {
    type Target = PathBuf;

    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `ruleset check` as a user runs it: every error of the file, each on a
/// first line `FILE:LINE:COL: message`, then the source line and a caret
/// under the column; typos get a suggestion, valid nft the loader does not
/// read says so.
#[test]
fn ruleset_check_shows_every_error_with_its_line_and_a_caret() {
    let path = scratch_file(
        "every-error",
        "table inet t {\n\tset tcp_ports { type inet_service; }\n\tchain input {\n\t\ttcp dprot 22 accept\n\t\tlimit rate 10/second accept\n\t\ttcp dport @tcp_prots accept\n\t\tip saddr 10.0.0.1 masquerade drop\n\t}\n}\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .args(["ruleset", "check"])
        .arg(&*path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let file = path.display();
    let want = format!(
        "{file}:4:7: syntax error, unexpected 'dprot': 'tcp' has no field 'dprot'; did you mean 'tcp dport'?
\t\ttcp dprot 22 accept
\t\t    ^
{file}:5:3: 'limit' is valid nft but not supported by this loader
\t\tlimit rate 10/second accept
\t\t^
{file}:6:13: no such set or map 'tcp_prots' in table inet t; did you mean '@tcp_ports'?
\t\ttcp dport @tcp_prots accept
\t\t          ^
{file}:7:32: Statement after terminal statement has no effect
\t\tip saddr 10.0.0.1 masquerade drop
\t\t                             ^
"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), want);
}

#[test]
fn one_load_reports_at_most_20_errors_and_says_it_stopped() {
    let mut text = String::from("table ip t {\n\tchain c {\n");
    for _ in 0..30 {
        text.push_str("\t\ttcp dport 22 acept\n");
    }
    text.push_str("\t}\n}\n");
    let path = scratch_file("many-errors", &text);
    let err = ruleset::load_file(&path, &[]).unwrap_err();
    assert_eq!(err.count(), ruleset::MAX_ERRORS);
    assert!(err.truncated);
    let lines: Vec<u32> = std::iter::once(&err)
        .chain(&err.more)
        .map(|e| e.span.line)
        .collect();
    assert_eq!(lines, (3..23).collect::<Vec<u32>>());
    assert!(
        err.report()
            .ends_with("stopped after 20 errors; fix these and check again")
    );
}

#[test]
fn errors_of_several_files_come_out_together() {
    let first = scratch_file(
        "several-a",
        "table ip a {\n\tchain c {\n\t\tcountr\n\t}\n}\n",
    );
    let dir = first.parent().unwrap().to_path_buf();
    let second = dir.join("second.nft");
    std::fs::write(&second, "add rule ip a c ip saddr ::1 accept\n").unwrap();
    let err = ruleset::load_files(&[first.clone(), second.clone()], &[]).unwrap_err();
    assert_eq!(err.count(), 2, "{}", err.report());
    assert!(
        err.to_string()
            .starts_with(&format!("{}:3:3: ", first.display()))
    );
    assert!(
        err.more[0]
            .to_string()
            .starts_with(&format!("{}:1:26: ", second.display()))
    );
}

/// `supervisor ruleset check rules.nft` run in the file's own directory:
/// the file's directory is the current one, and a wildcard include there
/// reads its matches, as when the file is named with its directory: the
/// error in the one match is reported, named by its path.
#[test]
fn a_wildcard_include_in_a_file_named_without_a_directory_reads_the_current_one() {
    let path = scratch_file("bare-wildcard", "include \"*.inc\"\n");
    let dir = path.parent().unwrap();
    std::fs::write(
        dir.join("a.inc"),
        "table ip from_a {\n\tchain c {\n\t\tcountr\n\t}\n}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .args(["ruleset", "check", "rules.nft"])
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("a.inc:3:3: "), "{stderr}");
}
