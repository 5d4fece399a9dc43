//! The on-disk model cache: where a hub file lives, its stamp, its partial download and its lock.
//!
//! For `hf:OWNER/REPO@REVISION/FILE` the final file is `{cache_dir}/OWNER/REPO/REVISION/FILE`.
//! Next to it live, only while they mean something:
//! - `FILE.part`: the partial download, resumed with a `Range` request;
//! - `FILE.meta.json`: which remote object the part belongs to (etag, size, expected sha256), so
//!   that a resume never glues bytes of two different versions together;
//! - `FILE.lock`: held while one process downloads the file;
//! - `FILE.sha256`: written after a verified download (`sha256sum` format plus a `# size` comment
//!   line), so that a later start trusts the cached file without hashing gigabytes again.
//!
//! A file at the final path is only ever put there by an atomic rename of a verified part.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How old a lock file must be before it is taken to belong to a dead process. A live downloader
/// refreshes its lock's modification time every [`LOCK_REFRESH`], far more often than this.
pub(crate) const LOCK_STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// How often a downloader touches its lock file.
pub(crate) const LOCK_REFRESH: Duration = Duration::from_secs(30);

/// The paths that belong to one cached hub file.
#[derive(Clone, Debug)]
pub(crate) struct CachePaths {
    pub(crate) dir: PathBuf,
    pub(crate) file: PathBuf,
    pub(crate) part: PathBuf,
    pub(crate) meta: PathBuf,
    pub(crate) lock: PathBuf,
    pub(crate) stamp: PathBuf,
}

impl CachePaths {
    /// Builds the paths for a hub file, refusing names that could leave the cache directory
    /// (`..`, empty components, backslashes, drive letters).
    pub(crate) fn new(cache_dir: &Path, repo: &str, revision: &str, file: &str) -> Result<CachePaths, String> {
        let mut path = cache_dir.to_path_buf();
        for (what, text) in [("repository", repo), ("revision", revision), ("file", file)] {
            for component in text.split('/') {
                if !is_safe_component(component) {
                    return Err(format!("the {what} `{text}` has a path component `{component}` that is not allowed"));
                }
                path.push(component);
            }
        }
        let with_suffix = |suffix: &str| {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| cache_dir.to_path_buf());
        Ok(CachePaths {
            part: with_suffix(".part"),
            meta: with_suffix(".meta.json"),
            lock: with_suffix(".lock"),
            stamp: with_suffix(".sha256"),
            file: path,
            dir,
        })
    }

    /// Returns the cached file if its stamp vouches for it: the stamp parses, the file's size is the
    /// stamped size, and, when a checksum is pinned, the stamped checksum is the pinned one. Reads
    /// only metadata and the stamp, never the file itself, and never touches the network.
    pub(crate) fn verified(&self, pinned_sha256: Option<&str>) -> Option<PathBuf> {
        let stamp = read_stamp(&self.stamp)?;
        let metadata = fs::metadata(&self.file).ok()?;
        if !metadata.is_file() || metadata.len() != stamp.size {
            return None;
        }
        if pinned_sha256.is_some_and(|pinned| pinned != stamp.sha256) {
            return None;
        }
        Some(self.file.clone())
    }

    /// Writes the stamp for a verified file, through a temporary file and a rename.
    pub(crate) fn write_stamp(&self, sha256: &str, size: u64) -> io::Result<()> {
        let name = self.file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let text = format!("# size {size}\n{sha256}  {name}\n");
        let mut tmp = self.stamp.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut out = File::create(&tmp)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        fs::rename(&tmp, &self.stamp)
    }
}

/// A stamp's contents: the file's sha256 (lowercase hex) and size in bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

pub(crate) fn read_stamp(path: &Path) -> Option<Stamp> {
    let text = fs::read_to_string(path).ok()?;
    let mut size = None;
    let mut sha256 = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# size ") {
            size = rest.trim().parse::<u64>().ok();
        } else if let Some((hex, _name)) = line.split_once(' ') {
            if is_sha256_hex(hex) {
                sha256 = Some(hex.to_owned());
            }
        }
    }
    Some(Stamp { sha256: sha256?, size: size? })
}

/// What a partial download belongs to. A part is resumed only when the sidecar on disk is equal to
/// the one for the object the hub names now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartMeta {
    /// The hub's etag for the object, without `W/` and quotes.
    pub(crate) etag: String,
    /// The size the hub announced, if it did.
    pub(crate) size: Option<u64>,
    /// The checksum the download will be held to, if any.
    pub(crate) sha256: Option<String>,
}

impl PartMeta {
    pub(crate) fn read(path: &Path) -> Option<PartMeta> {
        let text = fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub(crate) fn write(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string(self).map_err(io::Error::other)?;
        fs::write(path, text)
    }
}

/// An exclusive lock on downloading one file, held for as long as the value lives.
///
/// It is a file created with `create_new`, which is atomic on every platform and filesystem we
/// care about (advisory `flock` is not portable through std and misbehaves on network drives). A
/// process that dies leaves the file behind (`process::exit` and a kill skip `Drop`), so the file
/// names its owner ([`owner_text`]) and a lock whose owner is known to be gone is taken over at
/// once. Where that cannot be known (another machine, another container, not Linux), the owner
/// refreshes the file's modification time every [`LOCK_REFRESH`] and others treat a lock
/// untouched for [`LOCK_STALE_AFTER`] as abandoned.
#[derive(Debug)]
pub(crate) struct DownloadLock {
    path: PathBuf,
    file: File,
    refreshed: SystemTime,
}

/// The result of one attempt to take the lock.
pub(crate) enum TryLock {
    Acquired(DownloadLock),
    /// Another live process holds it.
    Busy,
}

impl DownloadLock {
    /// Tries once to take the lock, removing it first if it is stale.
    pub(crate) fn try_acquire(path: &Path) -> io::Result<TryLock> {
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    // The lock is the file's existence; the contents only say who holds it.
                    let _ = file.write_all(owner_text(std::process::id()).as_bytes());
                    return Ok(TryLock::Acquired(DownloadLock {
                        path: path.to_path_buf(),
                        file,
                        refreshed: SystemTime::now(),
                    }));
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    if !is_stale(path) {
                        return Ok(TryLock::Busy);
                    }
                    tracing::warn!("removing the stale download lock {}", path.display());
                    match fs::remove_file(path) {
                        Ok(()) => {}
                        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                        Err(error) => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(TryLock::Busy)
    }

    /// Touches the lock file if the last touch is older than [`LOCK_REFRESH`].
    pub(crate) fn refresh(&mut self) {
        let now = SystemTime::now();
        if now.duration_since(self.refreshed).unwrap_or(Duration::ZERO) >= LOCK_REFRESH {
            self.refreshed = now;
            if let Err(error) = self.file.set_modified(now) {
                tracing::debug!("could not refresh the download lock {}: {error}", self.path.display());
            }
        }
    }
}

impl Drop for DownloadLock {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!("could not remove the download lock {}: {error}", self.path.display());
        }
    }
}

/// What a lock file says about its owner: `pid N`, then the pid namespace the pid belongs to
/// where this platform can name it.
pub(crate) fn owner_text(pid: u32) -> String {
    match pid_namespace() {
        Some(namespace) => format!("pid {pid}\nnamespace {namespace}\n"),
        None => format!("pid {pid}\n"),
    }
}

/// A lock is stale when its owner is known to be gone, or, whoever wrote it, when nobody has
/// touched it for [`LOCK_STALE_AFTER`] (its pid may have been reused by an unrelated process).
fn is_stale(path: &Path) -> bool {
    let Ok(modified) = fs::metadata(path).and_then(|metadata| metadata.modified()) else {
        // It vanished in the meantime (its owner finished), so it is worth trying again at once.
        return true;
    };
    owner_is_gone(path) || SystemTime::now().duration_since(modified).is_ok_and(|age| age >= LOCK_STALE_AFTER)
}

/// Whether the lock names a pid in our own pid namespace that no longer runs. A lock without that
/// (from another machine sharing the cache, another container, an older version, or one whose
/// owner has not written it yet) is never judged by its pid.
fn owner_is_gone(path: &Path) -> bool {
    let (Ok(text), Some(ours)) = (fs::read_to_string(path), pid_namespace()) else { return false };
    let field = |name: &str| text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' '));
    let pid = field("pid").and_then(|pid| pid.trim().parse::<u32>().ok());
    match (pid, field("namespace")) {
        (Some(pid), Some(namespace)) if namespace.trim() == ours => !is_running(pid),
        _ => false,
    }
}

/// Where this process's pids mean something: the kernel's boot id and the pid namespace. Two
/// processes see each other's pids only when both agree.
#[cfg(target_os = "linux")]
fn pid_namespace() -> Option<String> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{} {}", boot.trim(), namespace.display()))
}

/// Other platforms keep only the age rule.
#[cfg(not(target_os = "linux"))]
fn pid_namespace() -> Option<String> {
    None
}

/// Whether a process with this pid exists and has not ended: a zombie (ended, not yet reaped by
/// its parent) downloads nothing any more.
#[cfg(target_os = "linux")]
fn is_running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the command name, which is in parentheses and may contain anything.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X'))
}

#[cfg(not(target_os = "linux"))]
fn is_running(_pid: u32) -> bool {
    true
}

fn is_safe_component(component: &str) -> bool {
    !component.is_empty() && component != "." && component != ".." && !component.contains(['\\', ':', '\0'])
}

/// Whether `text` is 64 hex digits (any case), the form of a sha256.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Removes a file, treating "it is not there" as success.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}
