//! Lexer, parser and checker on arbitrary text: any input must end in a
//! ruleset or an error, never a panic, a stack overflow or a hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use supervisor::ruleset::{self, parser};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Relative includes look in a directory that has no files.
    let dir = Path::new("/nonexistent-fuzz-include-dir");
    if let Ok(source) = parser::parse_source("fuzz.nft", &text, dir) {
        let _ = ruleset::check(&source);
    }
    // The same text as a `-D NAME=VALUE` value.
    let _ = parser::parse_define_value("fuzz", &text);
});
