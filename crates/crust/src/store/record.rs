//! Atomic, versioned JSON records on disk.
//!
//! A record is written to a temp file in the same directory, fsynced, renamed over the target, and
//! the directory fsynced, so a crash leaves either the old or the new record. Every record carries a
//! `version`; a record that fails to parse or comes from a newer crust is reported, never deleted.

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Problems reading or writing a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt record: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: record version {found} is newer than this crust understands ({supported})")]
    FutureVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("cannot encode record for {path}: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    version: u32,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Writes `bytes` to `path` atomically (temp + fsync + rename + dir fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, tmp) = write_temp(path, bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Writes `bytes` to `.<name>.tmp` beside `path`; the open file and its path.
fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<(File, PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    Ok((file, tmp))
}

/// A new record renamed into place but not yet durable (see [`write_new_unsynced`]).
#[derive(Debug)]
pub struct Unsynced {
    file: File,
    path: PathBuf,
}

impl Unsynced {
    /// Makes the record durable: the file, then its directory.
    pub fn sync(self) -> Result<(), RecordError> {
        let io = |source| RecordError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.sync_all().map_err(io)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

/// Writes the first record at `path` (temp + rename) and returns before it is durable: it is in
/// place for a crustd restarted after a crash (the page cache outlives the process), and
/// [`Unsynced::sync`] makes it survive a power loss. Until then only side effects that a reboot
/// undoes (mounts, namespaces, processes on tmpfs state) may depend on it; a power loss in between
/// can leave an empty or missing record, reported as unreadable.
pub fn write_new_unsynced(path: &Path, bytes: &[u8]) -> Result<Unsynced, RecordError> {
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, tmp) = write_temp(path, bytes).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    Ok(Unsynced {
        file,
        path: path.to_path_buf(),
    })
}

/// Removes the temp files [`write_atomic`] leaves in `dir` when the process dies between
/// creating one and its rename (`.<name>.tmp`); returns how many went. Call before the files in
/// `dir` are written again (at start, before recovery).
pub fn sweep_temp(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(".tmp")
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .inspect(|e| tracing::info!(path = %e.path().display(), "removed a temp file a crash left"))
        .count()
}

/// Removes a record directory (a container's or a sandbox's) as one step: it is renamed to
/// `.<name>.removing` first (atomic), then deleted. A crash part-way through the deletion leaves
/// only the renamed directory, which [`sweep_removing`] deletes at the next start, never a
/// directory under the object's id whose record is gone but other files are not (recovery would
/// list that as an UNKNOWN object nothing removes).
pub fn remove_record_dir(dir: &Path) -> std::io::Result<()> {
    let Some(name) = dir.file_name() else {
        return Err(std::io::Error::other("a record directory has a name"));
    };
    let trash = dir.with_file_name(format!(".{}.removing", name.to_string_lossy()));
    match fs::rename(dir, &trash) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    match fs::remove_dir_all(&trash) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// True for the name [`remove_record_dir`] gives a directory it is deleting.
pub fn is_removing(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".removing")
}

/// Deletes the directories a crash left in the middle of [`remove_record_dir`] under `root`;
/// returns how many went. Call at start, before the records in `root` are loaded.
pub fn sweep_removing(root: &Path) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| is_removing(&e.file_name().to_string_lossy()))
        .filter(|e| match fs::remove_dir_all(e.path()) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot finish a removal a crash cut");
                false
            }
        })
        .inspect(|e| tracing::info!(path = %e.path().display(), "finished a removal a crash cut"))
        .count()
}

/// A record directory a create left before its first record landed (killed between `mkdir` and
/// the rename): no record and nothing else in it (call after [`sweep_temp`]). Such an object
/// was never acknowledged and holds nothing, so the directory goes and the object never was;
/// returns true then. A directory with anything in it is left for the caller to report.
pub fn remove_unborn(dir: &Path, record: &Path) -> bool {
    if record.exists() || fs::read_dir(dir).map_or(true, |mut it| it.next().is_some()) {
        return false;
    }
    let removed = fs::remove_dir(dir).is_ok();
    if removed {
        tracing::info!(dir = %dir.display(), "removed the empty directory of a create cut before its record was written");
    }
    removed
}

/// Serialises `body` with a `version` field and writes it atomically.
pub fn write_record<T: Serialize>(path: &Path, version: u32, body: &T) -> Result<(), RecordError> {
    let bytes = serde_json::to_vec_pretty(&EnvelopeRef { version, body }).map_err(|source| {
        RecordError::Encode {
            path: path.to_path_buf(),
            source,
        }
    })?;
    write_atomic(path, &bytes)
}

/// [`write_record`] of a first record, returning before it is durable ([`write_new_unsynced`]).
pub fn write_record_unsynced<T: Serialize>(
    path: &Path,
    version: u32,
    body: &T,
) -> Result<Unsynced, RecordError> {
    let bytes = serde_json::to_vec_pretty(&EnvelopeRef { version, body }).map_err(|source| {
        RecordError::Encode {
            path: path.to_path_buf(),
            source,
        }
    })?;
    write_new_unsynced(path, &bytes)
}

/// Reads a record written by [`write_record`], refusing versions above `supported`.
pub fn load_record<T: DeserializeOwned>(path: &Path, supported: u32) -> Result<T, RecordError> {
    let bytes = fs::read(path).map_err(|source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |source| RecordError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let VersionOnly { version } = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if version > supported {
        return Err(RecordError::FutureVersion {
            path: path.to_path_buf(),
            found: version,
            supported,
        });
    }
    serde_json::from_slice(&bytes).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Body {
        name: String,
    }

    #[test]
    fn a_removal_is_one_rename_and_a_cut_one_is_swept() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("abc");
        fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        write_record(&dir.join("r.json"), 1, &Body { name: "x".into() }).unwrap();
        remove_record_dir(&dir).unwrap();
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
        remove_record_dir(&dir).unwrap(); // gone already: fine
                                          // A crash after the rename: the half-deleted directory has the trash name only.
        let cut = root.path().join(".def.removing");
        fs::create_dir_all(cut.join("rootfs")).unwrap();
        fs::create_dir_all(root.path().join("kept")).unwrap();
        assert_eq!(sweep_removing(root.path()), 1);
        let left: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["kept"]);
        assert!(is_removing(".x.removing") && !is_removing("x.removing") && !is_removing(".x"));
    }

    #[test]
    fn only_empty_record_dirs_without_a_record_are_unborn() {
        let dir = tempfile::tempdir().unwrap();
        let (empty, full, other) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        for d in [&empty, &full, &other] {
            fs::create_dir(d).unwrap();
        }
        write_record(&full.join("r.json"), 1, &Body { name: "x".into() }).unwrap();
        fs::write(other.join("rootfs"), b"").unwrap();
        assert!(remove_unborn(&empty, &empty.join("r.json")));
        assert!(!empty.exists());
        assert!(
            !remove_unborn(&full, &full.join("r.json")),
            "has its record"
        );
        assert!(
            !remove_unborn(&other, &other.join("r.json")),
            "holds something: report it"
        );
        assert!(other.exists() && full.exists());
    }

    #[test]
    fn an_unsynced_first_record_is_in_place_before_its_sync() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        let body = Body {
            name: "first".into(),
        };
        let pending = write_record_unsynced(&p, 1, &body).unwrap();
        assert_eq!(
            load_record::<Body>(&p, 1).unwrap(),
            body,
            "readable at once"
        );
        pending.sync().unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.json"], "no temp file left behind");
    }

    #[test]
    fn round_trip_and_version_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        let body = Body { name: "a".into() };
        write_record(&p, 1, &body).unwrap();
        assert_eq!(load_record::<Body>(&p, 1).unwrap(), body);
        assert!(matches!(
            load_record::<Body>(&p, 0),
            Err(RecordError::FutureVersion { found: 1, .. })
        ));
        fs::write(&p, b"{\"version\":1,\"na").unwrap();
        assert!(matches!(
            load_record::<Body>(&p, 1),
            Err(RecordError::Corrupt { .. })
        ));
        assert!(p.exists(), "a bad record is never deleted by loading");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }
}
