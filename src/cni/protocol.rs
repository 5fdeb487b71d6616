//! The CNI protocol itself, as the spec (1.1.0) says an engine speaks it:
//! the command and its parameters in the environment, the network
//! configuration on stdin, one JSON document on stdout (a result, or an
//! error with its code), exit 0 or 1. Knows nothing of our network.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::values::quoted;

/// The versions this plugin answers for, oldest first. 0.4.0 is the last
/// before 1.0.0 (results then carry `version` in `ips`); GC and STATUS are
/// 1.1.0's.
pub const SUPPORTED: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// The version a VERSION answer speaks when asked without one.
pub const CURRENT: &str = "1.1.0";

/// The spec's error codes (1-99 are the spec's, 100 and up ours).
pub mod code {
    /// Incompatible CNI version.
    pub const VERSION: u32 = 1;
    /// Invalid necessary environment variables.
    pub const ENV: u32 = 4;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const CONFIG: u32 = 7;
    /// Try again later: a transient condition (a lock, a busy kernel).
    pub const TRY_AGAIN: u32 = 11;
    /// The plugin is not available (STATUS): ADD would fail.
    pub const NOT_READY: u32 = 50;
    /// Ours: a host port of `portMappings` is published already; the
    /// message names its holder.
    pub const PORT_TAKEN: u32 = 100;
    /// Ours: this container is attached with this interface already.
    pub const ALREADY_ATTACHED: u32 = 101;
    /// Ours: no address is left in the subnet.
    pub const NO_ADDRESS: u32 = 102;
    /// Ours: CHECK found no attachment for this container and interface.
    pub const NOT_ATTACHED: u32 = 103;
    /// Ours: CHECK found the attachment broken; the message names what.
    pub const BROKEN: u32 = 104;
    /// Ours: the kernel or the state directory refused a step.
    pub const SYSTEM: u32 = 110;
}

/// A command, from `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    pub(super) fn parse(text: &str) -> Option<Command> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            _ => return None,
        })
    }

    /// Whether the command is about one container (it then needs
    /// `CNI_CONTAINERID` and `CNI_IFNAME`).
    fn is_per_container(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        })
    }
}

/// The parameters of one invocation, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    /// `CNI_CONTAINERID`; empty for VERSION, GC and STATUS.
    pub container_id: String,
    /// `CNI_NETNS`: a path to the container's network namespace. Required
    /// for ADD and CHECK; DEL may come without it (the namespace is gone).
    pub netns: Option<String>,
    /// `CNI_IFNAME`: the interface to create inside.
    pub ifname: String,
    /// `CNI_ARGS`: `K=V;K=V`, kept for the record.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`: where other plugins are; we delegate to none.
    pub path: Option<String>,
}

/// An error as the spec's JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// The error document, in `version`.
    pub fn to_json(&self, version: &str) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Doc {
            cni_version: version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_else(|_| format!("{{\"code\":{},\"msg\":\"error\"}}", self.code))
    }
}

/// Reads the invocation from `env` (the process environment, or a test's):
/// a missing or bad variable is code 4, naming it.
pub fn invocation(env: &BTreeMap<String, String>) -> Result<Invocation, CniError> {
    let get = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
    let bad = |name: &str, why: &str| CniError::new(code::ENV, format!("{name} {why}"));
    // Set but empty is a different mistake of the caller than not set.
    let absent = |name: &str| match env.get(name) {
        None => bad(name, "is not set"),
        Some(_) => bad(name, "is empty"),
    };
    let required = |name: &str| get(name).ok_or_else(|| absent(name));
    let command = required("CNI_COMMAND")?;
    let command = Command::parse(&command).ok_or_else(|| {
        bad(
            "CNI_COMMAND",
            &format!(
                "{} is not one of ADD, DEL, CHECK, VERSION, GC, STATUS",
                quoted(&command)
            ),
        )
    })?;
    let mut invocation = Invocation {
        command,
        container_id: String::new(),
        netns: get("CNI_NETNS"),
        ifname: String::new(),
        args: Vec::new(),
        path: get("CNI_PATH"),
    };
    if !command.is_per_container() {
        return Ok(invocation);
    }
    let id = required("CNI_CONTAINERID")?;
    if let Some(why) = container_id_problem(&id) {
        return Err(bad("CNI_CONTAINERID", &format!("{} {why}", quoted(&id))));
    }
    let ifname = required("CNI_IFNAME")?;
    if let Some(why) = crate::netlink::ifname_problem(&ifname) {
        return Err(bad(
            "CNI_IFNAME",
            &format!("{} is not an interface name: {why}", quoted(&ifname)),
        ));
    }
    if command != Command::Del && invocation.netns.is_none() {
        return Err(absent("CNI_NETNS"));
    }
    invocation.container_id = id;
    invocation.ifname = ifname;
    invocation.args = get("CNI_ARGS")
        .map(|args| {
            args.split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(invocation)
}

/// The longest container id taken: engines use 64 hex digits, and the
/// record's file name (`.ID:IFNAME.json.tmp` while written) must stay
/// within the 255 bytes a file name may have.
const CONTAINER_ID_MAX: usize = 128;

/// Why `id` is not a container id as the spec has it (alphanumerics,
/// then also `_`, `.` and `-`), if it is not.
fn container_id_problem(id: &str) -> Option<&'static str> {
    if id.len() > CONTAINER_ID_MAX {
        return Some("is longer than 128 bytes");
    }
    let mut bytes = id.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() => {}
        _ => return Some("must start with a letter or digit"),
    }
    if bytes.any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))) {
        return Some("may hold only letters, digits, '_', '.' and '-'");
    }
    None
}

/// Whether a config's `cniVersion` is one we answer for: code 1 otherwise.
pub fn check_version(version: &str) -> Result<(), CniError> {
    if SUPPORTED.contains(&version) {
        Ok(())
    } else {
        Err(CniError::new(
            code::VERSION,
            format!(
                "cniVersion {} is not supported (supported: {})",
                quoted(version),
                SUPPORTED.join(", ")
            ),
        ))
    }
}

/// Whether `version` is at least `min` (both dotted triples we know).
pub fn at_least(version: &str, min: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    parse(version) >= parse(min)
}

/// VERSION's answer.
pub fn version_info(version: &str) -> String {
    serde_json::json!({
        "cniVersion": version,
        "supportedVersions": SUPPORTED,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_missing_or_bad_variable_is_code_4_naming_it() {
        let err = invocation(&env(&[])).unwrap_err();
        assert_eq!((err.code, err.msg.as_str()), (4, "CNI_COMMAND is not set"));
        let err = invocation(&env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]));
        assert!(err.unwrap_err().msg.contains("CNI_CONTAINERID"));
        let err = invocation(&env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "-x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/run/netns/x"),
        ]));
        assert!(err.unwrap_err().msg.contains("CNI_CONTAINERID \"-x\""));
        let err = invocation(&env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "a/b"),
            ("CNI_NETNS", "/run/netns/x"),
        ]));
        assert!(err.unwrap_err().msg.contains("CNI_IFNAME"));
        // Refused by the kernel only when the veth is made, naming it.
        let err = invocation(&env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "all"),
            ("CNI_NETNS", "/run/netns/x"),
        ]))
        .unwrap_err();
        assert_eq!(
            (err.code, err.msg.as_str()),
            (
                4,
                "CNI_IFNAME \"all\" is not an interface name: reserved for the sysctls of every interface"
            )
        );
        let err = invocation(&env(&[("CNI_COMMAND", "FROB")])).unwrap_err();
        assert!(err.msg.contains("FROB"), "{}", err.msg);
    }

    #[test]
    fn a_container_id_too_long_for_a_record_name_is_code_4() {
        let add = |id: &str| {
            invocation(&env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", id),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", "/run/netns/x"),
            ]))
        };
        assert!(add(&"a".repeat(CONTAINER_ID_MAX)).is_ok());
        // Nothing that could lead a record's name out of its directory.
        for id in ["a/b", "..", ".", "../x", "a\\b", "a:b", "\u{202e}a"] {
            let err = add(id).unwrap_err();
            assert_eq!(err.code, 4, "{id:?}");
            assert!(err.msg.starts_with("CNI_CONTAINERID "), "{}", err.msg);
        }
        let err = add(&"a".repeat(300)).unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("longer than 128 bytes"), "{}", err.msg);
    }

    #[test]
    fn cni_args_of_any_shape_are_split_at_the_first_equals_and_never_refuse_a_call() {
        let huge = format!("K={}", "v".repeat(128 << 10));
        for (args, pairs) in [
            ("", 0),
            (";;;", 0),
            ("novalue;=x;K=a=b;K=c;\u{202e}=\u{1b}[2J", 4),
            (huge.as_str(), 1),
        ] {
            let invocation = invocation(&env(&[
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", args),
            ]))
            .unwrap();
            assert_eq!(invocation.args.len(), pairs, "{args:.40}");
        }
        let invocation = invocation(&env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K=a=b"),
        ]))
        .unwrap();
        assert_eq!(invocation.args, [("K".to_string(), "a=b".to_string())]);
    }

    #[test]
    fn del_needs_no_netns_but_add_does() {
        let base = [
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
        ];
        let mut del = base.to_vec();
        del.push(("CNI_COMMAND", "DEL"));
        let del = invocation(&env(&del)).unwrap();
        assert_eq!(del.netns, None);
        assert_eq!(del.args[1], ("K8S_POD_NAME".into(), "web".into()));
        let mut add = base.to_vec();
        add.push(("CNI_COMMAND", "ADD"));
        assert!(
            invocation(&env(&add))
                .unwrap_err()
                .msg
                .contains("CNI_NETNS")
        );
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(at_least("1.1.0", "1.0.0"));
        assert!(at_least("1.10.0", "1.9.0"));
        assert!(!at_least("0.4.0", "1.0.0"));
        assert_eq!(check_version("0.3.1").unwrap_err().code, 1);
    }

    #[test]
    fn an_error_is_the_specs_json() {
        let doc = CniError::new(7, "bad")
            .with_details("field x")
            .to_json("1.0.0");
        assert_eq!(
            doc,
            r#"{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"field x"}"#
        );
    }
}
