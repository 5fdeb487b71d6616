//! The container's filesystem: its root (a directory of the user's, entered
//! with pivot_root, or the host's own, read-only), volumes, tmpfs mounts and
//! --read-only, checked before anything is created and turned into the
//! mount plan the child applies (spawn::MountPlan) before clone3.
//!
//! Without --rootfs the container sees the host's tree read-only, without
//! devices or setuid, with private writable tmpfs on /tmp, /var/tmp and
//! /run: the supervisor's state directory and the host's runtime sockets
//! live under /run, and root in the container could otherwise rewrite the
//! host's files. `--rw-host` keeps the old, writable view.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::root_path;
use crate::spawn::{MountPlan, Target};
use crate::values::quoted;

/// Where the container's root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The host's own tree; writable only with --rw-host.
    Host { writable: bool },
    /// A directory of the user's (canonical), entered with pivot_root.
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub target: PathBuf,
    /// tmpfs's mount data: mode=1777 and the user's size=, mode=….
    pub data: String,
}

/// The checked filesystem options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub root: Root,
    pub volumes: Vec<Volume>,
    pub tmpfs: Vec<Tmpfs>,
    /// docker's --read-only: the root itself read-only.
    pub read_only: bool,
}

impl Default for Filesystem {
    fn default() -> Filesystem {
        Filesystem {
            root: Root::Host { writable: false },
            volumes: vec![],
            tmpfs: vec![],
            read_only: false,
        }
    }
}

/// The options as given.
#[derive(Debug, Clone, Default)]
pub struct FilesystemOptions {
    pub rootfs: Option<PathBuf>,
    pub rw_host: bool,
    pub volumes: Vec<String>,
    pub tmpfs: Vec<String>,
    pub read_only: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid --rootfs {}: {reason}", .dir.display())]
    Rootfs { dir: PathBuf, reason: String },
    #[error(
        "--rw-host and --rootfs exclude each other: with --rootfs the host's tree is not there"
    )]
    RwHostWithRootfs,
    #[error("--rw-host and --read-only exclude each other")]
    RwHostReadOnly,
    #[error("invalid --volume {}: {reason}", quoted(.spec))]
    Volume { spec: String, reason: String },
    #[error("invalid --tmpfs {}: {reason}", quoted(.spec))]
    Tmpfs { spec: String, reason: String },
}

/// Preparing the container's root failed (making a mount point in it).
#[derive(Debug, thiserror::Error)]
#[error("preparing {}: {reason}", .path.display())]
pub struct PrepareError {
    pub path: PathBuf,
    pub reason: String,
}

/// Writable over the sealed host, as programs expect, and private: the
/// host's own (its sockets, the supervisor's state) are hidden.
const PRIVATE_TMPFS: [(&str, &str); 3] = [
    ("/tmp", "mode=1777"),
    ("/var/tmp", "mode=1777"),
    ("/run", "mode=755"),
];

/// tmpfs options a user may give (docker's, less the mount flags).
const TMPFS_OPTIONS: [&str; 5] = ["size", "mode", "nr_inodes", "uid", "gid"];

impl Filesystem {
    pub fn parse(options: &FilesystemOptions) -> Result<Filesystem, Error> {
        let root = match &options.rootfs {
            Some(_) if options.rw_host => return Err(Error::RwHostWithRootfs),
            Some(dir) => Root::Dir(rootfs(dir)?),
            None if options.rw_host && options.read_only => return Err(Error::RwHostReadOnly),
            None => Root::Host {
                writable: options.rw_host,
            },
        };
        let mut fs = Filesystem {
            root,
            volumes: vec![],
            tmpfs: vec![],
            read_only: options.read_only,
        };
        for spec in &options.volumes {
            let volume = fs.volume(spec).map_err(|reason| Error::Volume {
                spec: spec.clone(),
                reason,
            })?;
            fs.volumes.push(volume);
        }
        for spec in &options.tmpfs {
            let tmpfs = fs.tmpfs(spec).map_err(|reason| Error::Tmpfs {
                spec: spec.clone(),
                reason,
            })?;
            fs.tmpfs.push(tmpfs);
        }
        Ok(fs)
    }

    /// The container's root is the host's.
    pub fn is_host(&self) -> bool {
        matches!(self.root, Root::Host { .. })
    }

    /// The container's root on the host, before it starts (for reading
    /// its files: see root_file).
    pub fn root_dir(&self) -> &Path {
        match &self.root {
            Root::Host { .. } => Path::new("/"),
            Root::Dir(dir) => dir,
        }
    }

    /// HOST:CTR[:ro|rw].
    fn volume(&self, spec: &str) -> Result<Volume, String> {
        let mut parts = spec.split(':');
        let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
            return Err("expected HOST:CTR[:ro|rw]".into());
        };
        let read_only = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(other) => {
                return Err(format!(
                    "unknown option {}: expected ro or rw",
                    quoted(other)
                ));
            }
        };
        if parts.next().is_some() {
            return Err("expected HOST:CTR[:ro|rw]".into());
        }
        if !source.starts_with('/') {
            return Err(format!(
                "{source:?}: HOST must be an absolute path (named volumes are not supported)"
            ));
        }
        let source = fs::canonicalize(source).map_err(|e| format!("{source}: {e}"))?;
        let target = self.container_path(target)?;
        self.check_target(&target, source.is_dir())?;
        Ok(Volume {
            source,
            target,
            read_only,
        })
    }

    /// CTR[:size=…,mode=…].
    fn tmpfs(&self, spec: &str) -> Result<Tmpfs, String> {
        let (target, options) = spec.split_once(':').unwrap_or((spec, ""));
        let target = self.container_path(target)?;
        let mut data = vec!["mode=1777".to_string()];
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let key = option.split_once('=').map_or(option, |(k, _)| k);
            if !TMPFS_OPTIONS.contains(&key) || !option.contains('=') {
                return Err(format!(
                    "unknown option {option:?}: expected {}",
                    TMPFS_OPTIONS.map(|o| format!("{o}=…")).join(", ")
                ));
            }
            let value = option.split_once('=').map_or("", |(_, v)| v);
            if !tmpfs_value_is_valid(key, value) {
                return Err(format!("{}: {}", quoted(option), tmpfs_value_expected(key)));
            }
            data.push(option.to_string());
        }
        self.check_target(&target, true)?;
        Ok(Tmpfs {
            target,
            data: data.join(","),
        })
    }

    /// An absolute, normal path in the container, not its root.
    fn container_path(&self, path: &str) -> Result<PathBuf, String> {
        let p = Path::new(path);
        let normal = p
            .components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)));
        if !p.is_absolute() || !normal || p == Path::new("/") || path.contains('\0') {
            return Err(format!(
                "{path:?}: CTR must be an absolute path without . or .., other than /"
            ));
        }
        // The fresh /proc is mounted after the user's mounts: one there
        // would be hidden without a word (docker refuses them too).
        if p.starts_with("/proc") {
            return Err(format!(
                "{path:?}: the container's /proc is its own, nothing can be mounted in it"
            ));
        }
        Ok(p.to_path_buf())
    }

    /// On the host's tree nothing can be made before the container starts
    /// (it is read-only inside): the mount point must be there already,
    /// unless it is in one of the container's own tmpfs (/tmp…), where the
    /// child makes it.
    fn check_target(&self, target: &Path, dir: bool) -> Result<(), String> {
        match &self.root {
            Root::Dir(root) => return check_in_rootfs(root, target, dir),
            Root::Host { writable: false } if private_tmpfs(target).is_some() => return Ok(()),
            Root::Host { .. } => {}
        }
        match fs::metadata(target) {
            Ok(meta) if meta.is_dir() == dir => Ok(()),
            Ok(_) => Err(format!(
                "{}: not a {} in the host's filesystem",
                target.display(),
                if dir { "directory" } else { "file" }
            )),
            Err(e) => Err(format!(
                "{}: {e} (without --rootfs the container's root is the host's, where it must exist)",
                target.display()
            )),
        }
    }

    /// The mount plan, with `etc` (our file, its container path) bound in
    /// and docker's /proc and /sys protections when `system_paths`. With a
    /// root of our own, the mount points missing in it are made here, and
    /// the working directory. The supervisor's `state_dir` is hidden from a
    /// container on the read-only host wherever it is. `terminal`: the
    /// path of the caller's terminal on stdin, bound on the container's
    /// /dev/console as runc does, and the command's stdio opened through it
    /// (see `MountPlan::terminal`); the host's /dev, under `--rw-host`,
    /// has it already.
    pub fn plan(
        &self,
        system_paths: bool,
        workdir: &Path,
        state_dir: &Path,
        etc: impl Iterator<Item = (PathBuf, PathBuf)>,
        terminal: Option<&Path>,
    ) -> Result<MountPlan, PrepareError> {
        let mut plan = MountPlan::default();
        match &self.root {
            Root::Host { writable: true } => {
                for (source, target) in etc {
                    plan.bind(&source, Target::path(&target).map_err(nul)?)
                        .map_err(nul)?;
                }
                self.host_mounts(&mut plan, system_paths, &[])?;
            }
            Root::Host { writable: false } => {
                plan.seal_host();
                // Cloned before our tmpfs cover the host's /tmp, /var/tmp
                // and /run, where a volume's source may well be.
                let mut slots = vec![];
                for v in &self.volumes {
                    slots.push(plan.clone_volume(&v.source, v.read_only).map_err(nul)?);
                }
                // Before our /dev covers the host's.
                let console = terminal.map(|tty| plan.terminal(tty)).transpose();
                let console = console.map_err(nul)?;
                // Writable, as docker's, over the sealed tree; from under
                // /run, so before /run is covered.
                for (source, target) in etc {
                    let target = Target::path(&target).map_err(nul)?;
                    plan.volume(&source, target, false).map_err(nul)?;
                }
                // Under /run (the default) the tmpfs below hides it too.
                if private_tmpfs(state_dir).is_none() && state_dir.is_dir() {
                    let state_dir = fs::canonicalize(state_dir).map_err(|e| PrepareError {
                        path: state_dir.to_path_buf(),
                        reason: e.to_string(),
                    })?;
                    plan.hide(&state_dir).map_err(nul)?;
                }
                for (dir, mode) in PRIVATE_TMPFS {
                    plan.tmpfs(Target::path(Path::new(dir)).map_err(nul)?, mode)
                        .map_err(nul)?;
                }
                plan.dev(Target::path(Path::new("/dev")).map_err(nul)?, console);
                self.host_mounts(&mut plan, system_paths, &slots)?;
            }
            Root::Dir(root) => {
                let handle = root_path::Root::open(root).map_err(|e| PrepareError {
                    path: root.clone(),
                    reason: e.to_string(),
                })?;
                plan.bind_root(root).map_err(nul)?;
                // While the host's tree is there to clone it from.
                let console = terminal.map(|tty| plan.terminal(tty)).transpose();
                let console = console.map_err(nul)?;
                let [proc, dev, sys] = ["proc", "dev", "sys"]
                    .map(|dir| mount_point_inside(&handle, root, Path::new(dir), true));
                let (proc, dev, sys) = (proc?, dev?, sys?);
                self.user_mounts(&mut plan, Some((root, &handle)), &[])?;
                make_inside(&handle, root, workdir, true)?;
                plan.proc(plan.inside(root, &proc).map_err(nul)?);
                plan.dev(plan.inside(root, &dev).map_err(nul)?, console);
                plan.sysfs(plan.inside(root, &sys).map_err(nul)?);
                for (source, target) in etc {
                    let target = mount_point_inside(&handle, root, &target, false)?;
                    plan.bind(&source, plan.inside(root, &target).map_err(nul)?)
                        .map_err(nul)?;
                }
                plan.pivot_root(root).map_err(nul)?;
                if system_paths {
                    plan.protect_kernel(false);
                }
                if self.read_only {
                    plan.read_only_root();
                }
            }
        }
        Ok(plan)
    }

    /// On the host's tree, after its own: the user's mounts (the volumes
    /// from `slots` when they were cloned early), /proc, and docker's
    /// protections.
    fn host_mounts(
        &self,
        plan: &mut MountPlan,
        system_paths: bool,
        slots: &[usize],
    ) -> Result<(), PrepareError> {
        self.user_mounts(plan, None, slots)?;
        plan.proc(Target::path(Path::new("/proc")).map_err(nul)?);
        if system_paths {
            plan.protect_kernel(true);
        }
        Ok(())
    }

    /// Volumes (moved from `slots` when cloned early), then tmpfs mounts,
    /// on the host's tree or in a root of the container's own (its path
    /// and handle).
    fn user_mounts(
        &self,
        plan: &mut MountPlan,
        root: Option<(&Path, &root_path::Root)>,
        slots: &[usize],
    ) -> Result<(), PrepareError> {
        let mut inside = |target: &Path, dir: bool| match root {
            Some((root, handle)) => {
                Ok(Made::Inside(mount_point_inside(handle, root, target, dir)?))
            }
            None => {
                if let (Root::Host { writable: false }, Some(tmpfs)) =
                    (&self.root, private_tmpfs(target))
                {
                    plan.mount_point(tmpfs, target, dir).map_err(nul)?;
                }
                Ok(Made::Host(target.to_path_buf()))
            }
        };
        let mut targets = vec![];
        for v in &self.volumes {
            targets.push(inside(&v.target, v.source.is_dir())?);
        }
        for t in &self.tmpfs {
            targets.push(inside(&t.target, true)?);
        }
        // Each target once the mounts planned before it are: one below
        // another's is not checked to be what was made (see `inside`).
        let target = |plan: &MountPlan, made: &Made| match (made, root) {
            (Made::Inside(found), Some((root, _))) => plan.inside(root, found),
            (Made::Host(path), _) | (Made::Inside(root_path::Found { path, .. }), None) => {
                Target::path(path)
            }
        };
        let (volumes, tmpfs) = targets.split_at(self.volumes.len());
        for (i, (v, made)) in self.volumes.iter().zip(volumes).enumerate() {
            match slots.get(i) {
                Some(&slot) => plan.move_volume(slot, &v.source, &v.target),
                None => {
                    let target = target(plan, made).map_err(nul)?;
                    plan.volume(&v.source, target, v.read_only)
                }
            }
            .map_err(nul)?;
        }
        for (t, made) in self.tmpfs.iter().zip(tmpfs) {
            let target = target(plan, made).map_err(nul)?;
            plan.tmpfs(target, &t.data).map_err(nul)?;
        }
        Ok(())
    }
}

/// Checked here, as the kernel would only refuse them in the child, after
/// the container's network and record were made.
fn tmpfs_value_is_valid(key: &str, value: &str) -> bool {
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    // The kernel's memparse wraps past 64 bits without a word: 16384p
    // would be size=0, no limit at all.
    let sized = |v: &str, suffixes: &str| {
        let number = v.trim_end_matches(|c: char| suffixes.contains(c.to_ascii_lowercase()));
        let shift = match v[number.len()..].to_ascii_lowercase().as_str() {
            "k" => 10,
            "m" => 20,
            "g" => 30,
            "t" => 40,
            "p" => 50,
            "e" => 60,
            _ => 0,
        };
        let fits = number
            .parse::<u64>()
            .is_ok_and(|n| n.checked_mul(1 << shift).is_some());
        digits(number) && v.len() - number.len() <= 1 && fits
    };
    match key {
        "size" => sized(value, "kmgtpe%"),
        "nr_inodes" => sized(value, "kmgtpe"),
        "mode" => u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777) && digits(value),
        _ => digits(value) && value.parse::<u32>().is_ok_and(|id| id != u32::MAX),
    }
}

fn tmpfs_value_expected(key: &str) -> &'static str {
    match key {
        "size" => "expected a number of bytes, with k, m or g, or a percentage of memory",
        "nr_inodes" => "expected a number, with k, m or g",
        "mode" => "expected an octal mode, like 1777",
        _ => "expected a numeric id",
    }
}

/// In a rootfs the mount point is made when missing, but one that is there
/// must be of the source's kind: the kernel would refuse the bind only in
/// the child, after the container's network and record were made.
fn check_in_rootfs(root: &Path, target: &Path, dir: bool) -> Result<(), String> {
    let kind = |dir| if dir { "directory" } else { "file" };
    let named = |e: std::io::Error| format!("{}: {e}", target.display());
    let root = root_path::Root::open(root).map_err(named)?;
    if root.resolves_to_root(target).map_err(named)? {
        return Err(format!("{}: {LINK_TO_ROOT}", target.display()));
    }
    let there = root.stat(target).map_err(named)?;
    match there {
        Some(stat) if is_dir(&stat) != dir => Err(format!(
            "{} is a {} in the rootfs, and the source a {}",
            target.display(),
            kind(is_dir(&stat)),
            kind(dir)
        )),
        _ => Ok(()),
    }
}

/// A path the mount plan cannot take, named.
fn nul(path: String) -> PrepareError {
    PrepareError {
        path: path.into(),
        reason: "contains a NUL byte".into(),
    }
}

/// A mount point: on the host's tree, or made (or found) in a root of the
/// container's own.
enum Made {
    Host(PathBuf),
    Inside(root_path::Found),
}

fn is_dir(stat: &nix::sys::stat::FileStat) -> bool {
    stat.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// The private tmpfs over the sealed host that holds `path`, if any.
fn private_tmpfs(path: &Path) -> Option<&'static Path> {
    PRIVATE_TMPFS
        .iter()
        .map(|(dir, _)| Path::new(dir))
        .find(|dir| path.starts_with(dir) && path != *dir)
}

/// The canonical root directory, or why it cannot be one.
fn rootfs(dir: &Path) -> Result<PathBuf, Error> {
    let bad = |reason: String| Error::Rootfs {
        dir: dir.to_path_buf(),
        reason,
    };
    let canonical = fs::canonicalize(dir).map_err(|e| bad(e.to_string()))?;
    if !canonical.is_dir() {
        return Err(bad("not a directory".into()));
    }
    if canonical == Path::new("/") {
        return Err(bad("the host's own root (leave --rootfs out)".into()));
    }
    fs::read_dir(&canonical).map_err(|e| bad(e.to_string()))?;
    Ok(canonical)
}

/// A mount point that resolves to the root: a mount there would cover the
/// whole tree the container is about to enter, which the child then failed
/// on with a bare ENOENT.
const LINK_TO_ROOT: &str = "a link in the rootfs to its root, where nothing can be mounted";

/// [`make_inside`] for a mount point: refused when it is the root itself
/// (see [`LINK_TO_ROOT`]; an image's `/etc/hosts -> /`, say).
fn mount_point_inside(
    handle: &root_path::Root,
    root: &Path,
    path: &Path,
    dir: bool,
) -> Result<root_path::Found, PrepareError> {
    let found = make_inside(handle, root, path, dir)?;
    if found.is_root() {
        return Err(inside_error(root, path, LINK_TO_ROOT.into()));
    }
    Ok(found)
}

/// PATH inside the container's root (ROOT, held as HANDLE) made when
/// missing, through handles (see `root_path`): the supervisor never creates
/// anything on the host, where a symlink of the rootfs points or one
/// swapped in while it works.
fn make_inside(
    handle: &root_path::Root,
    root: &Path,
    path: &Path,
    dir: bool,
) -> Result<root_path::Found, PrepareError> {
    handle
        .make(path, dir)
        .map_err(|e| inside_error(root, path, e.to_string()))
}

/// Preparing `path` (as the container names it) in `root` failed.
fn inside_error(root: &Path, path: &Path, reason: String) -> PrepareError {
    PrepareError {
        path: root.join(path.strip_prefix("/").unwrap_or(path)),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(f: impl FnOnce(&mut FilesystemOptions)) -> Result<Filesystem, Error> {
        let mut o = FilesystemOptions::default();
        f(&mut o);
        Filesystem::parse(&o)
    }

    #[test]
    fn the_host_is_read_only_by_default_and_rw_host_opts_out() {
        assert_eq!(parse(|_| {}).unwrap().root, Root::Host { writable: false });
        assert_eq!(
            parse(|o| o.rw_host = true).unwrap().root,
            Root::Host { writable: true }
        );
        assert_eq!(
            parse(|o| {
                o.rw_host = true;
                o.read_only = true
            }),
            Err(Error::RwHostReadOnly)
        );
    }

    #[test]
    fn a_missing_or_unusable_rootfs_is_named() {
        let err = parse(|o| o.rootfs = Some("/surely/not/here".into())).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid --rootfs /surely/not/here: "),
            "{err}"
        );
        let err = parse(|o| o.rootfs = Some("/etc/hostname".into())).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn volumes_need_an_existing_absolute_host_path_and_ro_or_rw() {
        let v = parse(|o| o.volumes = vec!["/etc:/tmp:ro".into()]).unwrap();
        assert_eq!(
            v.volumes,
            [Volume {
                source: "/etc".into(),
                target: "/tmp".into(),
                read_only: true
            }]
        );
        for (bad, says) in [
            ("/surely/not/here:/tmp", "/surely/not/here: No such file"),
            ("data:/tmp", "named volumes are not supported"),
            ("/etc:tmp", "CTR must be an absolute path"),
            ("/etc:/tmp/../x", "CTR must be an absolute path"),
            ("/etc:/tmp:rx", "unknown option \"rx\""),
            ("/etc", "expected HOST:CTR"),
            ("/etc:/surely/not/here", "where it must exist"),
        ] {
            let err = parse(|o| o.volumes = vec![bad.into()])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("invalid --volume {bad:?}: ")) && err.contains(says),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_volume_whose_kind_differs_from_its_mount_point_in_the_rootfs_is_refused_before_anything() {
        let scratch = crate::scratch::Scratch::new("fs-kind");
        let root = scratch.to_path_buf();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hosts"), "").unwrap();
        std::os::unix::fs::symlink("etc/hosts", root.join("hosts")).unwrap();
        let with = |volume: &str| {
            parse(|o| {
                o.rootfs = Some(root.clone());
                o.volumes = vec![volume.into()];
            })
            .map(drop)
            .map_err(|e| e.to_string())
        };
        for (bad, says) in [
            (
                "/tmp:/etc/hosts",
                "/etc/hosts is a file in the rootfs, and the source a directory",
            ),
            (
                "/tmp:/hosts",
                "/hosts is a file in the rootfs, and the source a directory",
            ),
            (
                "/etc/hostname:/etc",
                "/etc is a directory in the rootfs, and the source a file",
            ),
            (
                "/tmp:/etc/hosts/x",
                "/etc/hosts/x: Not a directory (os error 20)",
            ),
        ] {
            let err = with(bad).unwrap_err();
            assert_eq!(err, format!("invalid --volume {bad:?}: {says}"));
        }
        // Missing mount points are made later, of the source's kind.
        assert_eq!(with("/tmp:/data"), Ok(()));
        assert_eq!(with("/etc/hostname:/etc/other"), Ok(()));
    }

    #[test]
    fn tmpfs_takes_a_size_and_refuses_unknown_options() {
        let t = parse(|o| o.tmpfs = vec!["/tmp:size=1m".into()]).unwrap();
        assert_eq!(t.tmpfs[0].data, "mode=1777,size=1m");
        let err = parse(|o| o.tmpfs = vec!["/tmp:exec".into()]).unwrap_err();
        assert!(err.to_string().contains("unknown option \"exec\""), "{err}");
    }

    #[test]
    fn tmpfs_option_values_the_kernel_would_refuse_are_refused_before_anything_is_made() {
        let ok =
            parse(|o| o.tmpfs = vec!["/tmp:size=64M,nr_inodes=1k,mode=0700,uid=1000,gid=0".into()]);
        assert!(ok.is_ok(), "{ok:?}");
        assert!(parse(|o| o.tmpfs = vec!["/tmp:size=50%".into()]).is_ok());
        for (bad, says) in [
            ("/tmp:uid=abc", "\"uid=abc\": expected a numeric id"),
            ("/tmp:gid=-1", "expected a numeric id"),
            ("/tmp:uid=4294967295", "expected a numeric id"),
            ("/tmp:mode=0999", "expected an octal mode"),
            ("/tmp:mode=17777", "expected an octal mode"),
            ("/tmp:size=", "expected a number of bytes"),
            ("/tmp:size=1kk", "expected a number of bytes"),
            ("/tmp:nr_inodes=x", "expected a number"),
        ] {
            let err = parse(|o| o.tmpfs = vec![bad.into()])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("invalid --tmpfs {bad:?}: ")) && err.contains(says),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_tmpfs_size_past_64_bits_is_refused_as_the_kernel_would_wrap_it_to_another() {
        assert!(parse(|o| o.tmpfs = vec!["/tmp:size=15e".into()]).is_ok());
        for bad in [
            "/tmp:size=99999999999999999999",
            "/tmp:size=17179869184g",
            "/tmp:size=16e",
            "/tmp:nr_inodes=16384p",
        ] {
            let err = parse(|o| o.tmpfs = vec![bad.into()])
                .unwrap_err()
                .to_string();
            assert!(err.contains("expected a number"), "{bad}: {err}");
        }
    }

    #[test]
    fn nothing_is_mounted_in_the_containers_own_proc_where_it_would_be_hidden() {
        for (bad, flag) in [("/etc:/proc", "volume"), ("/etc:/proc/sys", "volume")] {
            let err = parse(|o| o.volumes = vec![bad.into()]).unwrap_err();
            assert!(
                err.to_string().contains("/proc is its own"),
                "{flag} {bad}: {err}"
            );
        }
        let err = parse(|o| o.tmpfs = vec!["/proc".into()]).unwrap_err();
        assert!(err.to_string().contains("/proc is its own"), "{err}");
        let rootfs = parse(|o| {
            o.rootfs = Some(std::env::temp_dir());
            o.tmpfs = vec!["/proc/x".into()];
        });
        assert!(rootfs.is_err(), "{rootfs:?}");
        assert!(parse(|o| o.tmpfs = vec!["/tmp/proc".into()]).is_ok());
    }

    fn steps(plan: &MountPlan) -> Vec<String> {
        (0..plan.len()).map(|i| plan.describe(i)).collect()
    }

    fn position(steps: &[String], prefix: &str) -> usize {
        steps
            .iter()
            .position(|s| s.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {steps:#?}"))
    }

    #[test]
    fn a_rootfs_is_filled_from_the_host_before_pivot_root_and_sealed_after() {
        let scratch = crate::scratch::Scratch::new("fs-plan");
        let root = scratch.to_path_buf();
        let mut fs = parse(|o| {
            o.rootfs = Some(root.clone());
            o.volumes = vec!["/etc:/data:ro".into()];
            o.read_only = true;
        })
        .unwrap();
        fs.tmpfs.clear();
        let etc = [(PathBuf::from("/run/x/hosts"), PathBuf::from("/etc/hosts"))];
        let plan = fs
            .plan(
                true,
                Path::new("/work"),
                Path::new("/run/sv"),
                etc.into_iter(),
                None,
            )
            .unwrap();
        let s = steps(&plan);
        let pivot = position(&s, "pivoting the root");
        assert_eq!(position(&s, "binding"), 0, "{s:#?}");
        for before in [
            "mounting the volume /etc",
            "mounting proc",
            "mounting a tmpfs",
            "mounting a read-only",
            "binding /run/x/hosts",
        ] {
            assert!(position(&s, before) < pivot, "{before}: {s:#?}");
        }
        assert!(position(&s, "making /proc/sys read-only") > pivot, "{s:#?}");
        assert_eq!(s.last().unwrap(), "making the root read-only");
        assert!(root.join("work").is_dir() && root.join("etc/hosts").is_file());
    }

    #[test]
    fn the_host_is_sealed_first_and_its_run_covered_after_our_files_are_bound() {
        let etc = [(PathBuf::from("/run/x/hosts"), PathBuf::from("/etc/hosts"))];
        let plan = Filesystem::default()
            .plan(
                true,
                Path::new("/"),
                Path::new("/run/sv"),
                etc.clone().into_iter(),
                None,
            )
            .unwrap();
        let s = steps(&plan);
        assert_eq!(s[0], "making the host's filesystem read-only");
        assert!(
            position(&s, "mounting the volume /run/x/hosts")
                < position(&s, "mounting a tmpfs on /run"),
            "{s:#?}"
        );
        let rw = parse(|o| o.rw_host = true).unwrap();
        let s = steps(
            &rw.plan(
                true,
                Path::new("/"),
                Path::new("/run/sv"),
                etc.into_iter(),
                None,
            )
            .unwrap(),
        );
        assert!(
            !s.iter()
                .any(|s| s.contains("read-only") && s.contains("host"))
        );
        assert!(!s.iter().any(|s| s.starts_with("mounting a tmpfs on /run")));
    }

    /// ROOT/PATH as made, through a handle of ROOT.
    fn made_inside(root: &Path, path: &Path, dir: bool) -> Result<PathBuf, PrepareError> {
        let handle = root_path::Root::open(root).unwrap();
        make_inside(&handle, root, path, dir).map(|found| root.join(found.path))
    }

    #[test]
    fn mount_points_are_made_inside_the_root_following_symlinks_there_never_out() {
        let scratch = crate::scratch::Scratch::new("fs");
        let root = fs::canonicalize(scratch.path()).unwrap();
        let made = made_inside(&root, Path::new("/etc/hosts"), false).unwrap();
        assert_eq!(made, root.join("etc/hosts"));
        assert!(made.is_file());
        let again = made_inside(&root, Path::new("/etc/hosts"), false).unwrap();
        assert_eq!(again, made);
        // Symlinks resolve inside the root, absolute or relative, and
        // `..` stops at it: nothing is made on the host.
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        let made = made_inside(&root, Path::new("/out/sv-nope"), true).unwrap();
        assert_eq!(made, root.join("etc/sv-nope"));
        std::os::unix::fs::symlink("../../../../tmp", root.join("up")).unwrap();
        let made = made_inside(&root, Path::new("/up/sv-nope"), true).unwrap();
        assert_eq!(made, root.join("tmp/sv-nope"));
        assert!(!Path::new("/etc/sv-nope").exists() && !Path::new("/tmp/sv-nope").exists());
        // A dangling relative symlink gets its target made.
        std::os::unix::fs::symlink(
            "../run/systemd/resolve/stub-resolv.conf",
            root.join("etc/resolv.conf"),
        )
        .unwrap();
        let made = made_inside(&root, Path::new("/etc/resolv.conf"), false).unwrap();
        assert_eq!(made, root.join("run/systemd/resolve/stub-resolv.conf"));
        assert!(made.is_file());
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let err = made_inside(&root, Path::new("/loop/x"), true).unwrap_err();
        assert!(err.to_string().contains("symbolic links"), "{err}");
    }

    #[test]
    fn a_missing_directory_then_up_is_no_path_and_nothing_is_made() {
        let host = crate::scratch::Scratch::new("fs-up-host");
        fs::write(host.join("hosts"), "precious\n").unwrap();
        let scratch = crate::scratch::Scratch::new("fs-up");
        let root = fs::canonicalize(scratch.path()).unwrap();
        std::os::unix::fs::symlink(host.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink("gone/../out", root.join("etc")).unwrap();
        for (path, dir) in [("/etc/hosts", false), ("/etc/made", true)] {
            let err = made_inside(&root, Path::new(path), dir).unwrap_err();
            assert_eq!(err.path, root.join(&path[1..]));
            assert!(err.reason.contains("No such file"), "{err}");
        }
        let err = made_inside(&root, Path::new("/gone/../x"), true).unwrap_err();
        assert!(err.reason.contains("No such file"), "{err}");
        assert_eq!(
            fs::read_to_string(host.join("hosts")).unwrap(),
            "precious\n"
        );
        assert!(!host.join("made").exists() && !root.join("x").exists());
    }
}
