//! Hostile inputs: each must end in an error (or a ruleset), never a panic,
//! a stack overflow or a hang. Crashes the fuzzer finds are added here.

use std::path::Path;

use super::{check, parser};

/// Runs the whole front end on `text`; returns the error text, if any.
fn front_end(text: &str) -> Option<String> {
    let dir = Path::new("/nonexistent-test-include-dir");
    match parser::parse_source("t.nft", text, dir) {
        Ok(source) => check(&source).err().map(|e| e.to_string()),
        Err(err) => Some(err.to_string()),
    }
}

#[test]
fn deeply_nested_braces_are_an_error_not_a_stack_overflow() {
    let deep = format!(
        "table ip t {{\nchain c {{\ntcp dport {}22{} accept\n}}\n}}\n",
        "{ ".repeat(100_000),
        " }".repeat(100_000)
    );
    let err = front_end(&deep).unwrap();
    assert!(err.contains("nest more than 32 levels"), "{err}");
}

#[test]
fn deeply_nested_parentheses_are_an_error() {
    let deep = format!("define x = {}1{}\n", "(".repeat(50_000), ")".repeat(50_000));
    let err = front_end(&deep).unwrap();
    assert!(err.contains("nest more than 32 levels"), "{err}");
}

#[test]
fn exponential_variable_expansion_is_bounded() {
    let mut text = String::from("define v0 = { 1, 2 }\n");
    for i in 1..40 {
        text.push_str(&format!("define v{i} = {{ $v{}, $v{} }}\n", i - 1, i - 1));
    }
    let err = front_end(&text).unwrap();
    assert!(err.contains("expands to more than"), "{err}");
}

#[test]
fn garbage_and_truncated_inputs_are_errors() {
    for text in [
        "",
        "\0",
        "$",
        "@",
        "\"",
        "table",
        "table ip",
        "table ip t {",
        "table ip t { chain c {",
        "table ip t { chain c { type",
        "table ip t { chain c { type filter hook input priority",
        "table ip t { chain c { type filter hook input priority -",
        "table ip t { chain c { type filter hook input priority filter +",
        "table ip t { set s { type ipv4_addr; elements = {",
        "table ip t { set s { type ipv4_addr; elements = { 1.2.3.4 :",
        "add rule ip t c tcp dport { 1,",
        "define x = { 1 . }",
        "define x = 1-",
        "define x = 1/",
        "define x = [::1",
        "fe80::1::2",
        "1.2.3.4.5",
        "999999999999999999999999",
        "0x",
        "\u{feff}table ip t {}",
        "table ip t { chain c { tcp dport 22 dnat to [",
        "}",
        "{",
        ";;;;\n\n\n;",
        "include",
        "include \"",
        "include \"/dev/zero\"\n",
        "include \"/\"\n",
        "define a = $a\n",
        "tcp flags syn /",
        "table ip t { chain c { tcp flags & ( syn | ack ) == syn / ack",
    ] {
        let _ = front_end(text);
    }
}

#[test]
fn reading_a_device_or_directory_as_an_include_is_refused() {
    let err = front_end("include \"/dev/zero\"\n").unwrap();
    assert!(err.contains("not a regular file"), "{err}");
    let err = front_end("include \"/\"\n").unwrap();
    assert!(err.contains("cannot read include"), "{err}");
}

#[test]
fn extreme_numbers_do_not_overflow() {
    for text in [
        "table ip t { chain c { type filter hook input priority 9223372036854775807; }\n}\n",
        "table ip t { chain c { type filter hook input priority -9223372036854775808; }\n}\n",
        "table ip t { chain c { type filter hook input priority raw - 2147483647; }\n}\n",
        "table ip t { chain c { type filter hook input priority filter + 18446744073709551615; }\n}\n",
        "table ip t { set s { type ipv4_addr; timeout 18446744073709551615d; }\n}\n",
        "table ip t { set s { type ipv4_addr; size 18446744073709551615; }\n}\n",
        "table ip t { chain c { ip saddr 10.0.0.0/4294967296 accept; }\n}\n",
        "table ip t { chain c { meta mark 0xffffffffffffffff accept; }\n}\n",
    ] {
        assert!(front_end(text).is_some(), "{text}");
    }
    let most = "table ip t { chain c { counter packets 18446744073709551615 bytes 0; }\n}\n";
    assert_eq!(front_end(most), None);
}

#[test]
fn long_lines_and_many_tokens_are_fine() {
    let mut text = String::from("table ip t {\nchain c {\n");
    text.push_str("tcp dport { ");
    for port in 1..20_000u32 {
        text.push_str(&format!("{}, ", port % 65_536));
    }
    text.push_str("22 } accept\n}\n}\n");
    assert_eq!(front_end(&text), None);
}

/// Names past the kernel's NFT_NAME_MAXLEN used to reach the encoder, which
/// wrote them past its buffer ("double free or corruption") or wrapped their
/// 16-bit length (a 65,538-byte name created table `aaa`).
#[test]
fn names_longer_than_the_kernel_takes_are_errors_at_the_name() {
    for len in [256, 65_538, 300_000] {
        let long = "a".repeat(len);
        let cases = [
            (format!("table ip {long} {{ }}\n"), 10, "a table name"),
            (
                format!("table ip t {{ chain {long} {{ }}; }}\n"),
                20,
                "a chain name",
            ),
            (
                format!("table ip t {{ set {long} {{ type ipv4_addr; }}; }}\n"),
                18,
                "a set name",
            ),
            (
                format!("table ip t {{ map {long} {{ type ipv4_addr : ipv4_addr; }}; }}\n"),
                18,
                "a map name",
            ),
            (format!("add table inet {long}\n"), 16, "a table name"),
        ];
        for (text, col, what) in cases {
            let err = front_end(&text).expect("refused");
            assert_eq!(
                err,
                format!(
                    "t.nft:1:{col}: {what} of {len} bytes is longer than the kernel's limit of 255 (NFT_NAME_MAXLEN)"
                )
            );
        }
    }
    let fine = format!("table ip {} {{ }}\n", "a".repeat(255));
    assert_eq!(front_end(&fine), None);
}

/// The encoder's own guard, behind the checker: a checked ruleset with
/// names no checker let through must still end in an error, not in memory
/// corruption.
#[test]
fn the_compiler_refuses_names_too_long_for_the_kernel_without_corrupting_memory() {
    use super::ast::{Command, CommandKind, Family, Ruleset, Set, SetFlags, Span, Table, TableId};
    let span = Span::new("t.nft".into(), 3, 7);
    for len in [256, 65_538, 300_000] {
        let long = "a".repeat(len);
        let table = TableId {
            family: Family::Ip,
            name: long.clone(),
        };
        let set = Set {
            table: TableId {
                family: Family::Ip,
                name: "t".into(),
            },
            name: long.clone(),
            key: vec![super::ast::DataType::Ipv4Addr],
            data: None,
            flags: SetFlags::default(),
            timeout_ms: None,
            size: None,
            comment: None,
            elements: Vec::new(),
        };
        for kind in [
            CommandKind::AddTable(Table {
                id: table.clone(),
                comment: None,
            }),
            CommandKind::DeleteTable(table.clone()),
            CommandKind::FlushTable(table.clone()),
            CommandKind::AddSet(set),
        ] {
            let ruleset = Ruleset {
                commands: vec![Command {
                    span: span.clone(),
                    kind,
                }],
            };
            let err = super::compile::compile(&ruleset).expect_err("refused");
            assert!(err.to_string().starts_with("t.nft:3:7: "), "{len}: {err}");
        }
    }
}

#[test]
fn comments_are_limited_to_128_bytes_as_in_nft() {
    // 65 two-byte characters: 130 bytes, which nft refuses.
    let text = format!("table ip t {{ comment \"{}\"; }}\n", "é".repeat(65));
    let err = front_end(&text).expect("refused");
    assert!(
        err.ends_with("comment too long, 128 characters maximum allowed"),
        "{err}"
    );
    let text = format!("table ip t {{ comment \"{}\"; }}\n", "é".repeat(64));
    assert_eq!(front_end(&text), None);
}

/// A scratch directory for include tests, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!(
            "supervisor-ruleset-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn file(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn fifo(&self, name: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRUSR).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `load` on another thread; a hang fails the test after 10 s instead
/// of hanging the suite (the stuck thread ends with the test process).
fn within_10s<T: Send + 'static>(load: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the load hung: reading a FIFO must be refused, not waited on")
}

#[test]
fn an_include_of_a_fifo_is_an_error_naming_it_not_a_hang() {
    let dir = Scratch::new("fifo-include");
    dir.fifo("fifo");
    let main = dir.file("main.nft", "include \"fifo\"\n");
    let err = within_10s(move || super::load_file(&main, &[]).map(drop))
        .expect_err("refused")
        .to_string();
    assert!(
        err.ends_with("main.nft:1:9: cannot read include \"fifo\": a FIFO, not a regular file"),
        "{err}"
    );
}

#[test]
fn loading_a_fifo_itself_is_an_error_naming_it_not_a_hang() {
    let dir = Scratch::new("fifo-file");
    let fifo = dir.fifo("rules.nft");
    let shown = fifo.display().to_string();
    let err = within_10s(move || super::load_file(&fifo, &[]).map(drop))
        .expect_err("refused")
        .to_string();
    assert_eq!(
        err,
        format!("{shown}: cannot read: a FIFO, not a regular file")
    );
}

#[test]
fn an_include_of_a_character_device_is_an_error_naming_it() {
    let err = front_end("include \"/dev/null\"\n").unwrap();
    assert_eq!(
        err,
        "t.nft:1:9: cannot read include \"/dev/null\": a character device, not a regular file"
    );
}

#[test]
fn a_directory_is_read_through_a_wildcard_as_nft_reads_it() {
    let dir = Scratch::new("glob-include");
    dir.file("rules.d/20-b.nft", "add table ip b\n");
    dir.file("rules.d/10-a.nft", "add table ip a\n");
    dir.file("rules.d/.hidden.nft", "add table ip hidden\n");
    dir.file("rules.d/notes.txt", "add table ip txt\n");
    dir.file("rules.d/sub/30-c.nft", "add table ip c\n");
    let tables = |main: &std::path::Path| -> Vec<String> {
        super::load_file(main, &[])
            .unwrap()
            .commands
            .iter()
            .filter_map(|c| match &c.kind {
                super::ast::CommandKind::AddTable(t) => Some(t.id.name.clone()),
                _ => None,
            })
            .collect()
    };
    // Dot files never match; a directory among the matches includes
    // nothing, as in nft; the matches come in name order.
    let main = dir.file("main.nft", "include \"rules.d/*\"\n");
    assert_eq!(tables(&main), ["a", "b", "txt"]);
    let main = dir.file("main.nft", "include \"rules.d/*.nft\"\n");
    assert_eq!(tables(&main), ["a", "b"]);
    let main = dir.file("main.nft", "include \"rules.d/[1]?-*.nft\"\n");
    assert_eq!(tables(&main), ["a"]);
    // No match is fine with a wildcard, as in nft.
    let main = dir.file("main.nft", "include \"rules.d/*.none\"\n");
    assert!(tables(&main).is_empty());

    // The directory itself: nft silently includes nothing; we say so.
    let main = dir.file("main.nft", "include \"rules.d\"\n");
    let err = super::load_file(&main, &[]).unwrap_err().to_string();
    assert!(
        err.ends_with("main.nft:1:9: cannot read include \"rules.d\": a directory (nft includes nothing for it; to read its files write \"rules.d/*\")"),
        "{err}"
    );

    // A FIFO among the matches is named, not waited on.
    dir.fifo("rules.d/40-fifo.nft");
    let main = dir.file("main.nft", "include \"rules.d/*.nft\"\n");
    let err = within_10s(move || super::load_file(&main, &[]).map(drop))
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("40-fifo.nft\": a FIFO, not a regular file"),
        "{err}"
    );
}
