//! From files to the kernel: parse, check and compile into one batch, then
//! send it as one transaction. A failure anywhere leaves the kernel as it
//! was; a kernel refusal is reported at the source of the refused object.

use std::fmt;
use std::path::PathBuf;

use crate::nftables::{self as nft, Socket};

use super::ast::Span;
use super::compile::{Compiled, compile};
use super::{Define, Error, load_files};

/// Why a ruleset was not applied.
#[derive(Debug)]
pub enum ApplyError {
    /// The files did not parse, check or compile; nothing was sent.
    Source(Error),
    /// The kernel refused the transaction: each refused object, with the
    /// source position it came from when known.
    Refused(Vec<(Option<Span>, nft::Refusal)>),
    /// Talking to the kernel failed.
    Netlink(nft::Error),
    /// Without CAP_NET_ADMIN the kernel refuses every change, with nothing
    /// but "Operation not permitted".
    NotPermitted,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Every error of the files, each with its source line.
            ApplyError::Source(err) => f.write_str(&err.report()),
            ApplyError::Refused(refusals) => {
                for (i, (span, refusal)) in refusals.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    match span {
                        Some(span) => write!(f, "{span}: kernel says: {refusal}")?,
                        None => write!(f, "kernel says: {refusal}")?,
                    }
                }
                Ok(())
            }
            ApplyError::Netlink(err) => err.fmt(f),
            ApplyError::NotPermitted => f.write_str(
                "ruleset load needs CAP_NET_ADMIN to change the kernel's nftables: \
                 run it as root (ruleset check needs nothing)",
            ),
        }
    }
}

impl std::error::Error for ApplyError {
    /// A netlink failure shows as itself, so its cause is its own cause.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApplyError::Netlink(err) => std::error::Error::source(err),
            _ => None,
        }
    }
}

impl From<Error> for ApplyError {
    fn from(err: Error) -> Self {
        ApplyError::Source(err)
    }
}

/// Parses, checks and compiles the files as one transaction, without
/// touching the kernel (`ruleset check`). Interface names given to
/// `iif`/`oif` are resolved in the current network namespace.
pub fn prepare(paths: &[PathBuf], defines: &[Define]) -> Result<Compiled, Error> {
    compile(&load_files(paths, defines)?)
}

/// Sends a compiled ruleset as one transaction.
pub fn send(socket: &Socket, compiled: Compiled) -> Result<(), ApplyError> {
    let Compiled { batch, sources } = compiled;
    match socket.send(batch) {
        Ok(()) => Ok(()),
        Err(nft::Error::Refused(refusals)) => Err(ApplyError::Refused(
            refusals
                .into_iter()
                .map(|r| (sources.locate(&r).cloned(), r))
                .collect(),
        )),
        Err(err) => Err(ApplyError::Netlink(err)),
    }
}

/// Parses, checks and compiles the files, and loads them as one
/// transaction (`ruleset load`).
pub fn apply(paths: &[PathBuf], defines: &[Define]) -> Result<(), ApplyError> {
    let compiled = prepare(paths, defines)?;
    let effective = caps::read(None, caps::CapSet::Effective).unwrap_or_default();
    if !effective.contains(&caps::Capability::CAP_NET_ADMIN) {
        return Err(ApplyError::NotPermitted);
    }
    let socket = Socket::open().map_err(ApplyError::Netlink)?;
    send(&socket, compiled)
}
