//! Dependencies run downward only: every `crate::NAME` path in src/ names a
//! module below its own in the layer list at the top of src/lib.rs. Reads
//! the sources, so a change that climbs back up fails here, not in review.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

mod common;
mod source;

/// The layer list of src/lib.rs, top first: module → position.
fn layer_order(lib: &str) -> BTreeMap<String, usize> {
    let mut order = BTreeMap::new();
    let mut in_list = false;
    for line in lib.lines().map_while(|l| l.strip_prefix("//!")) {
        let line = line.trim();
        if line == "```text" && order.is_empty() {
            in_list = true;
            continue;
        }
        if !in_list {
            continue;
        }
        if line == "```" {
            break;
        }
        let modules = line.split_once(':').map_or(line, |(_, rest)| rest);
        for module in modules.split_whitespace() {
            let position = order.len();
            assert!(
                order.insert(module.to_string(), position).is_none(),
                "{module} is listed twice"
            );
        }
    }
    order
}

/// The top-level module a source file belongs to: `src/firewall/plan.rs`
/// is `firewall`, `src/spec.rs` is `spec`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    Path::new(first)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The modules a source text names as `PREFIX::NAME`, outside comments,
/// with their line numbers.
fn named_modules(text: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut named = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut from = 0;
        while let Some(at) = code[from..].find(prefix).map(|at| from + at) {
            from = at + prefix.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let name: String = code[from..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                named.push((number + 1, name));
            }
        }
    }
    named
}

/// Every import that climbs up or sideways, as `FILE:LINE: A uses B`.
fn violations(src: &Path) -> Vec<String> {
    let order = layer_order(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let files = source::rust_files(src);
    let mut found = Vec::new();
    for file in files {
        let module = module_of(src, &file);
        if module == "lib" {
            continue;
        }
        let Some(&position) = order.get(&module) else {
            found.push(format!(
                "{}: module {module} is not in the layer list of src/lib.rs",
                file.display()
            ));
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        // The binary's files reach the library as `supervisor::`.
        let binary = matches!(module.as_str(), "main" | "cli" | "usage");
        let mut uses = named_modules(&text, "crate::");
        if binary {
            uses.extend(named_modules(&text, "supervisor::"));
        }
        for (line, used) in uses {
            if used == module {
                continue;
            }
            match order.get(&used) {
                Some(&below) if below > position => {}
                Some(_) => found.push(format!(
                    "{}:{line}: {module} uses {used}, which is not below it",
                    file.display()
                )),
                None => found.push(format!(
                    "{}:{line}: {module} uses {used}, which is not in the layer list",
                    file.display()
                )),
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let found = violations(&source::src_dir());
    assert!(
        found.is_empty(),
        "imports against the layers:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_layer_list_names_every_module_once_with_values_at_the_bottom() {
    let lib = fs::read_to_string(source::src_dir().join("lib.rs")).unwrap();
    let order = layer_order(&lib);
    assert_eq!(order.get("values"), Some(&(order.len() - 1)));
    assert!(order["main"] < order["supervisor"]);
    assert!(order["supervisor"] < order["spec"]);
    assert!(order["spec"] < order["state"]);
}

#[test]
fn a_climb_back_up_is_caught() {
    let dir = common::unique_temp_path("layers");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("state")).unwrap();
    fs::write(
        dir.join("lib.rs"),
        "//! ```text\n//! lifecycle: supervisor\n//! apply:     spawn state\n//! leaf:      values\n//! ```\n",
    )
    .unwrap();
    fs::write(
        dir.join("state/process.rs"),
        "use crate::values::Process;\nuse crate::spawn::Pidfd; // a climb sideways\n// crate::supervisor in a comment is fine\n",
    )
    .unwrap();
    fs::write(dir.join("values.rs"), "use crate::supervisor::run;\n").unwrap();
    fs::write(dir.join("cni.rs"), "").unwrap();
    let found = violations(&dir);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].ends_with("cni.rs: module cni is not in the layer list of src/lib.rs"));
    assert!(found[1].ends_with("process.rs:2: state uses spawn, which is not below it"));
    assert!(found[2].ends_with("values.rs:1: values uses supervisor, which is not below it"));
}
