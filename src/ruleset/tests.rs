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
