//! The nft-syntax ruleset loader's front end: lexer, parser, checks.
//!
//! Text goes through [`lexer`] (tokens with spans), [`parser`] (a syntax tree
//! that mirrors the source, `include`s inlined) and [`check`] (variables
//! expanded, values typed, references resolved) to the [`ast::Ruleset`] the
//! compiler turns into one netlink batch. Every failure is an [`Error`] that
//! prints as `FILE:LINE:COL: message`.

pub mod ast;
pub mod compile;
pub mod error;

pub use error::Error;
