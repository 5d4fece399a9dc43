//! Resolving a model spec to a local file, downloading `hf:` models from the Hugging Face hub.
//!
//! The protocol mirrors `huggingface_hub`'s `hf_hub_download`: a `HEAD` on
//! `{endpoint}/{repo}/resolve/{revision}/{file}` without following redirects, where the hub's own
//! `X-Linked-Etag` (the LFS sha256) and `X-Linked-Size` describe the file and an absolute
//! `Location` points at the CDN; then a `GET` of that location, resumed with `Range` when a partial
//! download of the same object exists. The bytes are hashed while they stream and the file only
//! reaches its final path, by an atomic rename, once its size, sha256 and GGUF magic check out.
//! A verified file in the cache is returned without any network access.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::cache::{is_sha256_hex, remove_if_present, CachePaths, DownloadLock, PartMeta, TryLock};
use super::ModelSpec;

/// The public hub, used when no endpoint is configured.
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The per-I/O timeout used when none is given (the `download.timeoutSecs` setting's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The size of one read from the network, and so of one write and one hash update.
const CHUNK: usize = 64 * 1024;

/// Progress is reported at least this often in bytes...
const REPORT_EVERY_BYTES: u64 = 1024 * 1024;

/// ...and in time, so that a slow download still shows life and can still be aborted.
const REPORT_EVERY: Duration = Duration::from_millis(250);

/// How many same-host (relative) redirects the `HEAD` follows, as `huggingface_hub` does for
/// renamed repositories.
const MAX_RELATIVE_REDIRECTS: usize = 5;

/// How often a process waiting for another one's download looks at the lock again.
const LOCK_POLL: Duration = Duration::from_millis(500);

/// The first bytes of every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Where and how to fetch models.
#[derive(Clone)]
pub struct FetchOptions {
    /// The root of the model cache.
    pub cache_dir: PathBuf,
    /// The hub's base URL, without a trailing slash.
    pub endpoint: String,
    /// A Hugging Face access token, for private and gated repositories.
    pub token: Option<String>,
    /// The limit on each connect, read and write; not on the whole download.
    pub timeout: Duration,
}

impl FetchOptions {
    /// The options that the `download.*` settings give (`cache_dir` and `endpoint` empty when not
    /// set), completed from the environment: an empty cache folder means
    /// `${XDG_CACHE_HOME:-$HOME/.cache}/mistral-lsp/models`, an empty endpoint `$HF_ENDPOINT`, else
    /// `https://huggingface.co` (never with a trailing slash). The token is `$HF_TOKEN` and never a
    /// setting: a secret does not belong in an editor's settings file.
    pub fn new(cache_dir: &str, endpoint: &str, timeout: Duration) -> FetchOptions {
        FetchOptions::with_env(cache_dir, endpoint, timeout, |name| std::env::var(name).ok())
    }

    /// [`FetchOptions::new`] over any source of environment variables, so that tests need not
    /// touch the process environment. Empty variables count as unset.
    pub(crate) fn with_env(
        cache_dir: &str,
        endpoint: &str,
        timeout: Duration,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> FetchOptions {
        let var = |name: &str| lookup(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let given = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        let cache_dir = given(cache_dir).map(PathBuf::from).unwrap_or_else(|| {
            // The XDG spec says relative paths in these variables are invalid and to be ignored.
            let base = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .filter(|path| path.is_absolute())
                .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .or_else(|| var("LOCALAPPDATA").map(PathBuf::from))
                .unwrap_or_else(std::env::temp_dir);
            base.join("mistral-lsp").join("models")
        });
        let endpoint = given(endpoint)
            .or_else(|| var("HF_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let timeout = if timeout.is_zero() { DEFAULT_TIMEOUT } else { timeout };
        FetchOptions { cache_dir, endpoint, token: var("HF_TOKEN"), timeout }
    }
}

impl fmt::Debug for FetchOptions {
    /// Like a derived `Debug`, but never shows the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchOptions")
            .field("cache_dir", &self.cache_dir)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How far a download is. `downloaded` counts bytes already on disk from an earlier attempt.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub downloaded: u64,
    pub total: Option<u64>,
}

/// Why a model could not be resolved. Every message names the model or the file and says what the
/// user can do about it.
#[derive(Debug)]
pub enum FetchError {
    /// A path spec names no file.
    Missing { path: PathBuf },
    /// The spec cannot be fetched at all (the test backend, or a name that would escape the cache).
    Unsupported { spec: String, reason: String },
    /// The hub has no such repository, revision or file.
    NotFound { repo: String, file: String, revision: String, detail: Option<String> },
    /// The hub refused access (401 or 403).
    Unauthorized { model: String, status: u16, detail: Option<String>, token_set: bool },
    /// Any other unexpected HTTP status.
    Http { model: String, url: String, status: u16, detail: Option<String> },
    /// The connection could not be made or broke in a way that is not a cut-off transfer.
    Network { model: String, url: String, message: String },
    /// A connect, read or write took longer than the configured timeout.
    TimedOut { model: String, url: String, timeout: Duration, part: Option<PathBuf> },
    /// The transfer ended before the whole file arrived; the part is kept for a resume.
    Incomplete { model: String, received: u64, expected: Option<u64>, part: PathBuf },
    /// The spec's `#sha256=` differs from the sha256 the hub announces for the file.
    PinnedChecksumMismatch { model: String, pinned: String, hub: String },
    /// The downloaded bytes do not hash to the expected sha256; nothing was kept.
    ChecksumMismatch { file: String, expected: String, actual: String },
    /// More or fewer bytes arrived than the hub announced; nothing was kept.
    SizeMismatch { model: String, expected: u64, actual: u64 },
    /// The download is not a GGUF file (an HTML error page, a different format); nothing was kept.
    NotGguf { model: String, url: String },
    /// The server answered in a way the download protocol does not allow.
    Protocol { model: String, url: String, message: String },
    /// The progress callback asked to stop; a partial download is kept for a resume.
    Aborted { model: String },
    /// A file in the cache could not be read or written.
    Io { path: PathBuf, source: io::Error },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Missing { path } => write!(f, "the model file {} does not exist or is not a file", path.display()),
            FetchError::Unsupported { spec, reason } => write!(f, "cannot fetch the model `{spec}`: {reason}"),
            FetchError::NotFound { repo, file, revision, detail } => {
                write!(f, "`{file}` was not found in the Hugging Face repository `{repo}` at revision `{revision}`")?;
                if let Some(detail) = detail {
                    write!(f, " ({detail})")?;
                }
                write!(f, "; check the repository, file name and revision, and HF_TOKEN if the repository is private")
            }
            FetchError::Unauthorized { model, status, detail, token_set } => {
                write!(f, "the hub refused access to {model} (HTTP {status}")?;
                if let Some(detail) = detail {
                    write!(f, ": {detail}")?;
                }
                if *token_set {
                    write!(f, "); the token in HF_TOKEN was not accepted: check that it is valid and that you have accepted the repository's terms if it is gated")
                } else {
                    write!(f, "); if the repository is private or gated, accept its terms on the hub and set HF_TOKEN to an access token")
                }
            }
            FetchError::Http { model, url, status, detail } => {
                write!(f, "downloading {model} failed: {url} answered HTTP {status}")?;
                if let Some(detail) = detail {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
            FetchError::Network { model, url, message } => {
                write!(f, "downloading {model} failed: could not reach {url}: {message}")
            }
            FetchError::TimedOut { model, url, timeout, part } => {
                write!(f, "downloading {model} failed: {url} did not answer within {} s", timeout.as_secs_f64())?;
                if part.is_some() {
                    write!(f, "; the partial download is kept and the next attempt resumes it")?;
                }
                write!(f, " (the setting download.timeoutSecs, or MISTRAL_LSP_DOWNLOAD_TIMEOUT_SECS, sets the timeout)")
            }
            FetchError::Incomplete { model, received, expected, part } => {
                write!(f, "downloading {model} was cut off after {}", human_bytes(*received))?;
                if let Some(expected) = expected {
                    write!(f, " of {}", human_bytes(*expected))?;
                }
                write!(f, "; the partial download {} is kept and the next attempt resumes it", part.display())
            }
            FetchError::PinnedChecksumMismatch { model, pinned, hub } => write!(
                f,
                "the pinned checksum of {model} does not match the hub's: the spec says #sha256={pinned} but the hub's file has sha256 {hub}; the file changed on the hub or the pin is wrong"
            ),
            FetchError::ChecksumMismatch { file, expected, actual } => write!(
                f,
                "the download of {file} is corrupt or not the expected file: its sha256 is {actual}, expected {expected}; it was deleted"
            ),
            FetchError::SizeMismatch { model, expected, actual } => write!(
                f,
                "the download of {model} has the wrong size: {actual} bytes, the hub announced {expected}; it was deleted"
            ),
            FetchError::NotGguf { model, url } => write!(
                f,
                "the download of {model} from {url} is not a GGUF file (it does not start with `GGUF`; perhaps an error page); it was deleted"
            ),
            FetchError::Protocol { model, url, message } => {
                write!(f, "downloading {model} failed: unexpected answer from {url}: {message}")
            }
            FetchError::Aborted { model } => write!(f, "the download of {model} was stopped"),
            FetchError::Io { path, source } => write!(f, "model cache: {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FetchError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Returns the local path of the model. Path specs: returned as-is if the file exists, else
/// [`FetchError::Missing`]. `hf:` specs: if the verified file is in the cache, it is returned
/// without any network access (offline start). Otherwise it is downloaded. `on_progress` is called
/// regularly (at least every 1 MiB and at the end); returning false aborts with
/// [`FetchError::Aborted`], keeping the partial file for a later resume.
pub fn resolve(
    spec: &ModelSpec,
    options: &FetchOptions,
    on_progress: &mut dyn FnMut(Progress) -> bool,
) -> Result<PathBuf, FetchError> {
    match spec {
        ModelSpec::Path(path) => match fs::metadata(path) {
            Ok(metadata) if metadata.is_file() => Ok(path.clone()),
            _ => Err(FetchError::Missing { path: path.clone() }),
        },
        ModelSpec::HuggingFace { repo, file, revision, sha256 } => {
            let remote = Remote::new(repo, file, revision, sha256.as_deref(), &options.endpoint);
            let paths = CachePaths::new(&options.cache_dir, repo, revision, file)
                .map_err(|reason| FetchError::Unsupported { spec: spec.to_string(), reason })?;
            Fetch { remote, paths, options, reporter: Reporter::new(on_progress) }.run()
        }
        #[cfg(feature = "test-backend")]
        ModelSpec::Test(_) => Err(FetchError::Unsupported {
            spec: spec.to_string(),
            reason: "the test backend has no model file; the engine loads it without resolving".into(),
        }),
    }
}

/// One `hf:` file: its names and its hub URL.
struct Remote {
    repo: String,
    file: String,
    revision: String,
    /// The spec's `#sha256=`, lowercase.
    pinned: Option<String>,
    /// `hf:OWNER/REPO[@REVISION]/FILE`, for messages.
    name: String,
    url: String,
}

impl Remote {
    fn new(repo: &str, file: &str, revision: &str, pinned: Option<&str>, endpoint: &str) -> Remote {
        let name =
            if revision == "main" { format!("hf:{repo}/{file}") } else { format!("hf:{repo}@{revision}/{file}") };
        let url = format!(
            "{}/{repo}/resolve/{}/{}",
            endpoint.trim_end_matches('/'),
            percent_encode(revision, false),
            percent_encode(file, true)
        );
        Remote {
            repo: repo.to_owned(),
            file: file.to_owned(),
            revision: revision.to_owned(),
            pinned: pinned.map(str::to_ascii_lowercase),
            name,
            url,
        }
    }
}

/// What the `HEAD` found out: where to download from and what to expect there.
#[derive(Debug)]
struct Target {
    url: String,
    /// The hub's etag (`X-Linked-Etag`, else `ETag`), without `W/` and quotes; empty if none.
    etag: String,
    size: Option<u64>,
    /// Whether `url` is on the hub's host, so that the token may be sent there.
    send_token: bool,
}

/// Calls `on_progress` at most every [`REPORT_EVERY`] but at least every [`REPORT_EVERY_BYTES`].
struct Reporter<'a> {
    callback: &'a mut dyn FnMut(Progress) -> bool,
    total: Option<u64>,
    last_bytes: Option<u64>,
    last_time: Instant,
}

impl<'a> Reporter<'a> {
    fn new(callback: &'a mut dyn FnMut(Progress) -> bool) -> Reporter<'a> {
        Reporter { callback, total: None, last_bytes: None, last_time: Instant::now() }
    }

    /// Reports if it is time to (or `force`); returns false if the callback asked to stop.
    fn report(&mut self, downloaded: u64, force: bool) -> bool {
        let due = match self.last_bytes {
            None => true,
            Some(last) => {
                downloaded >= last.saturating_add(REPORT_EVERY_BYTES) || self.last_time.elapsed() >= REPORT_EVERY
            }
        };
        if !(force || due) {
            return true;
        }
        self.last_bytes = Some(downloaded);
        self.last_time = Instant::now();
        (self.callback)(Progress { downloaded, total: self.total })
    }
}

/// One resolution of an `hf:` spec.
struct Fetch<'a, 'b> {
    remote: Remote,
    paths: CachePaths,
    options: &'a FetchOptions,
    reporter: Reporter<'b>,
}

impl Fetch<'_, '_> {
    fn run(mut self) -> Result<PathBuf, FetchError> {
        if let Some(path) = self.paths.verified(self.remote.pinned.as_deref()) {
            tracing::debug!("{} is cached at {}", self.remote.name, path.display());
            return Ok(path);
        }
        fs::create_dir_all(&self.paths.dir).map_err(|source| io_error(&self.paths.dir, source))?;
        let mut lock = self.lock()?;
        // Another process may have finished the download while this one waited for the lock.
        if let Some(path) = self.paths.verified(self.remote.pinned.as_deref()) {
            return Ok(path);
        }

        let target = self.probe()?;
        let hub_sha256 = is_sha256_hex(&target.etag).then(|| target.etag.to_ascii_lowercase());
        let expected = match (&self.remote.pinned, hub_sha256) {
            (Some(pinned), Some(hub)) if *pinned != hub => {
                return Err(FetchError::PinnedChecksumMismatch {
                    model: self.remote.name.clone(),
                    pinned: pinned.clone(),
                    hub,
                });
            }
            (Some(pinned), _) => Some(pinned.clone()),
            (None, hub) => hub,
        };
        if expected.is_none() {
            tracing::warn!(
                "{}: the hub gives no sha256 for this file and the spec pins none, so the download cannot be verified; add #sha256=HEX to the spec to pin it",
                self.remote.name
            );
        }

        // Whatever sits at the final path has no valid stamp (or the wrong one), so it is not
        // trusted; remove it with its stamp before anything else is written.
        for path in [&self.paths.stamp, &self.paths.file] {
            remove_if_present(path).map_err(|source| io_error(path, source))?;
        }
        let meta = PartMeta { etag: target.etag.clone(), size: target.size, sha256: expected.clone() };
        let offset = self.prepare_part(&meta)?;
        self.reporter.total = target.size;
        tracing::info!("downloading {} from {}", self.remote.name, display_url(&target.url));
        let (sha256, size) = self.transfer(&target, offset, &mut lock)?;
        self.commit(&target, &sha256, size, expected.as_deref())
    }

    /// Takes the download lock, waiting (and reporting the other process's progress) while another
    /// live process holds it.
    fn lock(&mut self) -> Result<DownloadLock, FetchError> {
        let mut announced = false;
        loop {
            match DownloadLock::try_acquire(&self.paths.lock).map_err(|source| io_error(&self.paths.lock, source))? {
                TryLock::Acquired(lock) => return Ok(lock),
                TryLock::Busy => {
                    if !announced {
                        announced = true;
                        tracing::info!(
                            "{} is being downloaded by another process; waiting for it (lock file {})",
                            self.remote.name,
                            self.paths.lock.display()
                        );
                    }
                    self.reporter.total = PartMeta::read(&self.paths.meta).and_then(|meta| meta.size);
                    let downloaded = fs::metadata(&self.paths.part).map(|metadata| metadata.len()).unwrap_or(0);
                    if !self.reporter.report(downloaded, true) {
                        return Err(FetchError::Aborted { model: self.remote.name.clone() });
                    }
                    std::thread::sleep(LOCK_POLL);
                }
            }
        }
    }

    /// The `HEAD` request: follows relative redirects, stops at an absolute one.
    fn probe(&self) -> Result<Target, FetchError> {
        let agent = agent(self.options, 0);
        let mut url = self.remote.url.clone();
        for _ in 0..=MAX_RELATIVE_REDIRECTS {
            let mut request = agent.head(&url).set("Accept-Encoding", "identity");
            if let Some(token) = &self.options.token {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            let response = match request.call() {
                Ok(response) => response,
                Err(ureq::Error::Status(status, response)) => {
                    return Err(self.hub_status_error(status, &response, &url))
                }
                Err(ureq::Error::Transport(transport)) => return Err(self.transport_error(&transport, &url, None)),
            };
            let status = response.status();
            if (300..400).contains(&status) {
                let Some(location) = response.header("Location") else {
                    return Err(self.protocol_error(&url, format!("HTTP {status} without a Location header")));
                };
                let next = join_url(&url, location);
                if is_absolute_url(location) {
                    // The hub's own headers describe the file; the CDN's (asked later) do not.
                    let etag = response.header("X-Linked-Etag").or_else(|| response.header("ETag"));
                    let size = response.header("X-Linked-Size").and_then(|size| size.trim().parse().ok());
                    let send_token = authority(&next) == authority(&url);
                    return Ok(Target { url: next, etag: normalize_etag(etag), size, send_token });
                }
                url = next;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(FetchError::Http {
                    model: self.remote.name.clone(),
                    url: display_url(&url),
                    status,
                    detail: error_detail(&response),
                });
            }
            let etag = response.header("X-Linked-Etag").or_else(|| response.header("ETag"));
            let size = response
                .header("X-Linked-Size")
                .or_else(|| response.header("Content-Length"))
                .and_then(|size| size.trim().parse().ok());
            return Ok(Target { url, etag: normalize_etag(etag), size, send_token: true });
        }
        Err(self.protocol_error(&self.remote.url, format!("more than {MAX_RELATIVE_REDIRECTS} redirects")))
    }

    /// Decides where the download starts: at the end of a part that belongs to the same remote
    /// object, else at zero (removing any other part). Writes the sidecar for a fresh part.
    fn prepare_part(&self, meta: &PartMeta) -> Result<u64, FetchError> {
        let existing = fs::metadata(&self.paths.part).ok().filter(|metadata| metadata.is_file()).map(|m| m.len());
        if let Some(len) = existing {
            let same_object = PartMeta::read(&self.paths.meta).as_ref() == Some(meta);
            if same_object && meta.size.is_none_or(|size| len <= size) {
                tracing::info!("{}: resuming the partial download at {}", self.remote.name, human_bytes(len));
                return Ok(len);
            }
            tracing::info!("{}: discarding a partial download of a different version", self.remote.name);
            remove_if_present(&self.paths.part).map_err(|source| io_error(&self.paths.part, source))?;
        }
        meta.write(&self.paths.meta).map_err(|source| io_error(&self.paths.meta, source))?;
        Ok(0)
    }

    /// The `GET`, resumed from `offset`. Returns the sha256 and size of the complete part.
    fn transfer(
        &mut self,
        target: &Target,
        mut offset: u64,
        lock: &mut DownloadLock,
    ) -> Result<(String, u64), FetchError> {
        let agent = agent(self.options, 5);
        let mut restarted = false;
        loop {
            // The existing bytes are hashed before the request so that the connection does not sit
            // idle (and time out) while a large part is read back.
            let resumed = if offset > 0 { Some(self.hash_part(offset)?) } else { None };
            let mut request = agent.get(&target.url).set("Accept-Encoding", "identity");
            if target.send_token {
                if let Some(token) = &self.options.token {
                    request = request.set("Authorization", &format!("Bearer {token}"));
                }
            }
            if offset > 0 {
                request = request.set("Range", &format!("bytes={offset}-"));
            }
            let response = match request.call() {
                Ok(response) => response,
                Err(ureq::Error::Status(416, response)) if offset > 0 => {
                    let total = response.header("Content-Range").and_then(content_range_total);
                    if let (Some(hasher), true) = (resumed, target.size == Some(offset) || total == Some(offset)) {
                        // The part was already complete (an earlier run stopped before verifying).
                        self.reporter.report(offset, true);
                        return Ok((hex(&hasher.finalize()), offset));
                    }
                    if restarted {
                        return Err(self.protocol_error(&target.url, "HTTP 416 for a range inside the file".into()));
                    }
                    tracing::warn!("{}: the server refused to resume; starting over", self.remote.name);
                    (restarted, offset) = (true, 0);
                    continue;
                }
                Err(ureq::Error::Status(status, response)) => {
                    return Err(FetchError::Http {
                        model: self.remote.name.clone(),
                        url: display_url(&target.url),
                        status,
                        detail: error_detail(&response),
                    });
                }
                Err(ureq::Error::Transport(transport)) => {
                    let part = (offset > 0).then(|| self.paths.part.clone());
                    return Err(self.transport_error(&transport, &target.url, part));
                }
            };
            let (hasher, start) = match (response.status(), resumed) {
                (206, Some(hasher)) => {
                    let start = response.header("Content-Range").and_then(content_range_start);
                    if start != Some(offset) {
                        if restarted {
                            return Err(
                                self.protocol_error(&target.url, "a Content-Range that was not asked for".into())
                            );
                        }
                        tracing::warn!("{}: the server resumed at the wrong place; starting over", self.remote.name);
                        (restarted, offset) = (true, 0);
                        continue;
                    }
                    (hasher, offset)
                }
                (200, resumed) => {
                    if resumed.is_some() {
                        tracing::info!("{}: the server ignored the Range request; starting over", self.remote.name);
                    }
                    (Sha256::new(), 0)
                }
                (status, _) => {
                    return Err(FetchError::Http {
                        model: self.remote.name.clone(),
                        url: display_url(&target.url),
                        status,
                        detail: Some("expected 200 or 206".into()),
                    });
                }
            };
            let part = self.open_part(start)?;
            return self.stream(response.into_reader(), part, hasher, start, target, lock);
        }
    }

    /// Copies the body into the part, hashing and reporting as it goes.
    fn stream(
        &mut self,
        mut body: impl Read,
        mut part: File,
        mut hasher: Sha256,
        mut downloaded: u64,
        target: &Target,
        lock: &mut DownloadLock,
    ) -> Result<(String, u64), FetchError> {
        let aborted = |this: &Self| FetchError::Aborted { model: this.remote.name.clone() };
        if !self.reporter.report(downloaded, true) {
            return Err(aborted(self));
        }
        let mut buffer = vec![0; CHUNK];
        loop {
            let read = match body.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.read_error(error, downloaded, target)),
            };
            let chunk = &buffer[..read];
            part.write_all(chunk).map_err(|source| io_error(&self.paths.part, source))?;
            hasher.update(chunk);
            downloaded += read as u64;
            if let Some(expected) = target.size.filter(|&expected| downloaded > expected) {
                drop(part);
                self.discard();
                return Err(FetchError::SizeMismatch { model: self.remote.name.clone(), expected, actual: downloaded });
            }
            lock.refresh();
            if !self.reporter.report(downloaded, false) {
                return Err(aborted(self));
            }
        }
        if target.size.is_some_and(|expected| downloaded < expected) {
            return Err(self.incomplete(downloaded, target));
        }
        if !self.reporter.report(downloaded, true) {
            return Err(aborted(self));
        }
        Ok((hex(&hasher.finalize()), downloaded))
    }

    /// Checks the complete part and moves it to the final path with its stamp.
    fn commit(&self, target: &Target, sha256: &str, size: u64, expected: Option<&str>) -> Result<PathBuf, FetchError> {
        if let Some(expected_size) = target.size.filter(|&expected_size| expected_size != size) {
            self.discard();
            return Err(FetchError::SizeMismatch {
                model: self.remote.name.clone(),
                expected: expected_size,
                actual: size,
            });
        }
        if let Some(expected) = expected.filter(|&expected| expected != sha256) {
            self.discard();
            return Err(FetchError::ChecksumMismatch {
                file: self.remote.name.clone(),
                expected: expected.to_owned(),
                actual: sha256.to_owned(),
            });
        }
        let part_error = |source| io_error(&self.paths.part, source);
        let mut part = OpenOptions::new().read(true).write(true).open(&self.paths.part).map_err(part_error)?;
        let mut magic = [0; 4];
        if part.read_exact(&mut magic).is_err() || &magic != GGUF_MAGIC {
            drop(part);
            self.discard();
            return Err(FetchError::NotGguf { model: self.remote.name.clone(), url: display_url(&target.url) });
        }
        part.sync_all().map_err(part_error)?;
        drop(part);
        fs::rename(&self.paths.part, &self.paths.file).map_err(|source| io_error(&self.paths.file, source))?;
        self.paths.write_stamp(sha256, size).map_err(|source| io_error(&self.paths.stamp, source))?;
        if let Err(error) = remove_if_present(&self.paths.meta) {
            tracing::warn!("could not remove {}: {error}", self.paths.meta.display());
        }
        // Makes the rename durable where directories can be opened (not on Windows, where the
        // rename is durable already).
        if let Ok(dir) = File::open(&self.paths.dir) {
            let _ = dir.sync_all();
        }
        tracing::info!("{} is verified and cached at {}", self.remote.name, self.paths.file.display());
        Ok(self.paths.file.clone())
    }

    /// Hashes the first `len` bytes of the part.
    fn hash_part(&self, len: u64) -> Result<Sha256, FetchError> {
        let part_error = |source| io_error(&self.paths.part, source);
        let mut part = File::open(&self.paths.part).map_err(part_error)?.take(len);
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; CHUNK];
        let mut hashed = 0;
        loop {
            match part.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    hasher.update(&buffer[..read]);
                    hashed += read as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(part_error(error)),
            }
        }
        if hashed != len {
            return Err(part_error(io::Error::new(io::ErrorKind::UnexpectedEof, "the partial download shrank")));
        }
        Ok(hasher)
    }

    /// Opens the part for writing at `start`, cutting off anything after it.
    fn open_part(&self, start: u64) -> Result<File, FetchError> {
        let part_error = |source| io_error(&self.paths.part, source);
        let mut part =
            OpenOptions::new().create(true).truncate(false).write(true).open(&self.paths.part).map_err(part_error)?;
        part.set_len(start).map_err(part_error)?;
        part.seek(SeekFrom::Start(start)).map_err(part_error)?;
        Ok(part)
    }

    /// Removes the part and its sidecar after a failed verification.
    fn discard(&self) {
        for path in [&self.paths.part, &self.paths.meta] {
            if let Err(error) = remove_if_present(path) {
                tracing::warn!("could not remove {}: {error}", path.display());
            }
        }
    }

    fn incomplete(&self, received: u64, target: &Target) -> FetchError {
        FetchError::Incomplete {
            model: self.remote.name.clone(),
            received,
            expected: target.size,
            part: self.paths.part.clone(),
        }
    }

    /// Classifies an error while reading the body; the part is kept in every case.
    fn read_error(&self, error: io::Error, received: u64, target: &Target) -> FetchError {
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => FetchError::TimedOut {
                model: self.remote.name.clone(),
                url: display_url(&target.url),
                timeout: self.options.timeout,
                part: Some(self.paths.part.clone()),
            },
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => self.incomplete(received, target),
            _ => FetchError::Network {
                model: self.remote.name.clone(),
                url: display_url(&target.url),
                message: format!("{error} after {}; the partial download is kept", human_bytes(received)),
            },
        }
    }

    fn transport_error(&self, transport: &ureq::Transport, url: &str, part: Option<PathBuf>) -> FetchError {
        let mut source = std::error::Error::source(transport);
        while let Some(error) = source {
            if let Some(error) = error.downcast_ref::<io::Error>() {
                if matches!(error.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
                    return FetchError::TimedOut {
                        model: self.remote.name.clone(),
                        url: display_url(url),
                        timeout: self.options.timeout,
                        part,
                    };
                }
            }
            source = error.source();
        }
        // Transport's own Display starts with the full URL, query string (a CDN signature) included.
        let mut message = transport.kind().to_string();
        if let Some(detail) = transport.message() {
            message = format!("{message}: {detail}");
        }
        if let Some(source) = std::error::Error::source(transport) {
            message = format!("{message}: {source}");
        }
        FetchError::Network { model: self.remote.name.clone(), url: display_url(url), message }
    }

    /// Maps an error status of the hub's `HEAD`.
    fn hub_status_error(&self, status: u16, response: &ureq::Response, url: &str) -> FetchError {
        let detail = error_detail(response);
        match status {
            404 => FetchError::NotFound {
                repo: self.remote.repo.clone(),
                file: self.remote.file.clone(),
                revision: self.remote.revision.clone(),
                detail,
            },
            401 | 403 => FetchError::Unauthorized {
                model: self.remote.name.clone(),
                status,
                detail,
                token_set: self.options.token.is_some(),
            },
            _ => FetchError::Http { model: self.remote.name.clone(), url: display_url(url), status, detail },
        }
    }

    fn protocol_error(&self, url: &str, message: String) -> FetchError {
        FetchError::Protocol { model: self.remote.name.clone(), url: display_url(url), message }
    }
}

fn agent(options: &FetchOptions, redirects: u32) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(redirects)
        .timeout_connect(options.timeout)
        .timeout_read(options.timeout)
        .timeout_write(options.timeout)
        .user_agent(concat!("mistral-lsp/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn io_error(path: &Path, source: io::Error) -> FetchError {
    FetchError::Io { path: path.to_path_buf(), source }
}

/// The hub's explanation of an error status, from `X-Error-Message` (and `X-Error-Code`).
fn error_detail(response: &ureq::Response) -> Option<String> {
    match (response.header("X-Error-Code"), response.header("X-Error-Message")) {
        (_, Some(message)) => Some(message.to_owned()),
        (Some(code), None) => Some(code.to_owned()),
        (None, None) => None,
    }
}

/// Strips a weak marker and quotes: `W/"abc"` → `abc`.
fn normalize_etag(etag: Option<&str>) -> String {
    let etag = etag.unwrap_or("").trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.trim_matches('"').to_owned()
}

/// The `N` of `Content-Range: bytes N-M/T`.
fn content_range_start(header: &str) -> Option<u64> {
    let range = header.trim().strip_prefix("bytes")?.trim_start();
    range.split_once('-')?.0.trim().parse().ok()
}

/// The `T` of `Content-Range: bytes N-M/T` or `bytes */T`.
fn content_range_total(header: &str) -> Option<u64> {
    header.rsplit_once('/')?.1.trim().parse().ok()
}

/// Percent-encodes everything but RFC 3986's unreserved characters (and `/` if `keep_slash`), like
/// Python's `urllib.parse.quote`.
fn percent_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Whether a `Location` names a host (`scheme://host/...` or `//host/...`), as opposed to a path on
/// the same host.
fn is_absolute_url(location: &str) -> bool {
    if location.starts_with("//") {
        return true;
    }
    location.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"+-.".contains(&byte))
    })
}

/// Resolves a `Location` against the URL that answered with it.
fn join_url(base: &str, location: &str) -> String {
    if is_absolute_url(location) && !location.starts_with("//") {
        return location.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    if let Some(rest_of_location) = location.strip_prefix("//") {
        return format!("{scheme}://{rest_of_location}");
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..authority_end]);
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    // A relative path replaces the last segment of the base path.
    let path = rest[authority_end..].split(['?', '#']).next().unwrap_or("");
    let directory = path.rfind('/').map_or("/", |slash| &path[..=slash]);
    format!("{origin}{directory}{location}")
}

/// The `host[:port]` of a URL, lowercase.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Credentials in the URL are not part of the host.
    authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_ascii_lowercase()
}

/// A URL for messages: without its query string, which for a CDN is a signature.
fn display_url(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `1536` → `1.5 KiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(percent_encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(percent_encode("sub dir/f+1.gguf", true), "sub%20dir/f%2B1.gguf");
        let remote = Remote::new("o/r", "a b/f.gguf", "v 1", None, "http://hub/");
        assert_eq!(remote.url, "http://hub/o/r/resolve/v%201/a%20b/f.gguf");
        assert_eq!(join_url("http://h:1/a/b?x=1", "/c/d"), "http://h:1/c/d");
        assert_eq!(join_url("http://h/a/b", "c"), "http://h/a/c");
        assert_eq!(join_url("https://h/a", "//cdn/x"), "https://cdn/x");
        assert_eq!(join_url("https://h/a", "https://cdn/x?s=1"), "https://cdn/x?s=1");
        assert!(is_absolute_url("https://cdn/x") && is_absolute_url("//cdn/x"));
        assert!(!is_absolute_url("/api/resolve-cache/x") && !is_absolute_url("x"));
        assert_eq!(authority("https://User@Hub.co:443/x"), "hub.co:443");
        assert_eq!(display_url("https://cdn/x?sig=secret"), "https://cdn/x");
    }

    #[test]
    fn headers() {
        assert_eq!(normalize_etag(Some("W/\"abc\"")), "abc");
        assert_eq!(normalize_etag(Some("\"abc\"")), "abc");
        assert_eq!(normalize_etag(None), "");
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_total("bytes 100-199/200"), Some(200));
        assert_eq!(content_range_total("bytes */200"), Some(200));
        assert_eq!(content_range_start("bytes */200"), None);
    }

    #[test]
    fn options_from_settings_and_variables() {
        let secs = Duration::from_secs;
        let options = FetchOptions::with_env("", "", secs(5), |name| match name {
            "HOME" => Some("/home/u".into()),
            "HF_ENDPOINT" => Some("https://mirror.example/".into()),
            "HF_TOKEN" => Some(" hf_x ".into()),
            _ => None,
        });
        assert_eq!(options.cache_dir, PathBuf::from("/home/u/.cache/mistral-lsp/models"));
        assert_eq!(options.endpoint, "https://mirror.example");
        assert_eq!(options.token.as_deref(), Some("hf_x"));
        assert_eq!(options.timeout, secs(5));
        assert!(!format!("{options:?}").contains("hf_x"));

        // Settings win over the variables they stand beside.
        let options = FetchOptions::with_env(" /c ", "http://a/", Duration::ZERO, |name| match name {
            "XDG_CACHE_HOME" => Some("/x".into()),
            "HF_ENDPOINT" => Some("http://b".into()),
            "HF_TOKEN" => Some(String::new()),
            _ => None,
        });
        assert_eq!(options.cache_dir, PathBuf::from("/c"));
        assert_eq!(options.endpoint, "http://a");
        assert_eq!(options.token, None);
        assert_eq!(options.timeout, DEFAULT_TIMEOUT);

        let options =
            FetchOptions::with_env("", "", secs(1), |name| (name == "XDG_CACHE_HOME").then(|| "/x".to_owned()));
        assert_eq!(options.cache_dir, PathBuf::from("/x/mistral-lsp/models"));
        assert_eq!(options.endpoint, DEFAULT_ENDPOINT);
        // A relative XDG folder is ignored, as the XDG spec says.
        let options = FetchOptions::with_env("", "", secs(1), |name| match name {
            "XDG_CACHE_HOME" => Some("rel".into()),
            "HOME" => Some("/h".into()),
            _ => None,
        });
        assert_eq!(options.cache_dir, PathBuf::from("/h/.cache/mistral-lsp/models"));
    }

    #[test]
    fn sizes_for_humans() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
