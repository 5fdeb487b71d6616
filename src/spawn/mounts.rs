//! The container's view of kernel interfaces and of its own /etc files,
//! prepared as a list of mount steps by the parent and executed by the child
//! in its private mount namespace (after /proc is mounted, before the
//! capabilities are dropped).
//!
//! As docker does (moby's `oci/defaults.go`, `ReadonlyPaths` and
//! `MaskedPaths`): the parts of /proc that reach the host's kernel are
//! read-only, those that leak host information are masked; /sys is a fresh
//! read-only sysfs, mounted from inside the container's network namespace
//! so /sys/class/net lists its own interfaces, with the host's cgroup tree
//! read-only under it. Without this, root in the container writes
//! /proc/sys/kernel/core_pattern, which the host's kernel runs as root.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::root_path::Found;

/// /proc entries made read-only: bound over themselves, remounted read-only.
pub const READ_ONLY: [&CStr; 5] = [
    c"/proc/bus",
    c"/proc/fs",
    c"/proc/irq",
    c"/proc/sys",
    c"/proc/sysrq-trigger",
];

/// Entries masked: /dev/null over a file, an empty read-only tmpfs over a
/// directory. Those under /sys are masked after the fresh sysfs is mounted.
/// Whether each is a directory is the kernel's, the same everywhere: told
/// here rather than by a stat of each before clone3 (the run waits for
/// those), and should a kernel disagree, each mask falls back to the other
/// kind (`mask`, `mask_dir`).
pub const MASKED: [(&CStr, Kind); 12] = [
    (c"/proc/asound", Kind::Dir),
    (c"/proc/acpi", Kind::Dir),
    (c"/proc/interrupts", Kind::File),
    (c"/proc/kcore", Kind::File),
    (c"/proc/keys", Kind::File),
    (c"/proc/latency_stats", Kind::File),
    (c"/proc/timer_list", Kind::File),
    (c"/proc/timer_stats", Kind::File),
    (c"/proc/sched_debug", Kind::File),
    (c"/proc/scsi", Kind::Dir),
    (c"/sys/firmware", Kind::Dir),
    (c"/sys/devices/virtual/powercap", Kind::Dir),
];

/// What a masked path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Which mount failed, for the parent's error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// Index into the plan's steps.
    pub step: usize,
    pub errno: libc::c_int,
}

/// One mount the child performs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A fresh proc for the container's pid namespace.
    Proc(Target),
    /// The host's whole tree, recursively: read-only, no devices, no setuid.
    SealHost,
    /// The container's root alone (not what is mounted under it) read-only.
    ReadOnlyRoot,
    /// DIR bound onto itself, so that it is a mount pivot_root can take,
    /// without devices or setuid: a node made with CAP_MKNOD anywhere in
    /// it would otherwise open the host's disks. The bind is then held open
    /// in slot `slot`, the root the targets inside it are opened from.
    BindSelf {
        root: CString,
        slot: usize,
    },
    /// The tmpfs of /dev: the one mount where device nodes work, made
    /// read-only once its nodes are in (`ReadOnlyMount`), so no other can
    /// be made there. Made detached (fsopen, fsmount), moved onto `target`
    /// and held in slot `slot`: what goes in it is made below that handle,
    /// never through a path another writer of the rootfs could redirect
    /// (`/dev` swapped for a link once our tmpfs is on it).
    DevTmpfs {
        target: Target,
        slot: usize,
    },
    /// The mount held in slot `slot` (`path`) alone read-only; the slot is
    /// closed.
    ReadOnlyMount {
        path: CString,
        slot: usize,
    },
    /// A recursive clone of `source` moved onto `target`, read-only or
    /// writable whatever the source's own mount is.
    Volume {
        source: CString,
        target: Target,
        read_only: bool,
    },
    /// The clone a `Volume` makes, taken early and kept as a file
    /// descriptor in the plan's slot `slot`: its source may be covered
    /// later (the read-only host's private /tmp and /run hide the host's).
    CloneVolume {
        source: CString,
        read_only: bool,
        slot: usize,
    },
    /// The clone in slot `slot` moved onto `target`.
    MoveVolume {
        source: CString,
        target: CString,
        slot: usize,
    },
    /// A writable tmpfs without devices or setuid, with mount data.
    Tmpfs {
        target: Target,
        data: CString,
    },
    Dir(Target),
    /// An empty file, a mount point for a file.
    File(CString),
    /// A character device node, mode 0666.
    CharDevice {
        path: Target,
        major: u32,
        minor: u32,
    },
    Symlink {
        target: CString,
        link: Target,
    },
    /// A devpts instance of the container's own.
    Devpts(Target),
    /// Into DIR with pivot_root; the old root is detached and gone.
    PivotRoot(CString),
    /// The child waits for the FIFO's writer to close it, for a fault
    /// test (see `milestones`).
    Wait(CString),
    ReadOnly(CString),
    /// A file: /dev/null over it (over a directory after all, as `MaskDir`).
    Mask(CString),
    /// A directory: an empty read-only tmpfs (over a file after all, as
    /// `Mask`).
    MaskDir(CString),
    /// A fresh read-only sysfs on `sys` with the host's cgroup tree,
    /// read-only, on `cgroup` (inside it).
    Sysfs {
        sys: Target,
        cgroup: Target,
    },
    /// A file of ours bound over a path of the host's tree (/etc/hosts…),
    /// in the container's mount namespace only.
    Bind {
        source: CString,
        target: Target,
    },
}

/// Where a mount goes: a path of the host's, or a path inside the
/// container's own root, which anything else writing there may change
/// under us (see `root_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host's path: mounted on as it is without `inside`, and named by
    /// errors either way.
    path: CString,
    inside: Option<Inside>,
}

/// A target opened in the child (its mount namespace is not the parent's)
/// from the held root, every link resolved inside it by the kernel
/// (RESOLVE_IN_ROOT), and mounted on through that descriptor: whatever is
/// swapped in meanwhile, never a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inside {
    /// The slot holding the root's descriptor.
    root: usize,
    /// Relative to the root, resolved by the parent: no link in it then.
    path: CString,
    /// The device and inode the parent made or found there, which the
    /// object opened must have; `None` below an earlier mount of the plan,
    /// whose own the child finds there.
    object: Option<(u64, u64)>,
}

impl Target {
    /// A path of the host's (or of a tmpfs the child mounted), as it is.
    pub fn path(path: &Path) -> Result<Target, String> {
        Ok(Target::at(c(path)?))
    }

    fn at(path: CString) -> Target {
        Target { path, inside: None }
    }

    /// NAME in the mount this target gets, held in slot SLOT: made and
    /// opened below that handle.
    fn held(&self, slot: usize, name: &str) -> Target {
        Target {
            path: join(&self.path, name),
            inside: Some(Inside {
                root: slot,
                path: CString::new(name).unwrap_or_default(),
                object: None,
            }),
        }
    }

    /// NAME below this target, unchecked: inside a mount the plan made.
    fn below(&self, name: &str) -> Target {
        Target {
            path: join(&self.path, name),
            inside: self.inside.as_ref().map(|inside| Inside {
                root: inside.root,
                path: join(&inside.path, name),
                object: None,
            }),
        }
    }
}

/// Every mount step, in order. Built before clone3; `apply` allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct MountPlan {
    steps: Vec<Step>,
    trees: Trees,
    /// The slot of the container's own root, once bound onto itself.
    root: Option<usize>,
}

/// The file descriptors the child keeps from one step to a later one (the
/// volumes cloned early, the container's root), one slot each, made before
/// clone3 so the child only stores into them.
#[derive(Debug, Default)]
struct Trees(Vec<AtomicI32>);

impl Clone for Trees {
    fn clone(&self) -> Trees {
        Trees(self.0.iter().map(|_| AtomicI32::new(-1)).collect())
    }
}

impl MountPlan {
    /// docker's protections for /proc and /sys; the fresh /sys too when
    /// `with_sysfs` (a container with a root of its own gets it earlier,
    /// from `sysfs`, before pivot_root).
    pub fn protect_kernel(&mut self, with_sysfs: bool) {
        fn masked(prefix: &'static [u8]) -> impl Iterator<Item = Step> {
            MASKED
                .iter()
                .filter(move |(p, _)| p.to_bytes().starts_with(prefix))
                .map(|&(p, kind)| match kind {
                    // Told apart: a failed bind costs the child 0.1 ms.
                    Kind::Dir => Step::MaskDir(p.to_owned()),
                    Kind::File => Step::Mask(p.to_owned()),
                })
        }
        self.steps
            .extend(READ_ONLY.iter().map(|p| Step::ReadOnly((*p).to_owned())));
        self.steps.extend(masked(b"/proc/"));
        if with_sysfs {
            self.sysfs(Target::at(c"/sys".to_owned()));
        }
        self.steps.extend(masked(b"/sys/"));
    }

    /// A fresh read-only sysfs on ROOT/sys, with the host's cgroup tree.
    pub fn sysfs(&mut self, sys: Target) {
        let cgroup = sys.below("fs/cgroup");
        self.steps.push(Step::Sysfs { sys, cgroup });
    }

    /// A fresh proc on TARGET.
    pub fn proc(&mut self, target: Target) {
        self.steps.push(Step::Proc(target));
    }

    /// The host's tree read-only, recursively, without devices or setuid:
    /// the container's root when it has none of its own.
    pub fn seal_host(&mut self) {
        self.steps.push(Step::SealHost);
    }

    /// docker's --read-only: the root mount itself (after pivot_root).
    pub fn read_only_root(&mut self) {
        self.steps.push(Step::ReadOnlyRoot);
    }

    /// Binds DIR onto itself; then everything mounted under it goes along
    /// into pivot_root.
    pub fn bind_root(&mut self, root: &Path) -> Result<(), String> {
        let slot = self.slot();
        self.steps.push(Step::BindSelf {
            root: c(root)?,
            slot,
        });
        self.root = Some(slot);
        Ok(())
    }

    /// What was FOUND (or made) inside the root ROOT, bound by `bind_root`,
    /// as a target: checked to be that object unless a mount planned
    /// before covers it.
    pub fn inside(&self, root: &Path, found: &Found) -> Result<Target, String> {
        let path = c(&found.path)?;
        let covered = self.steps.iter().any(|step| {
            step.target()
                .and_then(|t| t.inside.as_ref())
                .filter(|earlier| Some(earlier.root) == self.root)
                .is_some_and(|earlier| {
                    let (earlier, path) = (earlier.path.to_bytes(), path.to_bytes());
                    path.strip_prefix(earlier)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
                })
        });
        Ok(Target {
            path: c(&root.join(&found.path))?,
            inside: Some(Inside {
                root: self.root.ok_or_else(|| root.display().to_string())?,
                path,
                object: (!covered).then_some((found.dev, found.ino)),
            }),
        })
    }

    /// A new slot for a descriptor the child keeps.
    fn slot(&mut self) -> usize {
        self.trees.0.push(AtomicI32::new(-1));
        self.trees.0.len() - 1
    }

    /// pivot_root into DIR; the old root is detached.
    pub fn pivot_root(&mut self, root: &Path) -> Result<(), String> {
        self.steps.push(Step::PivotRoot(c(root)?));
        Ok(())
    }

    /// A volume: a recursive bind of `source` on `target`.
    pub fn volume(&mut self, source: &Path, target: Target, read_only: bool) -> Result<(), String> {
        self.steps.push(Step::Volume {
            source: c(source)?,
            target,
            read_only,
        });
        Ok(())
    }

    /// A volume in two steps: its source cloned now, moved onto its target
    /// by `move_volume` with the slot returned, after mounts that would
    /// cover the source.
    pub fn clone_volume(&mut self, source: &Path, read_only: bool) -> Result<usize, String> {
        let source = c(source)?;
        let slot = self.slot();
        self.steps.push(Step::CloneVolume {
            source,
            read_only,
            slot,
        });
        Ok(slot)
    }

    pub fn move_volume(&mut self, slot: usize, source: &Path, target: &Path) -> Result<(), String> {
        self.steps.push(Step::MoveVolume {
            source: c(source)?,
            target: c(target)?,
            slot,
        });
        Ok(())
    }

    /// Makes `path` in the child, a directory (and its parents up from
    /// `from`, which exists) or an empty file: a mount point in a tmpfs the
    /// child itself mounted.
    pub fn mount_point(&mut self, from: &Path, path: &Path, dir: bool) -> Result<(), String> {
        let mut parents: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .take_while(|p| p.starts_with(from) && *p != from)
            .collect();
        parents.reverse();
        for parent in parents {
            self.steps.push(Step::Dir(Target::path(parent)?));
        }
        self.steps.push(if dir {
            Step::Dir(Target::path(path)?)
        } else {
            Step::File(c(path)?)
        });
        Ok(())
    }

    /// An empty read-only tmpfs over the directory `path`.
    pub fn hide(&mut self, path: &Path) -> Result<(), String> {
        self.steps.push(Step::MaskDir(c(path)?));
        Ok(())
    }

    /// A writable tmpfs on `target`; `data` is tmpfs's options (size=…).
    pub fn tmpfs(&mut self, target: Target, data: &str) -> Result<(), String> {
        self.steps.push(Step::Tmpfs {
            target,
            data: CString::new(data).map_err(|_| data.to_string())?,
        });
        Ok(())
    }

    /// docker's minimal /dev at ROOT/dev: a tmpfs with the six usual
    /// character devices (made, never bound from the host), a devpts of the
    /// container's own, /dev/shm and the standard symlinks. No host device.
    pub fn dev(&mut self, target: Target) {
        let slot = self.slot();
        let dev = |name: &str| target.held(slot, name);
        self.steps.push(Step::DevTmpfs {
            target: target.clone(),
            slot,
        });
        if let Some(fifo) = crate::milestones::child_pause_at("dev-mounted") {
            self.steps.push(Step::Wait(
                Target::path(&fifo).map(|t| t.path).unwrap_or_default(),
            ));
        }
        for (name, major, minor) in DEVICES {
            self.steps.push(Step::CharDevice {
                path: dev(name),
                major,
                minor,
            });
        }
        self.steps.push(Step::Dir(dev("pts")));
        self.steps.push(Step::Devpts(dev("pts")));
        self.steps.push(Step::Dir(dev("shm")));
        self.steps.push(Step::Tmpfs {
            target: dev("shm"),
            data: c"mode=1777,size=65536k".to_owned(),
        });
        for (name, target) in DEV_LINKS {
            self.steps.push(Step::Symlink {
                target: CString::from(target),
                link: dev(name),
            });
        }
        self.steps.push(Step::ReadOnlyMount {
            path: target.path,
            slot,
        });
    }

    /// Binds `source` over `target` in the container. Fails on a NUL byte.
    pub fn bind(&mut self, source: &Path, target: Target) -> Result<(), String> {
        self.steps.push(Step::Bind {
            source: c(source)?,
            target,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// What step `index` does, for an error message.
    pub fn describe(&self, index: usize) -> String {
        match self.steps.get(index) {
            Some(Step::ReadOnly(p)) => format!("making {} read-only", p.to_string_lossy()),
            Some(Step::Mask(p) | Step::MaskDir(p)) => format!("masking {}", p.to_string_lossy()),
            Some(Step::Sysfs { sys, .. }) => format!(
                "mounting a read-only {} with a read-only cgroup tree",
                sys.path.to_string_lossy()
            ),
            Some(Step::Proc(p)) => format!("mounting proc on {}", p.path.to_string_lossy()),
            Some(Step::SealHost) => "making the host's filesystem read-only".into(),
            Some(Step::ReadOnlyRoot) => "making the root read-only".into(),
            Some(Step::BindSelf { root, .. }) => {
                format!("binding {} onto itself", root.to_string_lossy())
            }
            Some(Step::DevTmpfs { target, .. }) => {
                format!("mounting a tmpfs on {}", target.path.to_string_lossy())
            }
            Some(Step::ReadOnlyMount { path, .. }) => {
                format!("making {} read-only", path.to_string_lossy())
            }
            Some(Step::CloneVolume { source, .. }) => {
                format!("cloning the volume {}", source.to_string_lossy())
            }
            Some(
                Step::Volume {
                    source,
                    target: Target { path: target, .. },
                    ..
                }
                | Step::MoveVolume { source, target, .. },
            ) => {
                format!(
                    "mounting the volume {} on {}",
                    source.to_string_lossy(),
                    target.to_string_lossy()
                )
            }
            Some(Step::Tmpfs { target, .. }) => {
                format!("mounting a tmpfs on {}", target.path.to_string_lossy())
            }
            Some(Step::Dir(p)) => format!("making the directory {}", p.path.to_string_lossy()),
            Some(Step::File(p)) => format!("making the file {}", p.to_string_lossy()),
            Some(Step::CharDevice { path, .. }) => {
                format!("making the device {}", path.path.to_string_lossy())
            }
            Some(Step::Symlink { link, .. }) => {
                format!("making the symlink {}", link.path.to_string_lossy())
            }
            Some(Step::Devpts(p)) => format!("mounting devpts on {}", p.path.to_string_lossy()),
            Some(Step::PivotRoot(p)) => format!("pivoting the root to {}", p.to_string_lossy()),
            Some(Step::Wait(_)) => "stopping for a fault test".into(),
            Some(Step::Bind { source, target }) => format!(
                "binding {} over {}",
                source.to_string_lossy(),
                target.path.to_string_lossy()
            ),
            None => "mounting".into(),
        }
    }

    /// Where the steps that need the container's network namespace begin:
    /// the fresh sysfs shows the network namespace of the process that
    /// mounts it. Everything before it may run before the child has
    /// entered that namespace, while it is still being made.
    fn network_from(&self) -> usize {
        self.steps
            .iter()
            .position(|s| matches!(s, Step::Sysfs { .. }))
            .unwrap_or(self.steps.len())
    }

    /// Runs, in the child, the steps before the first that needs the
    /// container's network namespace; `apply_in_network` runs the rest.
    ///
    /// # Safety
    /// As `apply_steps`.
    pub unsafe fn apply_before_network(&self) -> Result<(), Failed> {
        // SAFETY: see the function's contract.
        unsafe { self.apply_steps(0..self.network_from()) }
    }

    /// Runs the steps `apply_before_network` left, in the child, from
    /// inside the container's network namespace.
    ///
    /// # Safety
    /// As `apply_steps`.
    pub unsafe fn apply_in_network(&self) -> Result<(), Failed> {
        // SAFETY: see the function's contract.
        unsafe { self.apply_steps(self.network_from()..self.steps.len()) }
    }

    /// Keeps FD (or fails with -1 as it is) in SLOT for a later step.
    fn hold(&self, slot: usize, fd: libc::c_int) -> libc::c_int {
        if fd < 0 {
            return -1;
        }
        self.trees.0[slot].store(fd, Ordering::Relaxed);
        0
    }

    /// TARGET opened for one step; `None` (errno set) when it cannot be,
    /// or is not the object the parent made or found.
    ///
    /// # Safety
    /// As `apply_steps`.
    unsafe fn open<'a>(&self, target: &'a Target) -> Option<Opened<'a>> {
        let Some(inside) = &target.inside else {
            return Some(Opened {
                path: Some(&target.path),
                fd: -1,
                buf: [0; FD_PATH_LEN],
            });
        };
        let root = self.trees.0[inside.root].load(Ordering::Relaxed);
        // SAFETY: see the function's contract.
        let fd = unsafe { open_inside(root, inside) };
        (fd >= 0).then_some(Opened {
            path: None,
            fd,
            buf: fd_path(fd),
        })
    }

    /// TARGET as a directory's descriptor and a name below it, for the
    /// `*at` syscalls that make things: the held mount's and the name in
    /// it, or the host's path as it is.
    fn below<'a>(&self, target: &'a Target) -> (libc::c_int, &'a CStr) {
        match &target.inside {
            Some(inside) => (
                self.trees.0[inside.root].load(Ordering::Relaxed),
                &inside.path,
            ),
            None => (libc::AT_FDCWD, &target.path),
        }
    }

    /// OP on TARGET's path (through its descriptor inside the root).
    ///
    /// # Safety
    /// As `apply_steps`.
    unsafe fn on(&self, target: &Target, op: impl FnOnce(&CStr) -> libc::c_int) -> libc::c_int {
        // SAFETY: see the function's contract.
        match unsafe { self.open(target) } {
            Some(opened) => op(opened.path()),
            None => -1,
        }
    }

    /// The error a step failed with, as the parent tells it.
    pub fn cause(errno: libc::c_int) -> std::io::Error {
        match errno {
            CHANGED => std::io::Error::other(
                "the mount point is not what was made or found there before the container started (a symbolic link swapped in by another writer of the root?)",
            ),
            errno => std::io::Error::from_raw_os_error(errno),
        }
    }

    /// Runs steps `range`. Kernel paths (/proc, /sys) missing on this
    /// kernel are skipped, as runc does; anything else missing fails.
    ///
    /// # Safety
    /// Only raw mount syscalls on the plan's own CStrings: safe between
    /// clone3 and exec, in a private mount namespace.
    unsafe fn apply_steps(&self, range: std::ops::Range<usize>) -> Result<(), Failed> {
        for (step, s) in self
            .steps
            .iter()
            .enumerate()
            .take(range.end)
            .skip(range.start)
        {
            // SAFETY: see the function's contract.
            let ret = unsafe {
                match s {
                    Step::ReadOnly(path) => read_only(path),
                    Step::Mask(path) => mask(path),
                    Step::MaskDir(path) => mask_dir(path),
                    Step::Sysfs { sys, cgroup } => {
                        // The cgroup tree's target is inside the fresh sysfs:
                        // opened once that is mounted.
                        let onto_cgroup = |tree| match self.open(cgroup) {
                            Some(cgroup) => move_tree(tree, cgroup.at()),
                            None => close_keeping_errno(tree),
                        };
                        self.on(sys, |sys| sysfs(sys, onto_cgroup))
                    }
                    Step::Bind { source, target } => {
                        self.on(target, |target| mount(source, target, None, libc::MS_BIND))
                    }
                    Step::Proc(target) => self.on(target, |target| {
                        mount(c"proc", target, Some(c"proc"), NOSUID_NODEV_NOEXEC)
                    }),
                    Step::SealHost => set_attr(
                        libc::AT_FDCWD,
                        c"/",
                        libc::AT_RECURSIVE as libc::c_uint,
                        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID,
                        0,
                    ),
                    Step::ReadOnlyRoot => set_attr(libc::AT_FDCWD, c"/", 0, MOUNT_ATTR_RDONLY, 0),
                    Step::BindSelf { root, slot } => {
                        match mount(root, root, None, libc::MS_BIND | libc::MS_REC) {
                            0 => match set_attr(
                                libc::AT_FDCWD,
                                root,
                                libc::AT_RECURSIVE as libc::c_uint,
                                MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID,
                                0,
                            ) {
                                0 => self.hold(*slot, open_path(root)),
                                ret => ret,
                            },
                            ret => ret,
                        }
                    }
                    Step::DevTmpfs { target, slot } => match dev_tmpfs() {
                        tmpfs if tmpfs < 0 => -1,
                        tmpfs => match self.open(target).map(|t| attach(tmpfs, t.at())) {
                            Some(0) => self.hold(*slot, tmpfs),
                            _ => close_keeping_errno(tmpfs),
                        },
                    },
                    Step::ReadOnlyMount { slot, .. } => {
                        let mount = self.trees.0[*slot].swap(-1, Ordering::Relaxed);
                        let flags = libc::AT_EMPTY_PATH as libc::c_uint;
                        match set_attr(mount, c"", flags, MOUNT_ATTR_RDONLY, 0) {
                            0 => libc::close(mount),
                            _ => close_keeping_errno(mount),
                        }
                    }
                    Step::Volume {
                        source,
                        target,
                        read_only,
                    } => match clone_tree(source, *read_only) {
                        tree if tree < 0 => -1,
                        tree => match self.open(target) {
                            Some(target) => move_tree(tree, target.at()),
                            None => close_keeping_errno(tree),
                        },
                    },
                    Step::CloneVolume {
                        source,
                        read_only,
                        slot,
                    } => self.hold(*slot, clone_tree(source, *read_only)),
                    Step::MoveVolume { target, slot, .. } => {
                        let tree = self.trees.0[*slot].swap(-1, Ordering::Relaxed);
                        move_tree(tree, (libc::AT_FDCWD, target, 0))
                    }
                    Step::Tmpfs { target, data } => self.on(target, |target| {
                        libc::mount(
                            c"tmpfs".as_ptr(),
                            target.as_ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_NOSUID | libc::MS_NODEV,
                            data.as_ptr().cast(),
                        )
                    }),
                    Step::Dir(path) => {
                        let (dir, name) = self.below(path);
                        match libc::mkdirat(dir, name.as_ptr(), 0o755) {
                            -1 if errno() == libc::EEXIST => 0,
                            ret => ret,
                        }
                    }
                    Step::File(path) => {
                        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC;
                        match libc::open(path.as_ptr(), flags, 0o644) {
                            -1 => -1,
                            fd => libc::close(fd),
                        }
                    }
                    Step::CharDevice { path, major, minor } => {
                        let (dir, name) = self.below(path);
                        match libc::mknodat(
                            dir,
                            name.as_ptr(),
                            libc::S_IFCHR,
                            libc::makedev(*major, *minor),
                        ) {
                            // Not in mknod: the umask would take bits away.
                            0 => libc::fchmodat(dir, name.as_ptr(), 0o666, 0),
                            ret => ret,
                        }
                    }
                    Step::Symlink { target, link } => {
                        let (dir, name) = self.below(link);
                        libc::symlinkat(target.as_ptr(), dir, name.as_ptr())
                    }
                    Step::Devpts(target) => self.on(target, |target| {
                        libc::mount(
                            c"devpts".as_ptr(),
                            target.as_ptr(),
                            c"devpts".as_ptr(),
                            libc::MS_NOSUID | libc::MS_NOEXEC,
                            c"newinstance,ptmxmode=0666,mode=0620,gid=5".as_ptr().cast(),
                        )
                    }),
                    Step::Wait(fifo) => {
                        match libc::open(fifo.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) {
                            -1 => -1,
                            fd => {
                                let mut byte = 0u8;
                                while libc::read(fd, (&raw mut byte).cast(), 1) > 0 {}
                                libc::close(fd)
                            }
                        }
                    }
                    Step::PivotRoot(root) => {
                        // The old root goes: so does its handle.
                        if let Some(slot) = self.root {
                            close_keeping_errno(self.trees.0[slot].swap(-1, Ordering::Relaxed));
                        }
                        pivot_root(root)
                    }
                }
            };
            if ret < 0 {
                let errno = errno();
                let kernel_path = matches!(
                    s,
                    Step::ReadOnly(_) | Step::Mask(_) | Step::MaskDir(_) | Step::Sysfs { .. }
                );
                if !(kernel_path && errno == libc::ENOENT) {
                    return Err(Failed { step, errno });
                }
            }
        }
        Ok(())
    }
}

impl Step {
    /// Where it mounts, when that is a `Target`.
    fn target(&self) -> Option<&Target> {
        match self {
            Step::Proc(target)
            | Step::DevTmpfs { target, .. }
            | Step::Volume { target, .. }
            | Step::Tmpfs { target, .. }
            | Step::Sysfs { sys: target, .. }
            | Step::Bind { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// The errno of a target that is not the object the parent made or found
/// there: told apart by `MountPlan::cause`.
const CHANGED: libc::c_int = libc::ESTALE;

/// `/proc/self/fd/` and an fd's digits, NUL-terminated.
const FD_PATH_LEN: usize = 32;

/// A target's path for one step: the host's, or its descriptor's
/// (`/proc/self/fd/N`: mount(2) onto it mounts on that very object), the
/// descriptor closed on drop.
struct Opened<'a> {
    path: Option<&'a CStr>,
    fd: libc::c_int,
    buf: [u8; FD_PATH_LEN],
}

/// Where a `*at` syscall goes: a directory's descriptor, a path below it,
/// and the flag for an empty path (the descriptor's own object).
type At<'a> = (libc::c_int, &'a CStr, libc::c_uint);

impl Opened<'_> {
    /// For move_mount: the descriptor itself (magic links are not followed
    /// there).
    fn at(&self) -> At<'_> {
        match self.path {
            Some(path) => (libc::AT_FDCWD, path, 0),
            None => (self.fd, c"", libc::MOVE_MOUNT_T_EMPTY_PATH),
        }
    }

    /// For mount(2), which follows `/proc/self/fd/N` to its object.
    fn path(&self) -> &CStr {
        self.path
            .unwrap_or_else(|| CStr::from_bytes_until_nul(&self.buf).unwrap_or_default())
    }
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // SAFETY: the descriptor `open` opened, closed once.
            unsafe { close_keeping_errno(self.fd) };
        }
    }
}

/// `/proc/self/fd/FD`, formatted without allocating (in the child).
fn fd_path(fd: libc::c_int) -> [u8; FD_PATH_LEN] {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    let mut buf = [0; FD_PATH_LEN];
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let end = PREFIX.len() + digits.len() - start;
    buf[PREFIX.len()..end].copy_from_slice(&digits[start..]);
    buf
}

/// openat2's `struct open_how`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// PATH opened as a handle (`O_PATH`), or -1.
unsafe fn open_path(path: &CStr) -> libc::c_int {
    // SAFETY: open on a NUL-terminated path.
    unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    }
}

/// INSIDE opened from the handle ROOT, every link in it resolved inside
/// the root; -1 (errno `CHANGED`) when it is not the object expected.
unsafe fn open_inside(root: libc::c_int, inside: &Inside) -> libc::c_int {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 with a NUL-terminated path and a stack open_how of
    // the size given; fstat into a stack buffer; the fd is ours to close.
    unsafe {
        let fd = libc::syscall(
            libc::SYS_openat2,
            root,
            inside.path.as_ptr(),
            &how,
            std::mem::size_of::<OpenHow>(),
        ) as libc::c_int;
        let Some((dev, ino)) = inside.object else {
            return fd;
        };
        if fd < 0 {
            return -1;
        }
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        if libc::fstat(fd, stat.as_mut_ptr()) < 0 {
            return close_keeping_errno(fd);
        }
        let stat = stat.assume_init();
        if (stat.st_dev, stat.st_ino) != (dev, ino) {
            libc::close(fd);
            *libc::__errno_location() = CHANGED;
            return -1;
        }
        fd
    }
}

/// The character devices of docker's /dev, with their fixed numbers.
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const DEV_LINKS: [(&str, &CStr); 5] = [
    ("ptmx", c"pts/ptmx"),
    ("fd", c"/proc/self/fd"),
    ("stdin", c"/proc/self/fd/0"),
    ("stdout", c"/proc/self/fd/1"),
    ("stderr", c"/proc/self/fd/2"),
];

/// DIR/NAME; `name` is ours, without a NUL byte.
fn join(dir: &CStr, name: &str) -> CString {
    let mut path = dir.to_bytes().to_vec();
    path.push(b'/');
    path.extend_from_slice(name.as_bytes());
    CString::new(path).unwrap_or_default()
}

fn c(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| p.display().to_string())
}

unsafe fn mount(
    source: &CStr,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
) -> libc::c_int {
    // SAFETY: NUL-terminated strings alive for the call; no data argument.
    unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), CStr::as_ptr),
            flags,
            std::ptr::null(),
        )
    }
}

/// Bind over itself, then remount the bind read-only (a bind mount takes
/// its flags only on remount).
unsafe fn read_only(path: &CStr) -> libc::c_int {
    // SAFETY: see mount().
    unsafe {
        let ret = mount(path, path, None, libc::MS_BIND | libc::MS_REC);
        if ret < 0 {
            return ret;
        }
        mount(
            path,
            path,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        )
    }
}

/// /dev/null over a file; over a directory that bind fails with ENOTDIR and
/// an empty read-only tmpfs goes there instead (no stat needed).
unsafe fn mask(path: &CStr) -> libc::c_int {
    // SAFETY: see mount().
    unsafe {
        let ret = mount(c"/dev/null", path, None, libc::MS_BIND);
        if ret == 0 || errno() != libc::ENOTDIR {
            return ret;
        }
        empty_tmpfs(path)
    }
}

/// An empty read-only tmpfs over a directory; over a file that mount fails
/// with ENOTDIR and /dev/null goes there instead.
unsafe fn mask_dir(path: &CStr) -> libc::c_int {
    // SAFETY: see mount().
    unsafe {
        let ret = empty_tmpfs(path);
        if ret == 0 || errno() != libc::ENOTDIR {
            return ret;
        }
        mount(c"/dev/null", path, None, libc::MS_BIND)
    }
}

unsafe fn empty_tmpfs(path: &CStr) -> libc::c_int {
    // SAFETY: see mount().
    unsafe {
        mount(
            c"tmpfs",
            path,
            Some(c"tmpfs"),
            libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        )
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// A fresh sysfs, read-only, on /sys; the host's cgroup tree (every
/// hierarchy under it, on a hybrid host) cloned before /sys is covered,
/// made read-only recursively, and moved onto the new /sys/fs/cgroup. The
/// new sysfs belongs to the caller's network namespace: the container's.
unsafe fn sysfs(sys: &CStr, onto_cgroup: impl FnOnce(libc::c_int) -> libc::c_int) -> libc::c_int {
    // SAFETY: open_tree/mount_setattr/move_mount on NUL-terminated paths and
    // a stack MountAttr; the tree fd is closed on every path.
    unsafe {
        let tree = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/sys/fs/cgroup".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint,
        ) as libc::c_int;
        if tree >= 0 {
            let attr = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY
                    | MOUNT_ATTR_NOSUID
                    | MOUNT_ATTR_NODEV
                    | MOUNT_ATTR_NOEXEC,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            let ret = libc::syscall(
                libc::SYS_mount_setattr,
                tree,
                c"".as_ptr(),
                (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
                &attr,
                std::mem::size_of::<MountAttr>(),
            );
            if ret < 0 {
                return close_keeping_errno(tree);
            }
        }
        let ret = mount(
            c"sysfs",
            sys,
            Some(c"sysfs"),
            libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        );
        if ret < 0 || tree < 0 {
            return if tree >= 0 {
                close_keeping_errno(tree)
            } else {
                ret
            };
        }
        onto_cgroup(tree)
    }
}

/// mount_setattr on PATH (relative to DIRFD), setting and clearing
/// MOUNT_ATTR_* bits.
unsafe fn set_attr(
    dirfd: libc::c_int,
    path: &CStr,
    flags: libc::c_uint,
    set: u64,
    clear: u64,
) -> libc::c_int {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a NUL-terminated path and a stack MountAttr of the size given.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr,
            std::mem::size_of::<MountAttr>(),
        ) as libc::c_int
    }
}

/// A detached recursive clone of SOURCE, made read-only or writable as a
/// whole (a bind whose flags are ours, not those of the mount it came
/// from: the sealed host's are read-only); its fd, or -1.
unsafe fn clone_tree(source: &CStr, read_only: bool) -> libc::c_int {
    // SAFETY: open_tree/mount_setattr on a NUL-terminated path; the tree
    // fd is closed when it fails.
    unsafe {
        let tree = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint,
        ) as libc::c_int;
        if tree < 0 {
            return -1;
        }
        let (set, clear) = if read_only {
            (MOUNT_ATTR_RDONLY, 0)
        } else {
            (0, MOUNT_ATTR_RDONLY)
        };
        let flags = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
        if set_attr(tree, c"", flags, set | MOUNT_ATTR_NODEV, clear) < 0 {
            return close_keeping_errno(tree);
        }
        tree
    }
}

/// The detached TREE moved onto AT; the fd stays open.
unsafe fn attach(tree: libc::c_int, (dirfd, target, flags): At) -> libc::c_int {
    // SAFETY: move_mount of an fd we own onto a NUL-terminated path.
    unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            dirfd,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | flags,
        ) as libc::c_int
    }
}

/// /dev's tmpfs, detached: its mount's descriptor, or -1.
unsafe fn dev_tmpfs() -> libc::c_int {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: fsopen/fsconfig/fsmount on NUL-terminated strings; the
    // context's fd is closed on every path.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) as libc::c_int;
        if fs < 0 {
            return -1;
        }
        for (key, value) in [
            (c"source", c"tmpfs"),
            (c"mode", c"755"),
            (c"size", c"65536k"),
        ] {
            let set = (FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr());
            if libc::syscall(libc::SYS_fsconfig, fs, set.0, set.1, set.2, 0) < 0 {
                return close_keeping_errno(fs);
            }
        }
        let null = std::ptr::null::<libc::c_char>();
        if libc::syscall(libc::SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, null, null, 0) < 0 {
            return close_keeping_errno(fs);
        }
        let flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
        let mount = libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, flags) as libc::c_int;
        if mount < 0 {
            return close_keeping_errno(fs);
        }
        libc::close(fs);
        mount
    }
}

/// The detached TREE moved onto TARGET; the fd is closed either way.
unsafe fn move_tree(tree: libc::c_int, at: At) -> libc::c_int {
    // SAFETY: our own fd, attached then closed once.
    unsafe {
        if attach(tree, at) < 0 {
            return close_keeping_errno(tree);
        }
        libc::close(tree);
        0
    }
}

/// runc's pivot_root(".", "."): the old root ends up stacked on the new
/// one, and unmounting "." with MNT_DETACH takes it away, with everything
/// under it, leaving no directory behind in DIR that could reach it.
unsafe fn pivot_root(root: &CStr) -> libc::c_int {
    // SAFETY: chdir/pivot_root/umount2 on NUL-terminated paths.
    unsafe {
        if libc::chdir(root.as_ptr()) < 0 {
            return -1;
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) < 0 {
            return -1;
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) < 0 {
            return -1;
        }
        libc::chdir(c"/".as_ptr())
    }
}

unsafe fn close_keeping_errno(fd: libc::c_int) -> libc::c_int {
    let saved = errno();
    // SAFETY: closing our own descriptor; errno restored for the caller.
    unsafe {
        libc::close(fd);
        *libc::__errno_location() = saved;
    }
    -1
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_is_protected_before_sys_is_replaced_and_sys_masks_come_after() {
        let mut plan = MountPlan::default();
        plan.protect_kernel(true);
        let sysfs = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::Sysfs { .. }))
            .unwrap();
        for (i, step) in plan.steps.iter().enumerate() {
            if let Step::ReadOnly(p) | Step::Mask(p) | Step::MaskDir(p) = step {
                let under_sys = p.to_bytes().starts_with(b"/sys/");
                assert_eq!(under_sys, i > sysfs, "{p:?}");
            }
        }
        assert!(plan.describe(0).contains("/proc/bus"));
    }

    #[test]
    fn the_masked_paths_are_the_kinds_this_kernel_has() {
        for (path, kind) in MASKED {
            let path = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
            if let Ok(meta) = std::fs::metadata(path) {
                assert_eq!(meta.is_dir(), kind == Kind::Dir, "{}", path.display());
            }
        }
    }

    #[test]
    fn only_the_fresh_sysfs_and_what_follows_it_wait_for_the_network_namespace() {
        let mut plan = MountPlan::default();
        plan.proc(Target::at(c"/proc".to_owned()));
        assert_eq!(plan.network_from(), plan.len(), "nothing needs it");
        plan.protect_kernel(true);
        let from = plan.network_from();
        assert!(matches!(plan.steps[from], Step::Sysfs { .. }));
        assert!(
            plan.steps[..from]
                .iter()
                .all(|s| !matches!(s, Step::Sysfs { .. }))
        );
    }

    #[test]
    fn a_descriptors_path_is_formatted_without_allocating() {
        for fd in [0, 7, 42, 1_000_000, i32::MAX] {
            let buf = fd_path(fd);
            let path = CStr::from_bytes_until_nul(&buf).unwrap();
            assert_eq!(path.to_str().unwrap(), format!("/proc/self/fd/{fd}"));
        }
    }

    #[test]
    fn a_bind_with_a_nul_byte_is_refused() {
        let mut plan = MountPlan::default();
        let bad = Path::new(std::ffi::OsStr::from_bytes(b"/a\0b"));
        let hosts = || Target::path(Path::new("/etc/hosts")).unwrap();
        assert!(plan.bind(bad, hosts()).is_err());
        plan.bind(Path::new("/run/x/hosts"), hosts()).unwrap();
        assert_eq!(plan.describe(0), "binding /run/x/hosts over /etc/hosts");
    }
}
