//! `--security-opt`, docker's names: which seccomp profile the container
//! gets (`seccomp=unconfined`, `seccomp=FILE`, else docker's default) and
//! whether /proc and /sys are protected (`systempaths=unconfined` turns
//! that off). Checked, and the profile compiled, before anything is
//! created (the compilation in `Security::filter`): a bad value
//! or profile is an error naming it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error_chain::Chain;
use crate::seccomp::{self, Profile, Target};
use caps::Capability;

use crate::spawn::SeccompFilter;
use crate::values::quoted;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    /// docker's default profile.
    Default,
    Unconfined,
    /// A profile in docker's JSON format.
    File(PathBuf, Profile),
}

/// The checked `--security-opt` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub seccomp: Seccomp,
    /// docker's read-only and masked /proc paths and a read-only /sys of
    /// the container's own; off with `systempaths=unconfined`.
    pub system_paths: bool,
}

impl Default for Security {
    fn default() -> Security {
        Security {
            seccomp: Seccomp::Default,
            system_paths: true,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(
        "invalid --security-opt {}: expected seccomp=unconfined, seccomp=FILE, systempaths=unconfined or no-new-privileges",
        quoted(.0)
    )]
    Option(String),
    #[error("invalid --security-opt seccomp={file}: {message}")]
    Profile { file: String, message: String },
}

/// Parses every `--security-opt` value, reading a seccomp profile file.
pub fn parse(options: &[String]) -> Result<Security, Error> {
    let mut security = Security::default();
    for option in options {
        // docker still accepts the old `key:value` spelling.
        let (key, value) = option
            .split_once('=')
            .or_else(|| option.split_once(':'))
            .unwrap_or((option.as_str(), ""));
        match (key, value) {
            ("seccomp", "unconfined") => security.seccomp = Seccomp::Unconfined,
            ("seccomp", "") => return Err(Error::Option(option.clone())),
            ("seccomp", file) => security.seccomp = read_profile(Path::new(file))?,
            ("systempaths", "unconfined") => security.system_paths = false,
            // Always set: the container runs with no_new_privs.
            ("no-new-privileges", "" | "true") => {}
            _ => return Err(Error::Option(option.clone())),
        }
    }
    Ok(security)
}

fn read_profile(file: &Path) -> Result<Seccomp, Error> {
    let bad = |message: String| Error::Profile {
        file: file.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(file).map_err(|e| bad(e.to_string()))?;
    // A FIFO or a device would block or never end.
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let profile = seccomp::parse(&text).map_err(bad)?;
    Ok(Seccomp::File(file.to_path_buf(), profile))
}

/// Compiles `profile` for the container's capabilities and this kernel,
/// through a cache in `cache_dir` when given: libseccomp takes about 10 ms
/// for docker's profile on three ABIs, three times a whole container's
/// start, and the program only changes with the profile, the kernel or
/// libseccomp. The cache is root's (the state directory); a program the
/// kernel would refuse fails the container's setup, never weakens it.
/// Returns the program, and the cache file that holds it when there is one.
fn compile_cached(
    profile: Source<'_>,
    caps: &[Capability],
    cache_dir: Option<&Path>,
) -> Result<(SeccompFilter, Option<PathBuf>), seccomp::Error> {
    let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    let target = Target::here(caps);
    let cached =
        cache_dir.map(|dir| dir.join(format!("{:016x}.bpf", cache_key(&profile, &target))));
    if let Some(path) = cached {
        if let Some(filter) = read_program(&path) {
            return Ok((filter, Some(path)));
        }
        let (filter, bytes) = compile(&profile.profile(), &target)?;
        return Ok(match write_whole(&path, &bytes) {
            Ok(()) => (filter, Some(path)),
            Err(err) => {
                tracing::debug!("caching the seccomp program in {}: {err}", path.display());
                (filter, None)
            }
        });
    }
    Ok((compile(&profile.profile(), &target)?.0, None))
}

/// The profile a program is compiled from.
enum Source<'a> {
    /// docker's default, built into this binary.
    Default,
    /// A profile file's, as parsed.
    File(&'a Profile),
}

impl Source<'_> {
    fn profile(&self) -> Cow<'_, Profile> {
        match self {
            Source::Default => Cow::Owned(seccomp::default_profile()),
            Source::File(profile) => Cow::Borrowed(profile),
        }
    }
}

fn compile(profile: &Profile, target: &Target) -> Result<(SeccompFilter, Vec<u8>), seccomp::Error> {
    let bytes = seccomp::compile(profile, target)?;
    let filter = SeccompFilter::from_bytes(&bytes).map_err(seccomp::Error::Export)?;
    Ok((filter, bytes))
}

/// A compiled program from the cache; None when it is not there or not a
/// program (then the caller compiles it again).
pub fn read_program(path: &Path) -> Option<SeccompFilter> {
    std::fs::read(path)
        .and_then(|b| SeccompFilter::from_bytes(&b))
        .ok()
}

/// Everything the program depends on: the profile, the capabilities and
/// kernel its conditions were checked against, libseccomp's version, and
/// this build, which turns libseccomp's program into the one installed
/// (the range rewrite and its proof, `seccomp::ranges`): a program another
/// build cached, for any profile, is never taken. docker's default
/// profile is part of this binary, so the binary itself (device, inode,
/// size, modification time) stands for it: building and printing the
/// profile to hash it cost 60 us of every run's 80 on a cache hit.
fn cache_key(profile: &Source<'_>, target: &Target) -> u64 {
    key_for(profile, target, this_binary())
}

fn key_for(profile: &Source<'_>, target: &Target, binary: Option<Build>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    let version = libseccomp::ScmpVersion::current().map(|v| (v.major, v.minor, v.micro));
    let source = match (profile, binary) {
        (Source::Default, Some(_)) => "docker's default".to_string(),
        (profile, _) => format!("{:?}", profile.profile()),
    };
    format!(
        "{source} in {binary:?}{:?}{:?}{version:?}",
        target.caps, target.kernel
    )
    .hash(&mut hasher);
    hasher.finish()
}

/// A build of the supervisor: its binary's device, inode, size and
/// modification time.
type Build = (u64, u64, u64, i64, i64);

/// What tells this binary from any other build: device, inode, size,
/// modification time. None when /proc/self/exe cannot say.
fn this_binary() -> Option<Build> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/self/exe").ok()?;
    Some((
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
    ))
}

/// Written under a name of this process's, then renamed: concurrent
/// supervisors never read a partial program.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A seccomp program, and the cache file that holds it when there is one.
pub struct Compiled {
    pub filter: Arc<SeccompFilter>,
    pub cached: Option<PathBuf>,
}

impl Security {
    /// The seccomp program to install, if any, compiled or from the cache
    /// in `cache_dir`.
    /// A profile libseccomp refuses is an error naming its file. The
    /// profile's rules are keyed on the container's capabilities `caps`.
    pub fn filter(
        &self,
        caps: &[Capability],
        cache_dir: Option<&Path>,
    ) -> Result<Option<Arc<SeccompFilter>>, Error> {
        Ok(self.filter_cached(caps, cache_dir)?.map(|c| c.filter))
    }

    /// `filter`, with the cache file that holds the program when there is
    /// one: `exec` reads it from there instead of building the profile
    /// again to find its key.
    pub fn filter_cached(
        &self,
        caps: &[Capability],
        cache_dir: Option<&Path>,
    ) -> Result<Option<Compiled>, Error> {
        let (profile, file) = match &self.seccomp {
            Seccomp::Unconfined => return Ok(None),
            Seccomp::Default => (Source::Default, None),
            Seccomp::File(file, profile) => (Source::File(profile), Some(file)),
        };
        compile_cached(profile, caps, cache_dir)
            .map(|(filter, cached)| {
                Some(Compiled {
                    filter: Arc::new(filter),
                    cached,
                })
            })
            .map_err(|e| Error::Profile {
                file: file.map_or("(docker's default)".into(), |f| f.display().to_string()),
                message: Chain(&e).to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::DEFAULT_CAPABILITIES;

    fn opts(values: &[&str]) -> Result<Security, Error> {
        parse(&values.iter().map(|v| v.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_confine_and_unconfined_turns_each_part_off() {
        assert_eq!(opts(&[]).unwrap(), Security::default());
        let s = opts(&["seccomp=unconfined", "systempaths=unconfined"]).unwrap();
        assert_eq!(s.seccomp, Seccomp::Unconfined);
        assert!(!s.system_paths);
        assert_eq!(
            opts(&["seccomp:unconfined"]).unwrap().seccomp,
            Seccomp::Unconfined
        );
        assert!(opts(&["no-new-privileges"]).is_ok());
    }

    #[test]
    fn unknown_options_are_named() {
        for bad in [
            "apparmor=x",
            "seccomp",
            "seccomp=",
            "systempaths=confined",
            "label:x",
        ] {
            assert_eq!(opts(&[bad]), Err(Error::Option(bad.into())), "{bad}");
        }
    }

    #[test]
    fn a_bad_profile_file_names_the_file_and_the_problem() {
        let dir = crate::scratch::Scratch::new("seccomp");
        let file = dir.join("p.json");
        std::fs::write(&file, r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": []}"#).unwrap();
        let err = opts(&[&format!("seccomp={}", file.display())])
            .unwrap_err()
            .to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains("unknown field `flags`"), "{err}");
        let missing = dir.join("missing.json");
        let err = opts(&[&format!("seccomp={}", missing.display())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing.json") && err.contains("No such file"),
            "{err}"
        );
        let err = opts(&[&format!("seccomp={}", dir.display())])
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("not a regular file"), "{err}");
    }

    #[test]
    fn the_default_compiles_and_unconfined_has_no_filter() {
        assert!(
            Security::default()
                .filter(&DEFAULT_CAPABILITIES, None)
                .unwrap()
                .is_some()
        );
        let unconfined = opts(&["seccomp=unconfined"]).unwrap();
        assert!(
            unconfined
                .filter(&DEFAULT_CAPABILITIES, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_cached_program_is_the_compiled_one_and_a_changed_profile_misses() {
        let dir = crate::scratch::Scratch::new("seccomp-cache");
        let profile = seccomp::default_profile();
        let file = Source::File(&profile);
        let fresh = compile_cached(file, &DEFAULT_CAPABILITIES, Some(&dir)).unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "one program, no temporary left");
        let cached = compile_cached(Source::File(&profile), &DEFAULT_CAPABILITIES, Some(&dir));
        assert_eq!(format!("{fresh:?}"), format!("{:?}", cached.unwrap()));
        let mut other = profile.clone();
        other.rules.pop();
        compile_cached(Source::File(&other), &DEFAULT_CAPABILITIES, Some(&dir)).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }

    #[test]
    fn another_build_compiles_a_profile_files_program_again() {
        let profile = seccomp::default_profile();
        let target = Target::here(vec![]);
        let key = |binary| key_for(&Source::File(&profile), &target, binary);
        let (one, other) = (Some((1, 2, 3, 4, 5)), Some((1, 2, 3, 4, 6)));
        assert_eq!(key(one), key(one));
        assert_ne!(key(one), key(other));
        assert_ne!(key(one), key(None));
    }

    /// Built into the binary, docker's default is cached under the
    /// binary's identity (no profile is built to find the program), and
    /// it is the same program as the profile's compiled from its text.
    #[test]
    fn docker_defaults_program_is_cached_per_binary_and_is_the_profiles() {
        let dir = crate::scratch::Scratch::new("seccomp-default");
        let caps = &DEFAULT_CAPABILITIES;
        let (built_in, at) = compile_cached(Source::Default, caps, Some(&dir)).unwrap();
        let (again, again_at) = compile_cached(Source::Default, caps, Some(&dir)).unwrap();
        assert_eq!(at, again_at);
        assert_eq!(format!("{built_in:?}"), format!("{again:?}"));
        let profile = seccomp::default_profile();
        let (from_text, text_at) =
            compile_cached(Source::File(&profile), caps, Some(&dir)).unwrap();
        assert_ne!(at, text_at, "the binary's key, not the profile's");
        assert_eq!(format!("{built_in:?}"), format!("{from_text:?}"));
    }
}
