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
//! So each protection goes through the handle of the proc or sysfs the
//! child mounted, never through a path: in a `--rootfs`, another writer
//! can move the directory a mount is on (the mount goes along) and put a
//! decoy in its place.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::root_path::Found;

/// Below the fresh proc, made read-only: a clone of each, read-only,
/// moved over it.
const PROC_READ_ONLY: [KernelPath; 5] = [
    always(c"bus"),
    always(c"fs"),
    // The generic IRQ code's, which every architecture now uses.
    always(c"irq"),
    // CONFIG_PROC_SYSCTL: a kernel without it is refused, not guessed at.
    always(c"sys"),
    // CONFIG_MAGIC_SYSRQ (the firecracker kernels have none).
    if_configured(c"sysrq-trigger"),
];

/// Below the fresh proc, masked: /dev/null over a file, an empty read-only
/// tmpfs over a directory.
const PROC_MASKED: [KernelPath; 10] = [
    // CONFIG_SND_PROC_FS.
    if_configured(c"asound"),
    // CONFIG_ACPI.
    if_configured(c"acpi"),
    always(c"interrupts"),
    // CONFIG_PROC_KCORE.
    if_configured(c"kcore"),
    // CONFIG_KEYS.
    if_configured(c"keys"),
    // CONFIG_LATENCYTOP.
    if_configured(c"latency_stats"),
    // With the clockevents' code, config-dependent on some architectures.
    if_configured(c"timer_list"),
    // Gone since Linux 4.11, masked for the older kernels docker knew.
    if_configured(c"timer_stats"),
    // Moved to debugfs in Linux 5.13: the same.
    if_configured(c"sched_debug"),
    // CONFIG_SCSI_PROC_FS.
    if_configured(c"scsi"),
];

/// Below the fresh sysfs, masked.
const SYS_MASKED: [KernelPath; 2] = [
    // The driver core's, on every kernel.
    always(c"firmware"),
    // CONFIG_POWERCAP.
    if_configured(c"devices/virtual/powercap"),
];

/// A path below a kernel filesystem the child mounted: what the kernel
/// alone puts there, found below that mount's handle and nowhere else.
/// Missing is a failure unless a kernel's configuration can leave it out:
/// then there is nothing to protect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KernelPath {
    name: &'static CStr,
    optional: bool,
}

const fn always(name: &'static CStr) -> KernelPath {
    KernelPath {
        name,
        optional: false,
    }
}

const fn if_configured(name: &'static CStr) -> KernelPath {
    KernelPath {
        name,
        optional: true,
    }
}

/// What a protection of a kernel path does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protect {
    ReadOnly,
    /// /dev/null over a file, an empty read-only tmpfs over a directory.
    Mask,
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
    /// A fresh proc for the container's pid namespace, made detached
    /// (fsopen, fsmount), moved onto `target` and held in slot `slot`: its
    /// protections (`Kernel`) go below that handle, on this very procfs
    /// wherever another writer of the rootfs has moved the directory it is
    /// on (with it) and whatever it has put in its place.
    Proc {
        target: Target,
        slot: usize,
    },
    /// The host's whole tree, recursively: read-only, no devices, no setuid.
    SealHost,
    /// The container's root alone (not what is mounted under it) read-only.
    ReadOnlyRoot,
    /// DIR bound onto itself, so that it is a mount pivot_root can take,
    /// without devices or setuid: a node made with CAP_MKNOD anywhere in
    /// it would otherwise open the host's disks. DIR is opened once; the
    /// bind is a clone of that handle's tree, moved onto it and held in
    /// slot `slot`: the root the targets inside it are opened from, and
    /// the one `PivotRoot` enters, whatever is renamed meanwhile.
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
    /// kept, the source of the masks' /dev/null.
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
    /// The caller's terminal `source` (a pty slave of the host's devpts,
    /// the container's stdin), cloned alone and held in slot `slot`, before
    /// our /dev covers the host's: runc's /dev/console, bound in `dev`.
    /// Not nodev, unlike a volume (nor the sealed host): it is a device
    /// to open.
    CloneTerminal {
        source: CString,
        slot: usize,
    },
    /// An empty file made below a held mount: a mount point for a file.
    FileBelow(Target),
    /// The clone held in slot `slot` moved onto `target`.
    MoveHeld {
        slot: usize,
        target: Target,
    },
    /// Stdin, stdout and stderr, each that is the terminal bound on
    /// `console` (its device), opened again through it: the command's
    /// terminal then has a name inside (`tty` says `/dev/console`), where
    /// the caller's own path does not exist.
    Console(Target),
    /// Into DIR (the bind held by `BindSelf`, entered through its handle)
    /// with pivot_root; the old root is detached and gone.
    PivotRoot(CString),
    /// After `PivotRoot`: the mount at `path` in the new root must be the
    /// one held in slot `slot` (the fresh proc or sysfs, `kind`), or the
    /// child fails (errno `NOT_HELD`). Another writer of the rootfs can
    /// move the directory our mount is on aside (the mount goes along) and
    /// put a plain one in its place: the protections still follow the
    /// handle, but a container whose /proc is no procfs, with the procfs at
    /// some other path, is not one to run.
    Holds {
        path: CString,
        kind: &'static str,
        slot: usize,
    },
    /// The child waits for the FIFO's writer to close it, for a fault
    /// test (see `milestones`): `fifo` below the directory held in slot
    /// `dir` (opened by `HoldDir` before pivot_root leaves the host's
    /// paths behind), or the host's path as it is.
    Wait {
        dir: Option<usize>,
        fifo: CString,
    },
    /// The directory `path` opened (O_PATH) and held in slot `slot`.
    HoldDir {
        path: CString,
        slot: usize,
    },
    /// One of docker's protections of `path`, below the kernel filesystem
    /// held in slot `slot` (the fresh proc's or sysfs's), seen at `under`.
    Kernel {
        slot: usize,
        under: &'static str,
        path: KernelPath,
        protect: Protect,
    },
    /// An empty read-only tmpfs over a directory of the host's tree.
    Hide(CString),
    /// A fresh read-only sysfs on `sys`, made detached and held in slot
    /// `slot` as the proc is, with the host's cgroup tree, read-only, on
    /// its fs/cgroup.
    Sysfs {
        sys: Target,
        slot: usize,
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
}

/// Every mount step, in order. Built before clone3; `apply` allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct MountPlan {
    steps: Vec<Step>,
    trees: Trees,
    /// The slot of the container's own root, once bound onto itself.
    root: Option<usize>,
    /// The slots of the fresh proc and sysfs, once planned.
    proc: Option<usize>,
    sys: Option<usize>,
    /// The slot of /dev's tmpfs, once planned: the masks' /dev/null.
    null: Option<usize>,
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
    /// docker's protections for /proc and /sys, below the handles of the
    /// fresh proc and sysfs; the fresh /sys too when `with_sysfs` (a
    /// container with a root of its own gets it earlier, from `sysfs`,
    /// before pivot_root). Planned before `proc` (never, by
    /// `Filesystem::plan`), they would be below a slot never filled: they
    /// fail (EBADF), nothing is left unprotected without a word.
    pub fn protect_kernel(&mut self, with_sysfs: bool) {
        let proc = self.proc.unwrap_or_else(|| self.slot());
        self.protect(proc, "/proc", &PROC_READ_ONLY, Protect::ReadOnly);
        self.protect(proc, "/proc", &PROC_MASKED, Protect::Mask);
        if with_sysfs {
            self.sysfs(Target::at(c"/sys".to_owned()));
        }
        let sys = self.sys.unwrap_or_else(|| self.slot());
        self.protect(sys, "/sys", &SYS_MASKED, Protect::Mask);
    }

    fn protect(&mut self, slot: usize, under: &'static str, paths: &[KernelPath], how: Protect) {
        self.steps.extend(paths.iter().map(|&path| Step::Kernel {
            slot,
            under,
            path,
            protect: how,
        }));
    }

    /// A fresh read-only sysfs on ROOT/sys, with the host's cgroup tree.
    pub fn sysfs(&mut self, sys: Target) {
        let slot = self.slot();
        self.sys = Some(slot);
        self.steps.push(Step::Sysfs { sys, slot });
        self.held_at("sys-mounted");
    }

    /// A fresh proc on TARGET.
    pub fn proc(&mut self, target: Target) {
        let slot = self.slot();
        self.proc = Some(slot);
        self.steps.push(Step::Proc { target, slot });
        self.held_at("proc-mounted");
    }

    /// The child held here when a fault test names `point` (see
    /// `milestones`).
    fn held_at(&mut self, point: &str) {
        if let Some(fifo) = crate::milestones::child_pause_at(point) {
            self.steps.push(Step::Wait {
                dir: None,
                fifo: Target::path(&fifo).map(|t| t.path).unwrap_or_default(),
            });
        }
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
        self.held_at("root-bound");
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

    /// pivot_root into DIR; the old root is detached. Then the fresh proc
    /// and sysfs planned inside DIR must be where they were mounted.
    pub fn pivot_root(&mut self, root: &Path) -> Result<(), String> {
        let pause = crate::milestones::child_pause_at("root-entered");
        let pause = match pause
            .as_deref()
            .and_then(|f| Some((f.parent()?, f.file_name()?)))
        {
            Some((dir, name)) => {
                let slot = self.slot();
                self.steps.push(Step::HoldDir {
                    path: c(dir)?,
                    slot,
                });
                Some((slot, c(Path::new(name))?))
            }
            None => None,
        };
        self.steps.push(Step::PivotRoot(c(root)?));
        let checks: Vec<Step> = self
            .steps
            .iter()
            .filter_map(|step| {
                let (target, kind, slot) = match step {
                    Step::Proc { target, slot } => (target, "proc", *slot),
                    Step::Sysfs { sys, slot } => (sys, "sysfs", *slot),
                    _ => return None,
                };
                let inside = target.inside.as_ref()?;
                let path = [b"/", inside.path.to_bytes()].concat();
                Some(Step::Holds {
                    path: CString::new(path).ok()?,
                    kind,
                    slot,
                })
            })
            .collect();
        self.steps.extend(checks);
        if let Some((slot, fifo)) = pause {
            self.steps.push(Step::Wait {
                dir: Some(slot),
                fifo,
            });
        }
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
        self.steps.push(Step::Hide(c(path)?));
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
    pub fn dev(&mut self, target: Target, console: Option<usize>) {
        let slot = self.slot();
        self.null = Some(slot);
        let dev = |name: &str| target.held(slot, name);
        self.steps.push(Step::DevTmpfs {
            target: target.clone(),
            slot,
        });
        self.held_at("dev-mounted");
        for (name, major, minor) in DEVICES {
            self.steps.push(Step::CharDevice {
                path: dev(name),
                major,
                minor,
            });
        }
        if let Some(terminal) = console {
            self.steps.push(Step::FileBelow(dev("console")));
            self.steps.push(Step::MoveHeld {
                slot: terminal,
                target: dev("console"),
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
            path: target.path.clone(),
            slot,
        });
        if console.is_some() {
            self.steps.push(Step::Console(dev("console")));
        }
    }

    /// The caller's terminal at `tty` (its path in our mount namespace),
    /// cloned before anything covers it; `dev` binds it on /dev/console
    /// with the slot returned, and gives it to the command's stdio.
    pub fn terminal(&mut self, tty: &Path) -> Result<usize, String> {
        let slot = self.slot();
        self.steps.push(Step::CloneTerminal {
            source: c(tty)?,
            slot,
        });
        Ok(slot)
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
            Some(Step::Kernel {
                under,
                path,
                protect,
                ..
            }) => {
                let path = format!("{under}/{}", path.name.to_string_lossy());
                match protect {
                    Protect::ReadOnly => format!("making {path} read-only"),
                    Protect::Mask => format!("masking {path}"),
                }
            }
            Some(Step::Hide(p)) => format!("masking {}", p.to_string_lossy()),
            Some(Step::Sysfs { sys, .. }) => format!(
                "mounting a read-only {} with a read-only cgroup tree",
                sys.path.to_string_lossy()
            ),
            Some(Step::Proc { target, .. }) => {
                format!("mounting proc on {}", target.path.to_string_lossy())
            }
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
            Some(Step::CloneTerminal { source, .. }) => {
                format!("cloning the terminal {}", source.to_string_lossy())
            }
            Some(Step::FileBelow(p)) => format!("making {}", p.path.to_string_lossy()),
            Some(Step::MoveHeld { target, .. }) => {
                format!("binding the terminal on {}", target.path.to_string_lossy())
            }
            Some(Step::Console(p)) => {
                format!("opening the terminal at {}", p.path.to_string_lossy())
            }
            Some(Step::PivotRoot(p)) => format!("pivoting the root to {}", p.to_string_lossy()),
            Some(Step::Holds { path, kind, .. }) => format!(
                "checking that {} is the {kind} mounted for the container",
                path.to_string_lossy()
            ),
            Some(Step::Wait { .. } | Step::HoldDir { .. }) => "stopping for a fault test".into(),
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

    /// The descriptor held in SLOT (-1 before it is).
    fn held(&self, slot: usize) -> libc::c_int {
        self.trees.0[slot].load(Ordering::Relaxed)
    }

    /// The detached MOUNT (or -1, errno set) moved onto TARGET and held in
    /// SLOT; closed when it cannot be.
    ///
    /// # Safety
    /// As `apply_steps`.
    unsafe fn attach_held(&self, mount: libc::c_int, target: &Target, slot: usize) -> libc::c_int {
        if mount < 0 {
            return -1;
        }
        // SAFETY: see the function's contract; MOUNT is ours.
        unsafe {
            match self.open(target).map(|t| attach(mount, t.at())) {
                Some(0) => self.hold(slot, mount),
                _ => close_keeping_errno(mount),
            }
        }
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
            NOT_HELD => {
                std::io::Error::other("it is not (moved aside by another writer of the root?)")
            }
            NOT_STDIN => std::io::Error::other(
                "it is no longer the terminal on stdin (replaced since the supervisor looked?)",
            ),
            errno => std::io::Error::from_raw_os_error(errno),
        }
    }

    /// Runs steps `range`. Kernel paths a kernel's configuration can leave
    /// out are skipped when missing, as runc does (see `KernelPath`);
    /// anything else missing fails.
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
                    Step::Kernel {
                        slot,
                        path,
                        protect,
                        ..
                    } => {
                        let null = self.null.map_or(-1, |null| self.held(null));
                        protect_below(self.held(*slot), *path, *protect, null)
                    }
                    Step::Hide(path) => empty_tmpfs(path),
                    Step::Sysfs { sys, slot } => {
                        // Cloned before the fresh sysfs covers it: the host's.
                        let cgroup = cgroup_tree();
                        if cgroup < 0 && errno() != libc::ENOENT {
                            -1
                        } else {
                            let attrs = MOUNT_ATTR_RDONLY | NOSUID_NODEV_NOEXEC_ATTR;
                            let sysfs = fresh(c"sysfs", &[(c"source", c"sysfs")], attrs);
                            match self.attach_held(sysfs, sys, *slot) {
                                0 if cgroup >= 0 => {
                                    move_below(cgroup, open_beneath(sysfs, c"fs/cgroup"))
                                }
                                0 => 0,
                                _ if cgroup >= 0 => close_keeping_errno(cgroup),
                                _ => -1,
                            }
                        }
                    }
                    Step::Bind { source, target } => {
                        self.on(target, |target| mount(source, target, None, libc::MS_BIND))
                    }
                    Step::Proc { target, slot } => {
                        let attrs = NOSUID_NODEV_NOEXEC_ATTR;
                        let proc = fresh(c"proc", &[(c"source", c"proc")], attrs);
                        self.attach_held(proc, target, *slot)
                    }
                    Step::SealHost => set_attr(
                        libc::AT_FDCWD,
                        c"/",
                        libc::AT_RECURSIVE as libc::c_uint,
                        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID,
                        0,
                    ),
                    Step::ReadOnlyRoot => set_attr(libc::AT_FDCWD, c"/", 0, MOUNT_ATTR_RDONLY, 0),
                    Step::BindSelf { root, slot } => self.hold(*slot, bind_self(root)),
                    Step::DevTmpfs { target, slot } => {
                        let options = [
                            (c"source", c"tmpfs"),
                            (c"mode", c"755"),
                            (c"size", c"65536k"),
                        ];
                        let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
                        self.attach_held(fresh(c"tmpfs", &options, attrs), target, *slot)
                    }
                    Step::ReadOnlyMount { slot, .. } => {
                        let flags = libc::AT_EMPTY_PATH as libc::c_uint;
                        set_attr(self.held(*slot), c"", flags, MOUNT_ATTR_RDONLY, 0)
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
                    Step::CloneTerminal { source, slot } => {
                        // The sealed host's mounts are nodev.
                        let set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
                        let clear = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV;
                        let at = (libc::AT_FDCWD, source.as_c_str(), 0);
                        // The parent checked the path against stdin; what
                        // is bound must still be that very file.
                        self.hold(*slot, stdin_itself(clone_at(at, set, clear)))
                    }
                    Step::FileBelow(path) => {
                        let (dir, name) = self.below(path);
                        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC;
                        match libc::openat(dir, name.as_ptr(), flags, 0o600) {
                            -1 => -1,
                            fd => libc::close(fd),
                        }
                    }
                    Step::MoveHeld { slot, target } => {
                        let tree = self.trees.0[*slot].swap(-1, Ordering::Relaxed);
                        match self.open(target) {
                            Some(target) if tree >= 0 => move_tree(tree, target.at()),
                            _ if tree >= 0 => close_keeping_errno(tree),
                            _ => -1,
                        }
                    }
                    Step::Console(path) => {
                        let (dir, name) = self.below(path);
                        stdio_through(dir, name)
                    }
                    Step::HoldDir { path, slot } => {
                        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
                        self.hold(*slot, libc::open(path.as_ptr(), flags))
                    }
                    Step::Wait { dir, fifo } => {
                        let dir = dir.map_or(libc::AT_FDCWD, |slot| self.held(slot));
                        let flags = libc::O_RDONLY | libc::O_CLOEXEC;
                        match libc::openat(dir, fifo.as_ptr(), flags) {
                            -1 => -1,
                            fd => {
                                let mut byte = 0u8;
                                while libc::read(fd, (&raw mut byte).cast(), 1) > 0 {}
                                libc::close(fd)
                            }
                        }
                    }
                    Step::Holds { path, slot, .. } => same_mount(self.held(*slot), path),
                    Step::PivotRoot(_) => {
                        let root = self
                            .root
                            .map_or(-1, |slot| self.trees.0[slot].swap(-1, Ordering::Relaxed));
                        pivot_root(root)
                    }
                }
            };
            if ret < 0 {
                return Err(Failed {
                    step,
                    errno: errno(),
                });
            }
        }
        Ok(())
    }
}

impl Step {
    /// Where it mounts, when that is a `Target`.
    fn target(&self) -> Option<&Target> {
        match self {
            Step::Proc { target, .. }
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
/// there: told apart by `MountPlan::cause`. Above the kernel's MAX_ERRNO
/// (4095), so no errno a syscall sets (a real ESTALE from a network
/// filesystem under the rootfs) reads as it.
const CHANGED: libc::c_int = 4096 + 1;

/// The errno of a path that is not the mount held for it (`Step::Holds`),
/// told apart by `MountPlan::cause` as `CHANGED` is.
const NOT_HELD: libc::c_int = 4096 + 2;

/// The errno of a terminal cloned from its path that is not the file on
/// stdin (`stdin_itself`), told apart as `CHANGED` is.
const NOT_STDIN: libc::c_int = 4096 + 3;

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

/// openat2's `struct open_how` (libc's cannot be built by a struct
/// expression: it is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// NAME located (`O_PATH`) below MOUNT, a kernel filesystem's mount, by
/// the kernel without leaving it: no `..` above it, no symbolic link, no
/// other mount on the way. Nothing else writes there: what is found is
/// the kernel's own. -1 when it cannot be.
unsafe fn open_beneath(mount: libc::c_int, name: &CStr) -> libc::c_int {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV,
    };
    // SAFETY: openat2 with a NUL-terminated path and a stack open_how of
    // the size given.
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            mount,
            name.as_ptr(),
            &how,
            std::mem::size_of::<OpenHow>(),
        ) as libc::c_int
    }
}

/// INSIDE opened from the handle ROOT, every link in it resolved inside
/// the root; -1 (errno `CHANGED`) when it is not the object expected.
unsafe fn open_inside(root: libc::c_int, inside: &Inside) -> libc::c_int {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
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
        match file_id(fd) {
            None => close_keeping_errno(fd),
            Some(found) if found != (dev, ino) => {
                libc::close(fd);
                *libc::__errno_location() = CHANGED;
                -1
            }
            Some(_) => fd,
        }
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

/// An empty read-only tmpfs over the directory PATH of the host's tree.
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
const NOSUID_NODEV_NOEXEC_ATTR: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// The host's cgroup tree (every hierarchy under it, on a hybrid host),
/// cloned recursively and made read-only, for the fresh sysfs's
/// fs/cgroup; -1 when it cannot be (ENOENT: the host has none).
unsafe fn cgroup_tree() -> libc::c_int {
    // SAFETY: see clone_at().
    unsafe {
        clone_at(
            (libc::AT_FDCWD, c"/sys/fs/cgroup", 0),
            MOUNT_ATTR_RDONLY | NOSUID_NODEV_NOEXEC_ATTR,
            0,
        )
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
    let (set, clear) = if read_only {
        (MOUNT_ATTR_RDONLY, 0)
    } else {
        (0, MOUNT_ATTR_RDONLY)
    };
    // SAFETY: see clone_at().
    unsafe { clone_at((libc::AT_FDCWD, source, 0), set | MOUNT_ATTR_NODEV, clear) }
}

/// A detached recursive clone of the tree at AT (its flag: AT_EMPTY_PATH
/// for the descriptor's own), every mount in it setting SET and clearing
/// CLEAR (MOUNT_ATTR_*); its fd, or -1.
unsafe fn clone_at((dirfd, path, flags): At, set: u64, clear: u64) -> libc::c_int {
    let flags = flags | OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree/mount_setattr on a NUL-terminated path; the tree
    // fd is closed when it fails.
    unsafe {
        let tree = libc::syscall(
            libc::SYS_open_tree,
            dirfd,
            path.as_ptr(),
            flags | libc::AT_RECURSIVE as libc::c_uint,
        ) as libc::c_int;
        if tree < 0 {
            return -1;
        }
        let flags = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
        if set_attr(tree, c"", flags, set, clear) < 0 {
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

/// A new filesystem FSTYPE with OPTIONS (key, value), mounted detached
/// with ATTRS (MOUNT_ATTR_*): its mount's descriptor, or -1. Its user
/// namespace, pid namespace (proc) and network namespace (sysfs) are the
/// caller's.
unsafe fn fresh(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: u64) -> libc::c_int {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: fsopen/fsconfig/fsmount on NUL-terminated strings; the
    // context's fd is closed on every path.
    unsafe {
        let fs = libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) as libc::c_int;
        if fs < 0 {
            return -1;
        }
        for (key, value) in options {
            let set = (FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr());
            if libc::syscall(libc::SYS_fsconfig, fs, set.0, set.1, set.2, 0) < 0 {
                return close_keeping_errno(fs);
            }
        }
        let null = std::ptr::null::<libc::c_char>();
        if libc::syscall(libc::SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, null, null, 0) < 0 {
            return close_keeping_errno(fs);
        }
        let mount = libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs) as libc::c_int;
        if mount < 0 {
            return close_keeping_errno(fs);
        }
        libc::close(fs);
        mount
    }
}

/// Docker's protection HOW of PATH below MOUNT (the fresh proc's or
/// sysfs's): a read-only clone of it, or a mask, moved over it through
/// its handle. 0 when it is missing and a kernel may lack it. NULL is
/// our /dev's tmpfs, holding the masks' `null` (-1: the host's /dev/null).
unsafe fn protect_below(
    mount: libc::c_int,
    path: KernelPath,
    how: Protect,
    null: libc::c_int,
) -> libc::c_int {
    // SAFETY: our own descriptors, each closed once; see the callees.
    unsafe {
        let target = open_beneath(mount, path.name);
        if target < 0 {
            return if path.optional && errno() == libc::ENOENT {
                0
            } else {
                -1
            };
        }
        let tree = match how {
            Protect::ReadOnly => clone_at(
                (target, c"", libc::AT_EMPTY_PATH as libc::c_uint),
                MOUNT_ATTR_RDONLY | NOSUID_NODEV_NOEXEC_ATTR,
                0,
            ),
            Protect::Mask => mask(target, null),
        };
        if tree < 0 {
            return close_keeping_errno(target);
        }
        move_below(tree, target)
    }
}

/// What masks TARGET: an empty read-only tmpfs over a directory, a clone
/// of /dev/null (`null` below NULL, or the host's) over anything else.
/// Told by the object's kind, not by the path's: that is the kernel's.
unsafe fn mask(target: libc::c_int, null: libc::c_int) -> libc::c_int {
    // SAFETY: see fresh() and clone_at().
    unsafe {
        let Some(stat) = fstat(target) else {
            return -1;
        };
        if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let attrs = MOUNT_ATTR_RDONLY | NOSUID_NODEV_NOEXEC_ATTR;
            return fresh(c"tmpfs", &[(c"source", c"tmpfs")], attrs);
        }
        let source = if null < 0 {
            (libc::AT_FDCWD, c"/dev/null")
        } else {
            (null, c"null")
        };
        libc::syscall(
            libc::SYS_open_tree,
            source.0,
            source.1.as_ptr(),
            OPEN_TREE_CLONE | (libc::O_CLOEXEC | libc::AT_SYMLINK_NOFOLLOW) as libc::c_uint,
        ) as libc::c_int
    }
}

/// The detached TREE moved onto TARGET, a located object's descriptor;
/// both closed either way. -1 when TARGET is (errno set by its opening).
unsafe fn move_below(tree: libc::c_int, target: libc::c_int) -> libc::c_int {
    // SAFETY: our own descriptors, each closed once.
    unsafe {
        if target < 0 {
            return close_keeping_errno(tree);
        }
        let ret = move_tree(tree, (target, c"", libc::MOVE_MOUNT_T_EMPTY_PATH));
        close_keeping_errno(target);
        ret
    }
}

/// ROOT opened once (no symbolic link at its end: it is canonical), a
/// recursive clone of its tree without devices or setuid moved onto it:
/// that mount's descriptor, or -1.
unsafe fn bind_self(root: &CStr) -> libc::c_int {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: open on a NUL-terminated path; our own descriptors, each
    // closed once; see clone_at().
    unsafe {
        let dir = libc::open(root.as_ptr(), flags);
        if dir < 0 {
            return -1;
        }
        let at = (dir, c"", libc::AT_EMPTY_PATH as libc::c_uint);
        let tree = clone_at(at, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID, 0);
        if tree < 0 {
            return close_keeping_errno(dir);
        }
        let ret = attach(tree, (dir, c"", libc::MOVE_MOUNT_T_EMPTY_PATH));
        close_keeping_errno(dir);
        if ret < 0 {
            return close_keeping_errno(tree);
        }
        tree
    }
}

/// Stdin, stdout and stderr, each that is the terminal at NAME below DIR
/// (the same device), replaced by the terminal opened there: the command
/// finds its terminal's name by its descriptors' paths (`ttyname`).
unsafe fn stdio_through(dir: libc::c_int, name: &CStr) -> libc::c_int {
    // SAFETY: openat on a NUL-terminated name, fstat into stack buffers,
    // dup2 and close on descriptors of ours.
    unsafe {
        let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
        let console = libc::openat(dir, name.as_ptr(), flags);
        if console < 0 {
            return -1;
        }
        let Some(device) = char_device(console) else {
            return close_keeping_errno(console);
        };
        for fd in 0..3 {
            if char_device(fd) == Some(device) && libc::dup2(console, fd) < 0 {
                return close_keeping_errno(console);
            }
        }
        libc::close(console)
    }
}

/// TREE (a clone of one file) when it is the very file on stdin; else
/// closed, and -1 with `NOT_STDIN` in errno.
unsafe fn stdin_itself(tree: libc::c_int) -> libc::c_int {
    if tree < 0 {
        return -1;
    }
    // SAFETY: fstat into stack buffers; TREE is ours, closed once.
    unsafe {
        match (file_id(tree), file_id(libc::STDIN_FILENO)) {
            (Some(cloned), Some(stdin)) if cloned == stdin => tree,
            (None, _) => close_keeping_errno(tree),
            _ => {
                libc::close(tree);
                *libc::__errno_location() = NOT_STDIN;
                -1
            }
        }
    }
}

/// FD's status, None (errno set) when fstat fails. No allocation: the
/// child calls it between clone3 and exec.
fn fstat(fd: libc::c_int) -> Option<libc::stat> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes into a stack buffer of its type, read only when
    // it succeeded; an invalid fd is an error, not undefined behaviour.
    unsafe { (libc::fstat(fd, stat.as_mut_ptr()) == 0).then(|| stat.assume_init()) }
}

/// FD's file: its device and inode.
fn file_id(fd: libc::c_int) -> Option<(libc::dev_t, libc::ino_t)> {
    fstat(fd).map(|stat| (stat.st_dev, stat.st_ino))
}

/// The device number of FD when it is a character device.
fn char_device(fd: libc::c_int) -> Option<libc::dev_t> {
    let stat = fstat(fd)?;
    (stat.st_mode & libc::S_IFMT == libc::S_IFCHR).then_some(stat.st_rdev)
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

/// runc's pivot_root(".", "."), into ROOT (the held bind's descriptor,
/// closed here): the old root ends up stacked on the new one, and
/// unmounting "." with MNT_DETACH takes it away, with everything under
/// it, leaving no directory behind that could reach it.
unsafe fn pivot_root(root: libc::c_int) -> libc::c_int {
    // SAFETY: fchdir into our own descriptor, closed once; pivot_root and
    // umount2 on NUL-terminated paths.
    unsafe {
        if libc::fchdir(root) < 0 {
            return close_keeping_errno(root);
        }
        libc::close(root);
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) < 0 {
            return -1;
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) < 0 {
            return -1;
        }
        libc::chdir(c"/".as_ptr())
    }
}

/// 0 when PATH (its last component not followed) is on the mount MOUNT,
/// a held mount's descriptor; -1 otherwise, errno `NOT_HELD` when it is
/// on another. Compared by mount id, which no other mount has while MOUNT
/// holds it: nothing the other writer can make is on our procfs or sysfs.
fn same_mount(mount: libc::c_int, path: &CStr) -> libc::c_int {
    match (
        mount_id(mount, c"", libc::AT_EMPTY_PATH),
        mount_id(libc::AT_FDCWD, path, 0),
    ) {
        (Some(held), Some(there)) if held == there => 0,
        (Some(_), Some(_)) => {
            // SAFETY: __errno_location returns this thread's errno slot.
            unsafe { *libc::__errno_location() = NOT_HELD };
            -1
        }
        _ => -1,
    }
}

/// The id of the mount PATH below DIRFD is on (statx's, into a stack
/// buffer), its last component not followed; `None`, errno set, when it
/// cannot be had. The system call, not glibc's `statx`: std links that one
/// weakly, and with LTO ours became weak too, so the static release binary
/// had no statx and called address 0 (`run --rootfs` died of SIGSEGV).
fn mount_id(dirfd: libc::c_int, path: &CStr, flags: libc::c_int) -> Option<u64> {
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    let flags = flags | libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT;
    // SAFETY: a NUL-terminated path and a statx buffer on our stack.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_statx,
            dirfd,
            path.as_ptr(),
            flags,
            libc::STATX_MNT_ID,
            stx.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return None;
    }
    // SAFETY: statx succeeded and filled it (zeroed before).
    let stx = unsafe { stx.assume_init() };
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        // SAFETY: as in same_mount.
        unsafe { *libc::__errno_location() = libc::EOPNOTSUPP };
        return None;
    }
    Some(stx.stx_mnt_id)
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

    /// The protections of each kernel filesystem, below its own handle.
    fn protected_below(plan: &MountPlan, under: &str) -> Vec<usize> {
        plan.steps
            .iter()
            .filter_map(|s| match s {
                Step::Kernel { slot, under: u, .. } if *u == under => Some(*slot),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn proc_is_protected_below_its_own_mount_and_sys_below_the_fresh_sysfs_after_it() {
        let mut plan = MountPlan::default();
        plan.proc(Target::at(c"/proc".to_owned()));
        plan.protect_kernel(true);
        let (proc, sys) = (plan.proc.unwrap(), plan.sys.unwrap());
        assert_ne!(proc, sys);
        let proc_steps = protected_below(&plan, "/proc");
        assert_eq!(proc_steps.len(), PROC_READ_ONLY.len() + PROC_MASKED.len());
        assert!(proc_steps.iter().all(|&slot| slot == proc));
        assert_eq!(protected_below(&plan, "/sys"), [sys; SYS_MASKED.len()]);
        let sysfs = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::Sysfs { .. }))
            .unwrap();
        for (i, step) in plan.steps.iter().enumerate() {
            if let Step::Kernel { under, .. } = step {
                assert_eq!(*under == "/sys", i > sysfs, "{}", plan.describe(i));
            }
        }
        assert!(
            plan.describe(1).contains("/proc/bus"),
            "{}",
            plan.describe(1)
        );
    }

    #[test]
    fn protections_planned_without_a_proc_are_below_a_slot_never_filled() {
        let mut plan = MountPlan::default();
        plan.protect_kernel(true);
        let [slot, ..] = protected_below(&plan, "/proc")[..] else {
            panic!("no protection of /proc");
        };
        assert_eq!(plan.held(slot), -1);
        assert!(plan.steps.iter().all(|s| !matches!(s, Step::Proc { .. })));
    }

    #[test]
    fn every_kernel_path_not_left_out_by_a_configuration_is_on_this_kernel() {
        let tables = [
            ("/proc", &PROC_READ_ONLY[..]),
            ("/proc", &PROC_MASKED[..]),
            ("/sys", &SYS_MASKED[..]),
        ];
        for (under, paths) in tables {
            for path in paths.iter().filter(|p| !p.optional) {
                let path = format!("{under}/{}", path.name.to_str().unwrap());
                assert!(Path::new(&path).exists(), "{path}");
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
    fn the_proc_and_sysfs_made_inside_a_root_are_checked_right_after_the_pivot() {
        let mut plan = MountPlan::default();
        plan.bind_root(Path::new("/r")).unwrap();
        let root = plan.root.unwrap();
        let inside = |name: &str| Target::at(c"/r".to_owned()).held(root, name);
        plan.proc(inside("proc"));
        plan.sysfs(inside("sys"));
        plan.pivot_root(Path::new("/r")).unwrap();
        let pivot = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::PivotRoot(_)))
            .unwrap();
        let checks: Vec<String> = (pivot + 1..plan.len()).map(|i| plan.describe(i)).collect();
        assert_eq!(
            checks,
            [
                "checking that /proc is the proc mounted for the container",
                "checking that /sys is the sysfs mounted for the container",
            ]
        );
        assert!(
            matches!(plan.steps[pivot + 1], Step::Holds { slot, .. } if Some(slot) == plan.proc)
        );
        assert!(
            matches!(plan.steps[pivot + 2], Step::Holds { slot, .. } if Some(slot) == plan.sys)
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
