//! cgroup v1: a hierarchy per controller, `ROOT/memory`, `ROOT/cpu`,
//! `ROOT/pids`; the container gets a directory in each it is limited by.

use std::path::{Path, PathBuf};

use super::{Error, keyed, needed, write};
use crate::values::{CPU_PERIOD_US, Resources};

/// The hierarchy of each controller `resources` needs, each mounted.
pub(super) fn check(root: &Path, resources: &Resources) -> Result<Vec<PathBuf>, Error> {
    needed(resources)
        .into_iter()
        .map(|(controller, option)| {
            let dir = root.join(controller);
            match dir.join("cgroup.procs").exists() {
                true => Ok(dir),
                false => Err(Error::Missing {
                    option,
                    controller,
                    where_: format!("the cgroup v1 hierarchies under {}", root.display()),
                }),
            }
        })
        .collect()
}

/// Writes the limits of `leaf`'s controller (the name of its hierarchy).
pub(super) fn limit(leaf: &Path, resources: &Resources) -> Result<(), Error> {
    let controller = leaf
        .ancestors()
        .nth(2)
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let swap = leaf.join("memory.memsw.limit_in_bytes").exists();
    for (file, value) in writes(controller, resources, swap) {
        write(&leaf.join(file), &value)?;
    }
    Ok(())
}

/// What goes into `controller`'s files, in order. With swap accounting
/// (memsw), docker's default: as much swap as memory, so memory+swap is
/// twice the limit; it must be written after the memory limit, which it may
/// never be below.
fn writes(controller: &str, resources: &Resources, swap: bool) -> Vec<(&'static str, String)> {
    match controller {
        "memory" => match resources.memory {
            Some(bytes) => {
                let mut w = vec![("memory.limit_in_bytes", bytes.to_string())];
                if swap {
                    let both = bytes.saturating_mul(2);
                    w.push(("memory.memsw.limit_in_bytes", both.to_string()));
                }
                w
            }
            None => vec![],
        },
        "cpu" => match resources.cpu_quota_us() {
            Some(quota) => vec![
                ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
                ("cpu.cfs_quota_us", quota.to_string()),
            ],
            None => vec![],
        },
        "pids" => match resources.pids_limit {
            Some(max) => vec![("pids.max", max.to_string())],
            None => vec![],
        },
        _ => vec![],
    }
}

/// memory.oom_control's `oom_kill` counter (kernel 4.13+).
pub(super) fn oom_kills(leaf: &Path) -> Option<u64> {
    keyed(&leaf.join("memory.oom_control"), "oom_kill")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Resources {
        Resources {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(100),
        }
    }

    #[test]
    fn each_controller_gets_its_files_memsw_twice_memory_when_there_is_swap_accounting() {
        let r = all();
        assert_eq!(
            writes("memory", &r, true),
            [
                ("memory.limit_in_bytes", "67108864".to_string()),
                ("memory.memsw.limit_in_bytes", "134217728".to_string())
            ]
        );
        assert_eq!(writes("memory", &r, false).len(), 1);
        assert_eq!(
            writes("cpu", &r, true),
            [
                ("cpu.cfs_period_us", "100000".to_string()),
                ("cpu.cfs_quota_us", "50000".to_string())
            ]
        );
        assert_eq!(writes("pids", &r, true), [("pids.max", "100".to_string())]);
    }

    #[test]
    fn only_the_limited_controllers_are_needed() {
        let r = Resources {
            pids_limit: Some(5),
            ..Resources::default()
        };
        assert_eq!(needed(&r), [("pids", "pids-limit")]);
        assert_eq!(needed(&all()).len(), 3);
    }
}
