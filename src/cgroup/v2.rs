//! cgroup v2: one tree; the container's directory is a leaf under
//! `supervisor-HASH`, whose parent enables the controllers it needs.

use std::path::{Path, PathBuf};

use super::{Error, keyed, needed, write};
use crate::values::{CPU_PERIOD_US, Resources};

/// `root` when it offers every controller `resources` needs.
pub(super) fn check(root: &Path, resources: &Resources) -> Result<PathBuf, Error> {
    let offered = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    for (controller, option) in needed(resources) {
        if !offered.split_whitespace().any(|c| c == controller) {
            return Err(Error::Missing {
                option,
                controller,
                where_: format!(
                    "the cgroup v2 tree at {} (it offers: {})",
                    root.display(),
                    offered.trim()
                ),
            });
        }
    }
    Ok(root.to_path_buf())
}

/// Enables the controllers `resources` needs for the children of `root`
/// and of `parent`, its child: a v2 controller reaches a cgroup only
/// through its parent's `cgroup.subtree_control`.
pub(super) fn enable(root: &Path, parent: &Path, resources: &Resources) -> Result<(), Error> {
    let value = needed(resources)
        .iter()
        .map(|(controller, _)| format!("+{controller}"))
        .collect::<Vec<_>>()
        .join(" ");
    if value.is_empty() {
        return Ok(());
    }
    write(&root.join("cgroup.subtree_control"), &value)?;
    write(&parent.join("cgroup.subtree_control"), &value)
}

/// Writes the limits into `leaf`.
pub(super) fn limit(leaf: &Path, resources: &Resources) -> Result<(), Error> {
    let swap = leaf.join("memory.swap.max").exists();
    for (file, value) in writes(resources, swap) {
        write(&leaf.join(file), &value)?;
    }
    Ok(())
}

/// What goes into which file. With swap accounting, docker's default: as
/// much swap as memory.
fn writes(resources: &Resources, swap: bool) -> Vec<(&'static str, String)> {
    let mut w = Vec::new();
    if let Some(bytes) = resources.memory {
        w.push(("memory.max", bytes.to_string()));
        if swap {
            w.push(("memory.swap.max", bytes.to_string()));
        }
    }
    if let Some(quota) = resources.cpu_quota_us() {
        w.push(("cpu.max", format!("{quota} {CPU_PERIOD_US}")));
    }
    if let Some(max) = resources.pids_limit {
        w.push(("pids.max", max.to_string()));
    }
    w
}

/// memory.events' `oom_kill` counter.
pub(super) fn oom_kills(leaf: &Path) -> Option<u64> {
    keyed(&leaf.join("memory.events"), "oom_kill")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_go_to_memory_max_cpu_max_and_pids_max() {
        let r = Resources {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(100),
        };
        assert_eq!(
            writes(&r, true),
            [
                ("memory.max", "67108864".to_string()),
                ("memory.swap.max", "67108864".to_string()),
                ("cpu.max", "150000 100000".to_string()),
                ("pids.max", "100".to_string()),
            ]
        );
        assert_eq!(writes(&r, false).len(), 3);
    }
}
