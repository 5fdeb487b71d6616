//! Errors print their cause once: no `#[error(...)]` message formats the
//! field that is also its source (`source`, `#[source]`, `#[from]`), since
//! the printers (`error_chain::Chain`) add every source after the message.

use std::fs;

mod source;

/// Messages that print their source, as `FILE:LINE: message`.
fn doubled_causes(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("#[error(") else {
            continue;
        };
        // A message may continue on the next lines; the variant follows it.
        let end = (i..lines.len())
            .find(|&j| lines[j].trim_end().ends_with(")]"))
            .unwrap_or(i);
        let message = lines[i..=end].join(" ");
        let variant = lines.get(end + 1).copied().unwrap_or("");
        let positional_source = ["(#[source]", "(#[from]"]
            .iter()
            .any(|attr| variant.contains(attr));
        if message.contains("{source}") || (positional_source && message.contains("{0}")) {
            found.push((i + 1, line[at..].trim().to_string()));
        }
    }
    found
}

#[test]
fn no_error_message_formats_its_own_source() {
    let files = source::rust_files(&source::src_dir());
    let mut found = Vec::new();
    for file in files {
        for (line, message) in doubled_causes(&fs::read_to_string(&file).unwrap()) {
            found.push(format!("{}:{line}: {message}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "these messages print their source, which the printer prints again:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_message_naming_its_source_is_found() {
    let text = r#"
    #[error("sysctl {path}: {source}")]
    Sysctl { path: String, #[source] source: io::Error },
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("invalid --ip: {0}")]
    Ip(AddressError),
    #[error("sysctl {path}")]
    Fine { path: String, source: io::Error },
"#;
    let found: Vec<usize> = doubled_causes(text).into_iter().map(|(l, _)| l).collect();
    assert_eq!(found, [2, 4]);
}
