//! Reading a file of a container's root from the host: its `/etc/passwd`
//! and `/etc/group`, to resolve `run -u NAME` and `exec -u NAME`. That root
//! is an image's, or the container's own writing (`exec` reads it through
//! `/proc/PID/root` while the container runs), so nothing in it is taken
//! on trust: its symbolic links resolve inside it (openat2's
//! `RESOLVE_IN_ROOT`: `/etc/passwd -> /etc/shadow` is the root's shadow,
//! never the host's, and no `..` climbs out), only a regular file is read
//! (a FIFO would hang the read for ever), and at most [`MAX_BYTES`] of it.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

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
    let file = std::fs::File::from(file);
    let kind = file
        .metadata()
        .map_err(|e| failed(e.to_string()))?
        .file_type();
    if !kind.is_file() {
        return Err(failed("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    if bytes.len() > MAX_BYTES {
        return Err(failed(format!("larger than {} MiB", MAX_BYTES >> 20)));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| failed("not valid UTF-8".into()))
}

/// `path` opened for reading with `root` as `/` for every step of its
/// resolution; non-blocking, so that a FIFO there cannot make the open
/// wait (the caller refuses anything but a regular file).
fn open_inside(root: &Path, path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(root)?;
    let relative = path.strip_prefix("/").unwrap_or(path);
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    Ok(nix::fcntl::openat2(&dir, relative, how)?)
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
