//! Who the command runs as: `--user` (ids, or names resolved in the
//! container's own /etc/passwd and /etc/group, read by the parent before
//! clone3) and its capabilities (`--cap-add`/`--cap-drop` over docker's
//! default set), checked before anything is created.

use caps::Capability;

use crate::spawn::DEFAULT_CAPABILITIES;
use crate::values::quoted;

/// The user the command runs as, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those of /etc/group that list the user.
    pub groups: Vec<u32>,
    /// From passwd; "/" when the uid has no entry (docker's).
    pub home: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid --user {}: {reason}", quoted(.spec))]
    User { spec: String, reason: String },
    #[error(
        "invalid --cap-{op} {}: not a capability (like NET_ADMIN, CAP_SYS_TIME or ALL)",
        quoted(.name)
    )]
    Capability { op: &'static str, name: String },
}

/// (uid_t)-1 and (gid_t)-1: never a user or group.
const NO_ID: u32 = u32::MAX;

/// One passwd line's fields we use: name, uid, gid, home.
fn passwd_entries(passwd: &str) -> impl Iterator<Item = (&str, u32, u32, &str)> {
    passwd.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        match f.as_slice() {
            [name, _, uid, gid, _, home, ..] => {
                Some((*name, uid.parse().ok()?, gid.parse().ok()?, *home))
            }
            _ => None,
        }
    })
}

/// One group line's fields: name, gid, members.
fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        match f.as_slice() {
            [name, _, gid, members, ..] => Some((
                *name,
                gid.parse().ok()?,
                members.split(',').filter(|m| !m.is_empty()).collect(),
            )),
            _ => None,
        }
    })
}

/// `UID[:GID]` or `NAME[:GROUP]` against the container's passwd and group
/// files (their text; empty when missing). A name must exist; an id need
/// not (docker's rule).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<User, Error> {
    let bad = |reason: String| Error::User {
        spec: spec.to_string(),
        reason,
    };
    let (user, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group_part.is_some_and(str::is_empty) {
        return Err(bad("expected UID[:GID] or NAME[:GROUP]".into()));
    }
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.1 == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.0 == user)
                .ok_or_else(|| {
                    bad(format!(
                        "no user {} in the container's /etc/passwd",
                        quoted(user)
                    ))
                })?,
        ),
    };
    let uid = user.parse::<u32>().ok().or(entry.map(|e| e.1)).unwrap_or(0);
    let gid = match group_part {
        None => entry.map_or(0, |e| e.2),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|e| e.0 == g)
                .map(|e| e.1)
                .ok_or_else(|| {
                    bad(format!(
                        "no group {} in the container's /etc/group",
                        quoted(g)
                    ))
                })?,
        },
    };
    // (uid_t)-1 is the kernel's "leave unchanged" to setresuid/setresgid:
    // the command would go on as root.
    if uid == NO_ID || gid == NO_ID {
        return Err(bad(format!(
            "{NO_ID} is not an id (to the kernel it means \"unchanged\": root)"
        )));
    }
    let mut groups = vec![];
    if let Some((name, ..)) = entry {
        for (_, g, members) in group_entries(group) {
            if members.contains(&name) && g != gid && !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups,
        home: entry.map_or("/", |e| e.3).to_string(),
    })
}

fn capability(op: &'static str, name: &str) -> Result<Option<Capability>, Error> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(None);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse().map(Some).map_err(|_| Error::Capability {
        op,
        name: name.to_string(),
    })
}

/// docker's rules: start from its default set (every capability with
/// `--cap-add ALL`), take away the dropped ones (all with `--cap-drop
/// ALL`), then add the added ones. Sorted by number.
pub fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<Capability>, Error> {
    let parse = |op, names: &[String]| -> Result<(bool, Vec<Capability>), Error> {
        let mut all = false;
        let mut caps = vec![];
        for name in names {
            match capability(op, name)? {
                None => all = true,
                Some(cap) => caps.push(cap),
            }
        }
        Ok((all, caps))
    };
    let (add_all, add) = parse("add", add)?;
    let (drop_all, drop) = parse("drop", drop)?;
    let mut set: Vec<Capability> = if add_all {
        caps::all().into_iter().collect()
    } else {
        DEFAULT_CAPABILITIES.to_vec()
    };
    if drop_all {
        set.clear();
    } else {
        set.retain(|c| !drop.contains(c));
    }
    for cap in add {
        if !set.contains(&cap) {
            set.push(cap);
        }
    }
    set.sort_by_key(|c| c.index());
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nstaff:x:50:bob,alice\nwheel:x:10:root\n";

    #[test]
    fn a_name_takes_its_ids_home_and_supplementary_groups_from_the_files() {
        let u = resolve_user("alice", PASSWD, GROUP).unwrap();
        assert_eq!(
            u,
            User {
                uid: 1000,
                gid: 1000,
                groups: vec![50],
                home: "/home/alice".into()
            }
        );
        let u = resolve_user("alice:staff", PASSWD, GROUP).unwrap();
        assert_eq!((u.gid, u.groups.clone()), (50, vec![]));
    }

    #[test]
    fn ids_need_no_entry_and_default_to_group_0_and_home_slash() {
        let u = resolve_user("4242", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        let u = resolve_user("1000:7", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 7, "/home/alice"));
    }

    #[test]
    fn the_kernels_unchanged_id_is_refused_as_it_would_leave_the_command_root() {
        for spec in ["4294967295", "1000:4294967295", "4294967295:0"] {
            let err = resolve_user(spec, PASSWD, GROUP).unwrap_err().to_string();
            assert!(err.contains("4294967295 is not an id"), "{spec}: {err}");
        }
        let passwd = "evil:x:4294967295:0::/:/bin/sh\n";
        assert!(resolve_user("evil", passwd, GROUP).is_err());
        assert_eq!(
            resolve_user("4294967294", PASSWD, GROUP).unwrap().uid,
            4294967294
        );
    }

    #[test]
    fn unknown_names_are_named() {
        assert_eq!(
            resolve_user("bob", PASSWD, GROUP).unwrap_err().to_string(),
            "invalid --user \"bob\": no user \"bob\" in the container's /etc/passwd"
        );
        assert!(
            resolve_user("alice:nogroup", PASSWD, GROUP)
                .unwrap_err()
                .to_string()
                .contains("no group \"nogroup\"")
        );
        assert!(resolve_user(":5", PASSWD, GROUP).is_err());
    }

    #[test]
    fn cap_drop_all_then_add_keeps_only_the_added() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            capabilities(&s(&["net_admin"]), &s(&["ALL"])).unwrap(),
            [Capability::CAP_NET_ADMIN]
        );
        let caps = capabilities(&s(&["CAP_SYS_ADMIN"]), &s(&["CHOWN"])).unwrap();
        assert!(caps.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!caps.contains(&Capability::CAP_CHOWN));
        assert_eq!(caps.len(), 14);
        assert_eq!(capabilities(&[], &[]).unwrap().len(), 14);
        assert_eq!(
            capabilities(&s(&["FLY"]), &[]).unwrap_err().to_string(),
            "invalid --cap-add \"FLY\": not a capability (like NET_ADMIN, CAP_SYS_TIME or ALL)"
        );
    }
}
