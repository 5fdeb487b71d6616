//! Capabilities: the supervisor's preflight check, and the set a container
//! keeps (docker's default), prepared as plain numbers so the child can apply
//! it with raw syscalls and no allocation.

use std::sync::atomic::{AtomicU32, Ordering};

use caps::{CapSet, Capability};

/// docker's default capability set for containers.
pub const CONTAINER_DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_NET_RAW,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_MKNOD,
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_SETFCAP,
];

/// The most capabilities any kernel we support defines (cap_last_cap + 1 ≤ 64).
const MAX_CAPS: usize = 64;

/// What the child applies: the bounding-set drops and the capset(2) payload.
#[derive(Debug, Clone)]
pub struct CapPlan {
    /// Capability numbers to drop from the bounding set, `drop[..drop_len]`.
    drop: [u32; MAX_CAPS],
    drop_len: usize,
    /// Low and high 32 bits of the kept set, for capset's v3 data array.
    kept: [u32; 2],
}

impl CapPlan {
    /// Keep `caps`, drop every other capability this kernel has.
    pub fn new(caps: &[Capability]) -> CapPlan {
        let last = last_cap();
        let keep: u64 = caps.iter().fold(0, |m, c| m | c.bitmask());
        let mut drop = [0u32; MAX_CAPS];
        let mut drop_len = 0;
        for cap in 0..=last.min(MAX_CAPS as u32 - 1) {
            if keep & (1u64 << cap) == 0 {
                drop[drop_len] = cap;
                drop_len += 1;
            }
        }
        CapPlan {
            drop,
            drop_len,
            kept: [keep as u32, (keep >> 32) as u32],
        }
    }

    pub fn bounding_drops(&self) -> &[u32] {
        &self.drop[..self.drop_len]
    }

    pub fn kept_words(&self) -> [u32; 2] {
        self.kept
    }
}

/// The kernel's highest capability number; the caps crate's own list when
/// /proc does not say. Read once: a run asks twice before its container
/// starts (`not_held`, `CapPlan::new`). Never 0, which means unread.
fn last_cap() -> u32 {
    static LAST: AtomicU32 = AtomicU32::new(0);
    match LAST.load(Ordering::Relaxed) {
        0 => {
            let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|&last| last > 0)
                .unwrap_or(Capability::CAP_CHECKPOINT_RESTORE.index() as u32);
            LAST.store(last, Ordering::Relaxed);
            last
        }
        last => last,
    }
}

/// "CAP_A, CAP_B", for messages.
pub fn names(caps: &[Capability]) -> String {
    caps.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Effective capabilities from `needed` that this process lacks.
pub fn missing(needed: &[Capability]) -> Vec<Capability> {
    let have = caps::read(None, CapSet::Effective).unwrap_or_default();
    needed
        .iter()
        .copied()
        .filter(|c| !have.contains(c))
        .collect()
}

/// Capabilities from `wanted` that this process cannot give a container:
/// not in its own permitted set, and known to this kernel (capset ignores
/// the others). capset(2) would refuse the whole set with a bare EPERM.
pub fn not_held(wanted: &[Capability]) -> Vec<Capability> {
    let held = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let last = last_cap() as usize;
    wanted
        .iter()
        .copied()
        .filter(|c| c.index() as usize <= last && !held.contains(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_default_keeps_exactly_dockers_fourteen() {
        let plan = CapPlan::new(&CONTAINER_DEFAULT);
        let [lo, hi] = plan.kept_words();
        let kept = (lo as u64) | ((hi as u64) << 32);
        assert_eq!(kept.count_ones(), 14);
        assert!(kept & Capability::CAP_NET_BIND_SERVICE.bitmask() != 0);
        assert!(kept & Capability::CAP_SYS_ADMIN.bitmask() == 0);
    }

    #[test]
    fn bounding_drops_are_every_other_capability() {
        let plan = CapPlan::new(&CONTAINER_DEFAULT);
        let drops = plan.bounding_drops();
        assert!(drops.contains(&(Capability::CAP_SYS_ADMIN.index() as u32)));
        assert!(drops.contains(&(Capability::CAP_NET_ADMIN.index() as u32)));
        assert!(!drops.contains(&(Capability::CAP_CHOWN.index() as u32)));
        assert_eq!(drops.len() + 14, last_cap() as usize + 1);
    }
}
