//! Which cgroup's processes reach `[::1]:PORT` through the kernel rather
//! than the relay (`--loopback6-cgroup`, see `proxy::connect6`).

use std::path::PathBuf;
use std::str::FromStr;

/// Where the `[::1]` connect hook is attached.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Loopback6Cgroup {
    /// The cgroup2 hierarchy's root (found in /proc/self/mountinfo when
    /// the hook is attached): every process of the machine.
    #[default]
    Root,
    /// A cgroup2 directory: its processes and those of the cgroups below.
    At(PathBuf),
    /// No hook: `[::1]` is relayed for everyone.
    None,
}

impl FromStr for Loopback6Cgroup {
    type Err = String;

    fn from_str(text: &str) -> Result<Loopback6Cgroup, String> {
        match text {
            "none" => Ok(Loopback6Cgroup::None),
            path if path.starts_with('/') => Ok(Loopback6Cgroup::At(PathBuf::from(path))),
            _ => Err("expected an absolute path to a cgroup2 directory, or none".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_turns_the_hook_off_and_a_path_must_be_absolute() {
        assert_eq!("none".parse(), Ok(Loopback6Cgroup::None));
        assert_eq!(
            "/sys/fs/cgroup/x".parse(),
            Ok(Loopback6Cgroup::At(PathBuf::from("/sys/fs/cgroup/x")))
        );
        assert!("sys/fs/cgroup".parse::<Loopback6Cgroup>().is_err());
        assert!("".parse::<Loopback6Cgroup>().is_err());
    }
}
