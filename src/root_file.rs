//! Reading a file of a container's root from the host: its `/etc/passwd`
//! and `/etc/group`, to resolve `run -u NAME` and `exec -u NAME`. That root
//! is an image's, or the container's own writing (`exec` reads it through
//! `/proc/PID/root` while the container runs), so nothing in it is taken
//! on trust: its symbolic links resolve inside it (openat2's
//! `RESOLVE_IN_ROOT`: `/etc/passwd -> /etc/shadow` is the root's shadow,
//! never the host's, and no `..` climbs out), only a regular file is read
//! (a FIFO would hang the read for ever, a device may act on its open),
//! never opening anything else, and at most [`MAX_BYTES`] of it.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{regular_file, root_path};

/// Far more than any passwd or group file holds.
pub const MAX_BYTES: usize = 4 << 20;

/// A file of the container's that cannot be read, named as the container
/// sees it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the container's {}: {reason}", path.display())]
pub struct Error {
    pub path: PathBuf,
    pub reason: String,
}

/// A user file of the container's that cannot be read, for `--user SPEC`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid --user {}: {file}", crate::values::quoted(.user))]
pub struct UserFilesError {
    pub user: String,
    pub file: Error,
}

/// The container's `/etc/passwd` and `/etc/group` inside `root`, to resolve
/// `--user user` (`run -u`, `exec -u`) by; a missing one reads as empty.
pub fn user_files(root: &Path, user: &str) -> Result<(String, String), UserFilesError> {
    let read = |file: &str| {
        read(root, Path::new(file))
            .map(Option::unwrap_or_default)
            .map_err(|file| UserFilesError {
                user: user.to_string(),
                file,
            })
    };
    Ok((read("/etc/passwd")?, read("/etc/group")?))
}

/// The text of `path` (as the container names it) inside `root`; `None`
/// when there is no such file.
pub fn read(root: &Path, path: &Path) -> Result<Option<String>, Error> {
    let failed = |reason: String| Error {
        path: path.to_path_buf(),
        reason,
    };
    let file = match open_inside(root, path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(failed(err.to_string())),
    };
    let bytes = regular_file::reopen(file)
        .and_then(|file| regular_file::read_at_most(file, MAX_BYTES))
        .map_err(|e| failed(e.to_string()))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| failed("not valid UTF-8".into()))
}

/// `path` located (`O_PATH`: nothing opened yet, see [`regular_file`])
/// with `root` as `/` for every step of its resolution.
fn open_inside(root: &Path, path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(root)?;
    Ok(root_path::locate(std::os::fd::AsFd::as_fd(&dir), path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    #[test]
    fn an_absolute_link_resolves_inside_the_root_never_on_the_host() {
        let host = Scratch::new("root-file-host");
        let root = Scratch::new("root-file-link");
        std::fs::create_dir(root.join("etc")).unwrap();
        let outside = host.join("passwd");
        std::fs::write(&outside, "intruder:x:4242:4242::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/hostname", root.join("etc/group"))
            .unwrap();
        assert_eq!(read(&root, Path::new("/etc/passwd")).unwrap(), None);
        assert_eq!(read(&root, Path::new("/etc/group")).unwrap(), None);
        std::fs::write(root.join("etc/hostname"), "box\n").unwrap();
        assert_eq!(
            read(&root, Path::new("/etc/group")).unwrap().as_deref(),
            Some("box\n")
        );
    }

    #[test]
    fn a_fifo_or_a_device_is_refused_without_being_opened() {
        let root = Scratch::new("root-file-never-opened");
        std::fs::create_dir(root.join("etc")).unwrap();
        let opened = crate::scratch::opens_fifo(&root.join("etc/group"), || {
            assert_eq!(
                read(&root, Path::new("/etc/group"))
                    .unwrap_err()
                    .to_string(),
                "the container's /etc/group: not a regular file"
            );
        });
        assert!(!opened, "the FIFO was opened before it was refused");
        if !crate::scratch::root("a_fifo_or_a_device_is_refused_without_being_opened") {
            return;
        }
        // /dev/null's numbers: harmless should it be opened after all.
        nix::sys::stat::mknod(
            &root.join("etc/passwd"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::S_IRUSR,
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        assert_eq!(
            read(&root, Path::new("/etc/passwd"))
                .unwrap_err()
                .to_string(),
            "the container's /etc/passwd: not a regular file"
        );
    }

    #[test]
    fn a_fifo_or_a_file_too_large_is_an_error_naming_it() {
        let root = Scratch::new("root-file-kinds");
        std::fs::create_dir(root.join("etc")).unwrap();
        nix::unistd::mkfifo(&root.join("etc/group"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            read(&root, Path::new("/etc/group"))
                .unwrap_err()
                .to_string(),
            "the container's /etc/group: not a regular file"
        );
        let big = std::fs::File::create(root.join("etc/passwd")).unwrap();
        big.set_len(MAX_BYTES as u64 + 1).unwrap();
        assert_eq!(
            read(&root, Path::new("/etc/passwd"))
                .unwrap_err()
                .to_string(),
            "the container's /etc/passwd: larger than 4 MiB"
        );
    }
}
