//! Helpers for the unit tests beside the parser and the checker: a small
//! snippet in; the tree, the checked ruleset, or the first error as
//! `FILE:LINE:COL: message` out.

use std::path::Path;

use super::{Error, ast, check, parser, syntax};

/// Includes in snippets resolve here, where nothing is.
const NO_DIR: &str = "/nonexistent-unit-test-dir";

fn parsed(text: &str) -> Result<syntax::Source, Error> {
    parser::parse_source("t.nft", text, Path::new(NO_DIR))
}

/// `text` parsed; panics with the error when it does not parse.
pub fn parse(text: &str) -> syntax::Source {
    parsed(text).unwrap_or_else(|err| panic!("{err}"))
}

/// The first parse error of `text`, as `t.nft:LINE:COL: message`.
pub fn parse_error(text: &str) -> String {
    match parsed(text) {
        Ok(source) => panic!("parsed: {source:?}"),
        Err(err) => err.to_string(),
    }
}

/// `text` parsed and checked; panics with the error when it fails.
pub fn check_ok(text: &str) -> ast::Ruleset {
    check(&parse(text)).unwrap_or_else(|err| panic!("{err}"))
}

/// The first check error of `text` (which must parse), as
/// `t.nft:LINE:COL: message`.
pub fn check_error(text: &str) -> String {
    match check(&parse(text)) {
        Ok(ruleset) => panic!("checked: {ruleset:?}"),
        Err(err) => err.to_string(),
    }
}

/// `rule` as line 4 of an ip table's input filter chain, so a column in
/// an error is the column in `rule`.
pub fn in_input_chain(rule: &str) -> String {
    in_chain("ip", "type filter hook input priority 0", rule)
}

/// `rule` as line 4 of the chain `c` with the head `head` (line 3), in the
/// table `t` of `family`.
pub fn in_chain(family: &str, head: &str, rule: &str) -> String {
    format!("table {family} t {{\nchain c {{\n{head}\n{rule}\n}}\n}}\n")
}

/// The statements of the one rule in [`in_input_chain`]`(rule)`.
pub fn stmts(rule: &str) -> Vec<syntax::StmtKind> {
    let source = parse(&in_input_chain(rule));
    let Some(syntax::TopItem::AddTable { body, .. }) = source.items.first() else {
        panic!("no table: {source:?}");
    };
    let Some(syntax::TableItem::Chain(chain)) = body.first() else {
        panic!("no chain: {body:?}");
    };
    chain
        .items
        .iter()
        .find_map(|item| match item {
            syntax::ChainItem::Rule(rule) => {
                Some(rule.stmts.iter().map(|s| s.kind.clone()).collect())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no rule: {chain:?}"))
}
