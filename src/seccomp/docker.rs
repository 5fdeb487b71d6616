//! docker's JSON seccomp profile format (`docker run --security-opt
//! seccomp=FILE`), as far as docker's own default profile uses it:
//! `defaultAction`, `defaultErrnoRet`, `architectures` or `archMap`, and
//! `syscalls[]` with `name`/`names`, `action`, `errnoRet`, `args` (`index`,
//! `value`, `valueTwo`, `op`), `includes`/`excludes` (`arches`, `caps`,
//! `minKernel`) and `comment`. Anything else (`flags`, `listenerPath`,
//! SCMP_ACT_NOTIFY/TRACE, an unknown field) is an error naming it, never
//! silently ignored.

use serde::Deserialize;

use super::{Action, Arg, Condition, NATIVE_ARCH, Op, Profile, Rule};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    default_action: Action,
    default_errno_ret: Option<u16>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    syscalls: Vec<Syscall>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Syscall {
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    action: Action,
    errno_ret: Option<u16>,
    #[serde(default)]
    args: Option<Vec<JsonArg>>,
    #[serde(default)]
    includes: Option<JsonCondition>,
    #[serde(default)]
    excludes: Option<JsonCondition>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: Op,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JsonCondition {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    min_kernel: Option<String>,
}

/// A profile from docker's JSON; the error says what is wrong and where.
pub fn parse(text: &str) -> Result<Profile, String> {
    let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !file.architectures.is_empty() && file.arch_map.is_some() {
        return Err("use either \"architectures\" or \"archMap\", not both".into());
    }
    let arches = match file.arch_map {
        Some(map) => map
            .into_iter()
            .filter(|m| m.architecture == NATIVE_ARCH)
            .flat_map(|m| {
                std::iter::once(m.architecture).chain(m.sub_architectures.unwrap_or_default())
            })
            .collect(),
        None => file.architectures,
    };
    for arch in &arches {
        if arch.parse::<libseccomp::ScmpArch>().is_err() {
            return Err(format!("unknown architecture {arch:?}"));
        }
    }
    let rules = file
        .syscalls
        .into_iter()
        .enumerate()
        .map(|(i, s)| rule(s).map_err(|e| format!("syscalls[{i}]: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(Profile {
        default_action: file.default_action,
        default_errno: file.default_errno_ret,
        arches,
        rules,
    })
}

fn rule(s: Syscall) -> Result<Rule, String> {
    let names = match (s.name, s.names.is_empty()) {
        (Some(_), false) => return Err("use either \"name\" or \"names\", not both".into()),
        (Some(name), true) => vec![name],
        (None, false) => s.names,
        (None, true) => return Err("no syscall \"names\"".into()),
    };
    if s.errno_ret.is_some() && s.action != Action::Errno {
        return Err("\"errnoRet\" is only for SCMP_ACT_ERRNO".into());
    }
    let args = s
        .args
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            if a.index > 5 {
                return Err(format!(
                    "argument index {} (syscalls have 6: 0 to 5)",
                    a.index
                ));
            }
            Ok(Arg {
                index: a.index,
                value: a.value,
                value_two: a.value_two,
                op: a.op,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Rule {
        names,
        action: s.action,
        errno: s.errno_ret,
        args,
        includes: condition(s.includes.unwrap_or_default())?,
        excludes: condition(s.excludes.unwrap_or_default())?,
    })
}

fn condition(c: JsonCondition) -> Result<Condition, String> {
    let min_kernel = match c.min_kernel {
        None => None,
        Some(text) => Some(
            super::parse_kernel(&text)
                .ok_or_else(|| format!("invalid minKernel {text:?}: expected MAJOR.MINOR"))?,
        ),
    };
    Ok(Condition {
        arches: c.arches.unwrap_or_default(),
        caps: c.caps.unwrap_or_default(),
        min_kernel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_profile_reads_as_docker_means_it() {
        let p = parse(
            r#"{
              "defaultAction": "SCMP_ACT_ALLOW",
              "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
              ],
              "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "comment": "no new directories"},
                {"name": "clone", "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]},
                 "includes": {"minKernel": "4.8"}}
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(p.default_action, Action::Allow);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(p.arches, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
        }
        assert_eq!(p.rules[0].names, ["mkdir", "mkdirat"]);
        assert_eq!(p.rules[0].errno, Some(13));
        assert_eq!(p.rules[1].args[0].op, Op::MaskedEq);
        assert_eq!(p.rules[1].excludes.caps, ["CAP_SYS_ADMIN"]);
        assert_eq!(p.rules[1].includes.min_kernel, Some((4, 8)));
    }

    #[test]
    fn unsupported_features_are_named() {
        let err = |text: &str| parse(text).unwrap_err();
        let e = err(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#);
        assert!(e.contains("SCMP_ACT_NOTIFY"), "{e}");
        let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}"#);
        assert!(e.contains("listenerPath"), "{e}");
        let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}"#);
        assert!(e.contains("flags"), "{e}");
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}"#,
        );
        assert!(e.contains("SCMP_CMP_LIKE"), "{e}");
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_TRACE"}]}"#,
        );
        assert!(e.contains("SCMP_ACT_TRACE"), "{e}");
        let e = err(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(e, "syscalls[0]: no syscall \"names\"");
        let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#);
        assert!(e.contains("SCMP_ARCH_Z80"), "{e}");
        let e = err("{");
        assert!(e.contains("line 1"), "{e}");
    }
}
