//! What a detached container leaves when it ends: a small record in
//! `STATE_DIR/exited/NAME.json`, so `ps -a`, `inspect` and `rm` know it as
//! docker's users expect. It holds nothing in the kernel (its network went
//! at teardown), so removing it is removing a file: `rm`, `gc`, or the next
//! run of its name.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::{self, FileError};
use super::{Error, Record, SUFFIX, valid_name};

/// An exited container, as its supervisor wrote it at teardown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    pub name: String,
    pub id: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When its supervisor started, in seconds since the Unix epoch.
    pub started_at: u64,
    /// When its command's end was seen, in seconds since the Unix epoch.
    pub finished_at: u64,
    pub exit_code: u8,
}

impl Exited {
    /// What `record`'s container leaves, ended now with `exit_code`.
    pub fn of(record: &Record, exit_code: u8) -> Exited {
        Exited {
            name: record.name.clone(),
            id: record.id.clone(),
            command: record.command.clone(),
            labels: record.labels.clone(),
            started_at: record.started_at,
            finished_at: super::record::unix_now(),
            exit_code,
        }
    }

    /// Seconds since it ended.
    pub fn since(&self) -> u64 {
        super::record::unix_now().saturating_sub(self.finished_at)
    }
}

/// The exited records' directory.
#[derive(Debug, Clone)]
pub struct ExitedDir {
    dir: PathBuf,
}

impl ExitedDir {
    pub fn new(state_dir: &Path) -> ExitedDir {
        ExitedDir {
            dir: state_dir.join("exited"),
        }
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    /// Writes `exited`, whole. The caller holds the records' lock.
    pub fn write(&self, exited: &Exited) -> Result<(), Error> {
        if !valid_name(&exited.name) {
            return Err(Error::BadName(exited.name.clone()));
        }
        let name = format!("{}{SUFFIX}", exited.name);
        let json = serde_json::to_vec_pretty(exited).map_err(|source| Error::Encode {
            path: self.dir.join(&name),
            source,
        })?;
        // Made only when missing: most teardowns find it there.
        match file::write_atomic(&self.dir, &name, &json) {
            Err(err) if err.source.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir).map_err(FileError::at(&self.dir))?;
                file::write_atomic(&self.dir, &name, &json)?;
            }
            other => {
                other?;
            }
        }
        Ok(())
    }

    /// The exited record of `name`; None when there is none or it cannot
    /// be read (logged).
    pub fn get(&self, name: &str) -> Option<Exited> {
        if !valid_name(name) {
            return None;
        }
        let path = self.path_of(name);
        match file::read_regular(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(exited) => Some(exited),
                Err(err) => {
                    tracing::warn!("exited record {} cannot be read: {err}", path.display());
                    None
                }
            },
            Err(_) => None,
        }
    }

    /// Every readable exited record, in name order; unreadable files are
    /// logged and left out.
    pub fn all(&self) -> Result<Vec<Exited>, Error> {
        let mut all = Vec::new();
        for name in file::names(&self.dir)? {
            if let Some(stem) = name.strip_suffix(SUFFIX).filter(|_| !name.starts_with('.')) {
                all.extend(self.get(stem));
            }
        }
        Ok(all)
    }

    /// The exited records whose ids start with `prefix`, in name order
    /// (`Store::find_any` weighs them with the live ones).
    pub fn prefixed(&self, prefix: &str) -> Result<Vec<Exited>, Error> {
        let mut all = self.all()?;
        all.retain(|e| e.id.starts_with(prefix));
        Ok(all)
    }

    /// Removes `name`'s exited record; true when there was one. The caller
    /// holds the records' lock.
    pub fn remove(&self, name: &str) -> Result<bool, Error> {
        if !valid_name(name) {
            return Ok(false);
        }
        Ok(file::remove(&self.path_of(name))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Process;

    fn record(name: &str, id: &str) -> Record {
        let mut record = Record::new(
            name,
            id,
            Process {
                pid: 42,
                start_time: 1,
            },
            vec!["sh".into(), "-c".into(), "exit 3".into()],
        );
        record.labels = [("tier".to_string(), "front".to_string())].into();
        record
    }

    #[test]
    fn an_exited_record_is_found_by_name_or_id_prefix_and_removed() {
        let state = crate::scratch::unique_path("exited-find");
        let dir = ExitedDir::new(&state);
        assert!(dir.all().unwrap().is_empty(), "no directory yet: none");
        let web = Exited::of(&record("web", "0123456789ab"), 3);
        dir.write(&web).unwrap();
        dir.write(&Exited::of(&record("db", "0129999999ab"), 0))
            .unwrap();
        assert_eq!(dir.get("web"), Some(web.clone()));
        assert_eq!(web.exit_code, 3);
        assert_eq!(web.labels["tier"], "front");
        let ids = |prefix| -> Vec<String> {
            dir.prefixed(prefix)
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect()
        };
        assert_eq!(ids("01234"), ["0123456789ab"]);
        assert_eq!(ids("012"), ["0129999999ab", "0123456789ab"]);
        assert!(ids("nothing").is_empty());
        let names: Vec<String> = dir.all().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["db", "web"]);
        assert!(dir.remove("web").unwrap());
        assert!(!dir.remove("web").unwrap());
        assert_eq!(dir.get("web"), None);
        let _ = std::fs::remove_dir_all(&state);
    }
}
