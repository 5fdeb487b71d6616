//! Seccomp profiles in docker's model: a default action, the architectures
//! filtered, and rules (syscall names, an action, argument conditions,
//! conditions on the container's capabilities, architecture and kernel).
//! `default_profile` is docker's default; `parse` reads docker's JSON
//! format for `--security-opt seccomp=FILE`; `compile` turns a profile into
//! the BPF program the container's child installs before exec.
//!
//! Compiled with libseccomp, what docker, runc, crun and podman use: it
//! knows every architecture's syscall numbers by name, filters the 32-bit
//! ABIs (x86, x32) beside the native one, and generates per-rule actions and
//! 64-bit argument comparisons.

mod default;
mod docker;
mod ranges;

use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use serde::Deserialize;

pub use self::default::default_profile;
pub use self::docker::parse;

/// What a matching syscall gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    /// Fails with the rule's errno, else the profile's, else EPERM.
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
}

/// An argument comparison, as libseccomp's (and docker's) SCMP_CMP_*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    /// `arg & value == value_two`.
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    pub value_two: u64,
    pub op: Op,
}

/// When a rule applies: every listed item must hold (`includes`) or any
/// listed item excludes it (`excludes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// Go architecture names (`amd64`, `arm64`…), compared with ours.
    pub arches: Vec<String>,
    /// `CAP_…` names, compared with the container's capabilities.
    pub caps: Vec<String>,
    /// "MAJOR.MINOR".
    pub min_kernel: Option<(u32, u32)>,
}

impl Condition {
    fn is_empty(&self) -> bool {
        self.arches.is_empty() && self.caps.is_empty() && self.min_kernel.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    pub errno: Option<u16>,
    pub args: Vec<Arg>,
    pub includes: Condition,
    pub excludes: Condition,
}

impl Rule {
    fn allow(names: &[&str]) -> Rule {
        Rule {
            names: names.iter().map(|n| n.to_string()).collect(),
            action: Action::Allow,
            errno: None,
            args: vec![],
            includes: Condition::default(),
            excludes: Condition::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub default_action: Action,
    pub default_errno: Option<u16>,
    /// libseccomp names (`SCMP_ARCH_X86_64`): the native one and the ABIs
    /// filtered beside it; empty means the native one only.
    pub arches: Vec<String>,
    pub rules: Vec<Rule>,
}

/// What a profile's conditions are checked against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The container's capabilities, `CAP_…`.
    pub caps: Vec<String>,
    pub kernel: (u32, u32),
}

impl Target {
    /// The running kernel, and the given capabilities.
    pub fn here(caps: Vec<String>) -> Target {
        Target {
            caps,
            kernel: running_kernel(),
        }
    }
}

/// docker's GOARCH for this build, which `includes.arches` names.
pub const GO_ARCH: &str = if cfg!(target_arch = "x86_64") {
    "amd64"
} else if cfg!(target_arch = "aarch64") {
    "arm64"
} else if cfg!(target_arch = "riscv64") {
    "riscv64"
} else {
    std::env::consts::ARCH
};

/// libseccomp's name of the native architecture.
pub const NATIVE_ARCH: &str = if cfg!(target_arch = "x86_64") {
    "SCMP_ARCH_X86_64"
} else if cfg!(target_arch = "aarch64") {
    "SCMP_ARCH_AARCH64"
} else {
    "SCMP_ARCH_NATIVE"
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("libseccomp refused {what}")]
    Library {
        what: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("exporting the seccomp program")]
    Export(#[source] std::io::Error),
}

fn library(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    let what = what.into();
    move |source| Error::Library { what, source }
}

/// The profile as a BPF program for `target`, in libseccomp's export
/// format (native-endian 8-byte instructions), its syscall-number
/// dispatch searched by ranges (see `ranges`).
pub fn compile(profile: &Profile, target: &Target) -> Result<Vec<u8>, Error> {
    Ok(ranges::compact(&compile_exported(profile, target)?))
}

/// The profile as libseccomp compiles it.
fn compile_exported(profile: &Profile, target: &Target) -> Result<Vec<u8>, Error> {
    let default = action(profile.default_action, None, profile.default_errno);
    let mut ctx = ScmpFilterContext::new(default).map_err(library("the default action"))?;
    // A binary tree of syscall numbers rather than a list: fewer
    // instructions per syscall, at run time and when the kernel builds its
    // cache of always-allowed syscalls on install.
    // (Measured: 0.45 ms to install instead of 0.75.) An older libseccomp
    // without the attribute keeps its list.
    let _ = ctx.set_ctl_optimize(2);
    for name in &profile.arches {
        let arch: ScmpArch = name
            .parse()
            .map_err(|_| Error::Invalid(format!("unknown architecture {name:?}")))?;
        if !ctx.is_arch_present(arch).map_err(library(name.clone()))? {
            ctx.add_arch(arch).map_err(library(name.clone()))?;
        }
    }
    for rule in &profile.rules {
        if !applies(rule, target) {
            continue;
        }
        let act = action(rule.action, rule.errno, profile.default_errno);
        // libseccomp refuses a rule that repeats the default; it changes nothing.
        if act == default {
            continue;
        }
        for conditions in argument_sets(&rule.args) {
            for name in &rule.names {
                // A name this libseccomp or architecture does not know is
                // skipped, as docker (runc) does: one profile serves every
                // architecture and kernel.
                let Ok(syscall) = libseccomp::ScmpSyscall::from_name(name) else {
                    continue;
                };
                ctx.add_rule_conditional(act, syscall, &conditions)
                    .map_err(library(format!("the rule for {name}")))?;
            }
        }
    }
    export(&ctx)
}

/// runc's reading of `args`: AND when each argument index appears once;
/// when an index repeats, each comparison is a rule of its own (OR).
fn argument_sets(args: &[Arg]) -> Vec<Vec<ScmpArgCompare>> {
    let compare = |a: &Arg| {
        let op = match a.op {
            Op::Ne => ScmpCompareOp::NotEqual,
            Op::Lt => ScmpCompareOp::Less,
            Op::Le => ScmpCompareOp::LessOrEqual,
            Op::Eq => ScmpCompareOp::Equal,
            Op::Ge => ScmpCompareOp::GreaterEqual,
            Op::Gt => ScmpCompareOp::Greater,
            Op::MaskedEq => ScmpCompareOp::MaskedEqual(a.value),
        };
        let datum = if a.op == Op::MaskedEq {
            a.value_two
        } else {
            a.value
        };
        ScmpArgCompare::new(a.index, op, datum)
    };
    let mut indices: Vec<u32> = args.iter().map(|a| a.index).collect();
    indices.sort_unstable();
    indices.dedup();
    if indices.len() == args.len() {
        vec![args.iter().map(compare).collect()]
    } else {
        args.iter().map(|a| vec![compare(a)]).collect()
    }
}

fn applies(rule: &Rule, target: &Target) -> bool {
    let inc = &rule.includes;
    let exc = &rule.excludes;
    if !exc.is_empty() {
        if exc.arches.iter().any(|a| a == GO_ARCH) || exc.caps.iter().any(|c| has(target, c)) {
            return false;
        }
        if exc.min_kernel.is_some_and(|k| target.kernel >= k) {
            return false;
        }
    }
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == GO_ARCH) {
        return false;
    }
    if !inc.caps.iter().all(|c| has(target, c)) {
        return false;
    }
    inc.min_kernel.is_none_or(|k| target.kernel >= k)
}

fn has(target: &Target, cap: &str) -> bool {
    target.caps.iter().any(|c| c.eq_ignore_ascii_case(cap))
}

fn action(action: Action, errno: Option<u16>, default_errno: Option<u16>) -> ScmpAction {
    match action {
        Action::Allow => ScmpAction::Allow,
        Action::Errno => ScmpAction::Errno(errno.or(default_errno).map_or(libc::EPERM, i32::from)),
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
    }
}

/// libseccomp 2.5 exports only to a descriptor: a memfd, read back.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, Error> {
    // SAFETY: memfd_create with a static name; the fd is owned at once.
    let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Export(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(library("exporting"))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bytes))
        .map_err(Error::Export)?;
    Ok(bytes)
}

/// MAJOR.MINOR of the running kernel; (0, 0) when unreadable, which fails
/// every `minKernel` condition (the safe side: fewer syscalls allowed).
/// uname rather than /proc/sys/kernel/osrelease: a fifth of the cost, and
/// it is on every run's path (the program cache's key).
fn running_kernel() -> (u32, u32) {
    // SAFETY: uname fills the zeroed utsname on our stack; its release is
    // NUL-terminated within the array.
    let release = unsafe {
        let mut uts: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut uts) != 0 {
            return (0, 0);
        }
        std::ffi::CStr::from_ptr(uts.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    parse_kernel(release.trim()).unwrap_or((0, 0))
}

/// "6.18.0-foo" → (6, 18).
pub fn parse_kernel(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &[&str]) -> Target {
        Target {
            caps: caps.iter().map(|c| c.to_string()).collect(),
            kernel: (6, 1),
        }
    }

    #[test]
    fn kernel_versions_read_major_and_minor() {
        assert_eq!(parse_kernel("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("x"), None);
    }

    #[test]
    fn conditions_follow_caps_arch_and_kernel() {
        let mut rule = Rule::allow(&["mount"]);
        rule.includes.caps = vec!["CAP_SYS_ADMIN".into()];
        assert!(!applies(&rule, &target(&["CAP_CHOWN"])));
        assert!(applies(&rule, &target(&["CAP_SYS_ADMIN"])));
        let mut rule = Rule::allow(&["clone"]);
        rule.excludes.caps = vec!["CAP_SYS_ADMIN".into()];
        assert!(applies(&rule, &target(&[])));
        assert!(!applies(&rule, &target(&["CAP_SYS_ADMIN"])));
        let mut rule = Rule::allow(&["ptrace"]);
        rule.includes.min_kernel = Some((6, 2));
        assert!(!applies(&rule, &target(&[])));
        rule.includes.min_kernel = Some((4, 8));
        assert!(applies(&rule, &target(&[])));
        let mut rule = Rule::allow(&["x"]);
        rule.includes.arches = vec!["surely-not-this".into()];
        assert!(!applies(&rule, &target(&[])));
        rule.includes.arches.push(GO_ARCH.into());
        assert!(applies(&rule, &target(&[])));
    }

    #[test]
    fn repeated_argument_indices_become_separate_rules() {
        let arg = |index, value| Arg {
            index,
            value,
            value_two: 0,
            op: Op::Eq,
        };
        assert_eq!(argument_sets(&[arg(0, 1), arg(1, 2)]).len(), 1);
        assert_eq!(argument_sets(&[arg(0, 1), arg(0, 2)]).len(), 2);
        assert_eq!(argument_sets(&[]).len(), 1);
    }

    #[test]
    fn the_default_profile_compiles_to_a_program() {
        let bytes = compile(&default_profile(), &target(&["CAP_CHOWN"])).unwrap();
        assert!(bytes.len() > 8 && bytes.len() % 8 == 0, "{}", bytes.len());
    }
}
