//! Named network namespaces for the CNI bench, made as engines make them
//! (and as `ip netns add` does): a thread unshares a new netns and its
//! /proc/thread-self/ns/net is bind-mounted on /run/netns/NAME, which is
//! the `CNI_NETNS` path plugins get. In the bench's private /run, so they
//! go with the bench.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

const DIR: &str = "/run/netns";

/// A named netns, unmounted and removed on drop (the kernel frees it once
/// nothing else holds it).
#[derive(Debug)]
pub struct NamedNetns {
    path: PathBuf,
}

impl NamedNetns {
    pub fn new(name: &str) -> io::Result<NamedNetns> {
        std::fs::create_dir_all(DIR)?;
        let path = Path::new(DIR).join(name);
        File::create(&path)?;
        let target = path.clone();
        let bound = std::thread::spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        })
        .join()
        .map_err(|_| io::Error::other("the netns thread panicked"))?;
        if let Err(e) = bound {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(NamedNetns { path })
    }

    pub fn path(&self) -> &str {
        self.path.to_str().unwrap_or_default()
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}
