//! Tests of model resolution against a fake Hugging Face hub served on 127.0.0.1.
//!
//! The fake hub answers like the real one: `/{repo}/resolve/{rev}/{file}` redirects (302) to a
//! CDN URL on the same server with `X-Linked-Etag` and `X-Linked-Size`; `/cdn/...` serves the
//! bytes with range support and an etag of its own that must not be trusted. Each test switches
//! on the misbehaviour it needs. Server threads stop by themselves: the accept loop when its hub
//! is dropped (or after a deadline), connections after their bounded work.

#![allow(clippy::disallowed_methods)] // The fake hub serves connections on its own threads.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::*;

const REPO: &str = "acme/tiny-GGUF";
const FILE: &str = "tiny-q8_0.gguf";
const MODEL_LEN: usize = 3 * 1024 * 1024 + 12_345;

/// The longest any fake hub lives, so that a stuck test cannot leave a thread behind for ever.
const HUB_LIFETIME: Duration = Duration::from_secs(30);

/// A fake GGUF: the magic, then deterministic pseudo-random bytes.
fn model_bytes() -> Arc<Vec<u8>> {
    static BYTES: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let mut bytes = b"GGUF".to_vec();
            let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
            while bytes.len() < MODEL_LEN {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.extend_from_slice(&state.to_le_bytes());
            }
            bytes.truncate(MODEL_LEN);
            Arc::new(bytes)
        })
        .clone()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// How the fake hub (mis)behaves.
#[derive(Clone)]
struct Behaviour {
    /// What the CDN serves.
    content: Arc<Vec<u8>>,
    /// The `X-Linked-Etag` the hub announces (a sha256 of `content` unless changed).
    linked_etag: String,
    /// The `X-Linked-Size` the hub announces.
    linked_size: usize,
    /// `/resolve/` answers 404.
    not_found: bool,
    /// `/resolve/` first redirects relatively to `/api/resolve-cache/...`, as for a renamed repo.
    relative_hop: bool,
    /// The CDN's host name in `Location`.
    cdn_host: &'static str,
    /// The first CDN GET is cut off (connection closed) after this many body bytes.
    cut_first_get_after: Option<usize>,
    /// The CDN sleeps this long between 64 KiB chunks.
    chunk_delay: Option<Duration>,
    /// The CDN stops sending for this long after this many bytes.
    stall: Option<(usize, Duration)>,
    /// The CDN answers 200 with the whole file even to a `Range` request.
    ignore_range: bool,
}

impl Behaviour {
    fn normal() -> Behaviour {
        let content = model_bytes();
        Behaviour {
            linked_etag: sha256_hex(&content),
            linked_size: content.len(),
            content,
            not_found: false,
            relative_hop: false,
            cdn_host: "127.0.0.1",
            cut_first_get_after: None,
            chunk_delay: None,
            stall: None,
            ignore_range: false,
        }
    }
}

/// One request as the fake hub saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    range: Option<String>,
    authorization: Option<String>,
}

struct State {
    stop: AtomicBool,
    behaviour: Behaviour,
    cdn_gets: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

struct Hub {
    port: u16,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl Hub {
    fn start(behaviour: Behaviour) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            stop: AtomicBool::new(false),
            behaviour,
            cdn_gets: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let accept_state = state.clone();
        let accept = thread::spawn(move || {
            let deadline = Instant::now() + HUB_LIFETIME;
            while !accept_state.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let state = accept_state.clone();
                        thread::spawn(move || serve(stream, &state, port));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Hub { port, state, accept: Some(accept) }
    }

    fn options(&self, cache: &TempDir) -> FetchOptions {
        FetchOptions {
            cache_dir: cache.0.clone(),
            endpoint: format!("http://127.0.0.1:{}", self.port),
            token: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn cdn_gets(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|seen| seen.method == "GET" && seen.path.starts_with("/cdn/")).collect()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Serves one request and closes the connection.
fn serve(mut stream: TcpStream, state: &State, port: u16) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let path = request_line.next().unwrap_or("").to_owned();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    };
    let seen = Seen {
        method: method.clone(),
        path: path.clone(),
        range: header("Range"),
        authorization: header("Authorization"),
    };
    state.seen.lock().unwrap().push(seen.clone());
    let behaviour = &state.behaviour;
    let content = &behaviour.content;
    let sha = sha256_hex(content);

    let resolve_prefix = format!("/{REPO}/resolve/");
    if path.starts_with(&resolve_prefix) && behaviour.relative_hop {
        let location = format!("/api/resolve-cache/{}", &path[resolve_prefix.len()..]);
        respond(&mut stream, "307 Temporary Redirect", &[("Location", location)], b"");
    } else if path.starts_with(&resolve_prefix) || path.starts_with("/api/resolve-cache/") {
        if behaviour.not_found {
            let headers = [("X-Error-Code", "EntryNotFound".into()), ("X-Error-Message", "Entry not found".into())];
            respond(&mut stream, "404 Not Found", &headers, b"");
            return;
        }
        let headers = [
            ("Location", format!("http://{}:{port}/cdn/{sha}?signature=secret", behaviour.cdn_host)),
            ("X-Linked-Etag", format!("\"{}\"", behaviour.linked_etag)),
            ("X-Linked-Size", behaviour.linked_size.to_string()),
            ("ETag", "W/\"0123456789abcdef0123456789abcdef01234567\"".into()),
            ("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567".into()),
        ];
        respond(&mut stream, "302 Found", &headers, b"");
    } else if path.starts_with("/cdn/") {
        let start = seen
            .range
            .as_deref()
            .filter(|_| !behaviour.ignore_range)
            .and_then(|range| range.strip_prefix("bytes="))
            .and_then(|range| range.trim_end_matches('-').parse::<usize>().ok());
        let mut headers = vec![("Accept-Ranges", "bytes".to_owned()), ("ETag", "\"cdn-etag-not-a-sha\"".to_owned())];
        let (status, start) = match start {
            Some(start) if start >= content.len() => {
                headers.push(("Content-Range", format!("bytes */{}", content.len())));
                respond(&mut stream, "416 Range Not Satisfiable", &headers, b"");
                return;
            }
            Some(start) => {
                headers.push(("Content-Range", format!("bytes {start}-{}/{}", content.len() - 1, content.len())));
                ("206 Partial Content", start)
            }
            None => ("200 OK", 0),
        };
        headers.push(("Content-Length", (content.len() - start).to_string()));
        write_head(&mut stream, status, &headers);
        if method != "GET" {
            return;
        }
        let cut = match behaviour.cut_first_get_after {
            Some(cut) if state.cdn_gets.fetch_add(1, Ordering::SeqCst) == 0 => Some(cut),
            _ => None,
        };
        let body = &content[start..];
        let mut sent = 0;
        while sent < body.len() {
            if cut.is_some_and(|cut| sent >= cut) {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            if let Some((_, pause)) = behaviour.stall.filter(|&(after, _)| sent >= after) {
                let until = Instant::now() + pause;
                while Instant::now() < until && !state.stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(10));
                }
                // Whatever the client did meanwhile, this connection is done.
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            let end = (sent + 64 * 1024).min(body.len());
            let end = cut.map_or(end, |cut| end.min(cut.max(sent + 1)));
            if stream.write_all(&body[sent..end]).is_err() {
                return;
            }
            sent = end;
            if let Some(delay) = behaviour.chunk_delay {
                thread::sleep(delay);
            }
        }
        let _ = stream.flush();
    } else {
        respond(&mut stream, "404 Not Found", &[], b"");
    }
}

fn write_head(stream: &mut TcpStream, status: &str, headers: &[(&str, String)]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut headers = headers.to_vec();
    headers.push(("Content-Length", body.len().to_string()));
    write_head(stream, status, &headers);
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
        let path =
            std::env::temp_dir().join(format!("mistral-lsp-models-{name}-{}-{unique}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec() -> ModelSpec {
    ModelSpec::parse(&format!("hf:{REPO}/{FILE}")).unwrap()
}

fn final_path(cache: &TempDir) -> PathBuf {
    cache.0.join(REPO).join("main").join(FILE)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Resolves, recording every progress report.
fn resolve_recording(spec: &ModelSpec, options: &FetchOptions) -> (Result<PathBuf, FetchError>, Vec<Progress>) {
    let mut reports = Vec::new();
    let result = resolve(spec, options, &mut |progress| {
        reports.push(progress);
        true
    });
    (result, reports)
}

/// Runs `test` and fails if it took longer than `limit`.
fn bounded<T>(limit: Duration, test: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = test();
    assert!(started.elapsed() < limit, "the test took {:?}, more than {limit:?}", started.elapsed());
    result
}

fn assert_nothing_left(cache: &TempDir) {
    let file = final_path(cache);
    for path in [file.clone(), with_suffix(&file, ".part"), with_suffix(&file, ".meta.json")] {
        assert!(!path.exists(), "{} should not exist", path.display());
    }
}

#[test]
fn happy_path_verifies_reports_progress_and_then_works_offline() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("happy");
        let hub = Hub::start(Behaviour::normal());
        let options = hub.options(&cache);
        let (result, reports) = resolve_recording(&spec(), &options);
        let path = result.unwrap();
        assert_eq!(path, final_path(&cache));
        assert_eq!(std::fs::read(&path).unwrap(), *model_bytes());
        assert!(reports.len() >= 3, "{reports:?}");
        assert!(reports.windows(2).all(|pair| pair[0].downloaded <= pair[1].downloaded), "{reports:?}");
        assert!(reports.windows(2).all(|pair| pair[1].downloaded - pair[0].downloaded <= 1024 * 1024 + 64 * 1024));
        let last = reports.last().unwrap();
        assert_eq!((last.downloaded, last.total), (MODEL_LEN as u64, Some(MODEL_LEN as u64)));
        assert!(reports.iter().all(|report| report.total == Some(MODEL_LEN as u64)));
        let stamp = std::fs::read_to_string(with_suffix(&path, ".sha256")).unwrap();
        assert!(stamp.contains(&sha256_hex(&model_bytes())), "{stamp}");
        assert!(!with_suffix(&path, ".part").exists() && !with_suffix(&path, ".lock").exists());
        assert!(!with_suffix(&path, ".meta.json").exists());
        let seen = hub.seen();
        assert_eq!(seen[0].method, "HEAD");
        assert!(seen[0].path.ends_with(&format!("/resolve/main/{FILE}")), "{seen:?}");
        assert_eq!(hub.cdn_gets().len(), 1);

        // Offline: the hub is gone, and the cached file is returned without asking it.
        drop(hub);
        let (result, reports) = resolve_recording(&spec(), &options);
        assert_eq!(result.unwrap(), final_path(&cache));
        assert!(reports.is_empty());
    });
}

#[test]
fn cut_off_transfer_fails_as_incomplete_and_resumes_with_a_range_request() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("cut");
        let hub = Hub::start(Behaviour { cut_first_get_after: Some(1_000_000), ..Behaviour::normal() });
        let options = hub.options(&cache);
        let (result, _) = resolve_recording(&spec(), &options);
        let error = result.unwrap_err();
        assert!(matches!(error, FetchError::Incomplete { received, .. } if received > 0), "{error:?}");
        assert!(error.to_string().contains("resumes"), "{error}");
        let part = with_suffix(&final_path(&cache), ".part");
        let kept = std::fs::metadata(&part).unwrap().len();
        assert!(kept > 0 && kept <= 1_000_000, "{kept}");
        assert!(!final_path(&cache).exists());

        let (result, reports) = resolve_recording(&spec(), &options);
        assert_eq!(std::fs::read(result.unwrap()).unwrap(), *model_bytes());
        assert_eq!(reports.first().map(|report| report.downloaded), Some(kept));
        let gets = hub.cdn_gets();
        assert_eq!(gets.len(), 2, "{gets:?}");
        assert_eq!(gets[0].range, None);
        assert_eq!(gets[1].range.as_deref(), Some(format!("bytes={kept}-").as_str()));
    });
}

#[test]
fn bytes_that_do_not_match_the_hub_etag_fail_the_checksum_and_leave_nothing() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("corrupt");
        let mut corrupt = model_bytes().to_vec();
        corrupt[2_000_000] ^= 0xFF;
        let behaviour = Behaviour { content: Arc::new(corrupt.clone()), ..Behaviour::normal() };
        let hub = Hub::start(behaviour);
        let (result, _) = resolve_recording(&spec(), &hub.options(&cache));
        match result.unwrap_err() {
            FetchError::ChecksumMismatch { expected, actual, file } => {
                assert_eq!(expected, sha256_hex(&model_bytes()));
                assert_eq!(actual, sha256_hex(&corrupt));
                assert!(file.contains(FILE), "{file}");
            }
            other => panic!("{other:?}"),
        }
        assert_nothing_left(&cache);
    });
}

#[test]
fn a_pinned_checksum_that_differs_from_the_hub_fails_before_downloading() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("pinned");
        let hub = Hub::start(Behaviour::normal());
        let pinned = "ab".repeat(32);
        let spec = ModelSpec::parse(&format!("hf:{REPO}/{FILE}#sha256={pinned}")).unwrap();
        let (result, _) = resolve_recording(&spec, &hub.options(&cache));
        let error = result.unwrap_err();
        assert!(matches!(error, FetchError::PinnedChecksumMismatch { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("pinned checksum") && message.contains(&pinned), "{message}");
        assert!(hub.cdn_gets().is_empty(), "{:?}", hub.seen());
        assert_nothing_left(&cache);

        // The right pin downloads as usual.
        let spec = ModelSpec::parse(&format!("hf:{REPO}/{FILE}#sha256={}", sha256_hex(&model_bytes()))).unwrap();
        let (result, _) = resolve_recording(&spec, &hub.options(&cache));
        assert_eq!(result.unwrap(), final_path(&cache));
    });
}

#[test]
fn a_missing_file_is_not_found_with_a_message_naming_it() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("missing");
        let hub = Hub::start(Behaviour { not_found: true, ..Behaviour::normal() });
        let (result, _) = resolve_recording(&spec(), &hub.options(&cache));
        let error = result.unwrap_err();
        assert!(matches!(error, FetchError::NotFound { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(FILE) && message.contains(REPO) && message.contains("main"), "{message}");
        assert_eq!(hub.seen().len(), 1);
        assert_nothing_left(&cache);
    });
}

#[test]
fn a_slow_server_within_the_timeout_succeeds_with_several_progress_reports() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("slow");
        let hub = Hub::start(Behaviour { chunk_delay: Some(Duration::from_millis(25)), ..Behaviour::normal() });
        let options = FetchOptions { timeout: Duration::from_secs(2), ..hub.options(&cache) };
        let (result, reports) = resolve_recording(&spec(), &options);
        assert_eq!(std::fs::read(result.unwrap()).unwrap(), *model_bytes());
        assert!(reports.len() >= 5, "{reports:?}");
    });
}

#[test]
fn a_server_that_stalls_past_the_timeout_is_a_timeout_and_the_part_is_kept() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("stall");
        let behaviour = Behaviour { stall: Some((500_000, Duration::from_secs(4))), ..Behaviour::normal() };
        let hub = Hub::start(behaviour);
        let options = FetchOptions { timeout: Duration::from_secs(1), ..hub.options(&cache) };
        let started = Instant::now();
        let (result, _) = resolve_recording(&spec(), &options);
        let error = result.unwrap_err();
        assert!(matches!(error, FetchError::TimedOut { part: Some(_), .. }), "{error:?}");
        assert!(error.to_string().contains("did not answer within 1 s"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        let part = with_suffix(&final_path(&cache), ".part");
        assert!(std::fs::metadata(part).unwrap().len() >= 500_000);
        assert!(!final_path(&cache).exists());
        assert!(!with_suffix(&final_path(&cache), ".lock").exists());
    });
}

#[test]
fn a_server_that_ignores_range_makes_the_download_restart_from_zero() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("norange");
        let hub =
            Hub::start(Behaviour { cut_first_get_after: Some(1_000_000), ignore_range: true, ..Behaviour::normal() });
        let options = hub.options(&cache);
        let (result, _) = resolve_recording(&spec(), &options);
        assert!(matches!(result, Err(FetchError::Incomplete { .. })), "{result:?}");
        let (result, reports) = resolve_recording(&spec(), &options);
        assert_eq!(std::fs::read(result.unwrap()).unwrap(), *model_bytes());
        let gets = hub.cdn_gets();
        assert!(gets[1].range.is_some(), "{gets:?}");
        // After the 200, the count starts again from zero.
        assert_eq!(reports.first().map(|report| report.downloaded), Some(0), "{reports:?}");
    });
}

#[test]
fn the_progress_callback_can_abort_and_the_part_is_resumed_later() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("abort");
        let hub = Hub::start(Behaviour::normal());
        let options = hub.options(&cache);
        let result = resolve(&spec(), &options, &mut |progress| progress.downloaded < 1024 * 1024);
        let error = result.unwrap_err();
        assert!(matches!(error, FetchError::Aborted { .. }), "{error:?}");
        assert!(error.to_string().contains(FILE), "{error}");
        let part = with_suffix(&final_path(&cache), ".part");
        let kept = std::fs::metadata(&part).unwrap().len();
        assert!(kept >= 1024 * 1024, "{kept}");
        assert!(!with_suffix(&final_path(&cache), ".lock").exists());

        let (result, _) = resolve_recording(&spec(), &options);
        assert_eq!(std::fs::read(result.unwrap()).unwrap(), *model_bytes());
        assert_eq!(hub.cdn_gets()[1].range.as_deref(), Some(format!("bytes={kept}-").as_str()));
    });
}

#[test]
fn a_download_that_is_not_gguf_is_rejected_and_removed() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("html");
        let page = b"<!DOCTYPE html><html><body>Rate limited</body></html>".to_vec();
        // A git sha1 etag, as for a file outside LFS: nothing to verify against.
        let behaviour = Behaviour {
            linked_etag: "0123456789abcdef0123456789abcdef01234567".into(),
            linked_size: page.len(),
            content: Arc::new(page),
            ..Behaviour::normal()
        };
        let hub = Hub::start(behaviour);
        let (result, _) = resolve_recording(&spec(), &hub.options(&cache));
        let error = result.unwrap_err();
        assert!(matches!(error, FetchError::NotGguf { .. }), "{error:?}");
        assert!(error.to_string().contains("not a GGUF file"), "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
        assert_nothing_left(&cache);
    });
}

#[test]
fn a_complete_part_answered_with_416_is_verified_without_downloading_again() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("complete");
        let hub = Hub::start(Behaviour::normal());
        let options = hub.options(&cache);
        // The callback stops the download at its very last report, after every byte arrived.
        let result = resolve(&spec(), &options, &mut |progress| progress.downloaded < MODEL_LEN as u64);
        assert!(matches!(result, Err(FetchError::Aborted { .. })), "{result:?}");
        let (result, _) = resolve_recording(&spec(), &options);
        assert_eq!(std::fs::read(result.unwrap()).unwrap(), *model_bytes());
        let gets = hub.cdn_gets();
        assert_eq!(gets[1].range.as_deref(), Some(format!("bytes={MODEL_LEN}-").as_str()));
    });
}

#[test]
fn a_part_of_a_different_version_is_discarded() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("version");
        let file = final_path(&cache);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(with_suffix(&file, ".part"), b"GGUF old version bytes").unwrap();
        let meta = format!(r#"{{"etag":"{}","size":22,"sha256":null}}"#, "cd".repeat(32));
        std::fs::write(with_suffix(&file, ".meta.json"), meta).unwrap();
        let hub = Hub::start(Behaviour::normal());
        let (result, _) = resolve_recording(&spec(), &hub.options(&cache));
        assert_eq!(std::fs::read(result.unwrap()).unwrap(), *model_bytes());
        assert_eq!(hub.cdn_gets()[0].range, None);
    });
}

#[test]
fn relative_redirects_are_followed_and_the_token_stays_on_the_hub() {
    bounded(Duration::from_secs(10), || {
        let cache = TempDir::new("token");
        let hub = Hub::start(Behaviour { relative_hop: true, cdn_host: "localhost", ..Behaviour::normal() });
        let options = FetchOptions { token: Some("hf_secret".into()), ..hub.options(&cache) };
        let (result, _) = resolve_recording(&spec(), &options);
        assert_eq!(std::fs::read(result.unwrap()).unwrap(), *model_bytes());
        let seen = hub.seen();
        let heads: Vec<_> = seen.iter().filter(|seen| seen.method == "HEAD").collect();
        assert_eq!(heads.len(), 2, "{seen:?}");
        assert!(heads[1].path.starts_with("/api/resolve-cache/"), "{seen:?}");
        assert!(heads.iter().all(|head| head.authorization.as_deref() == Some("Bearer hf_secret")), "{seen:?}");
        // The CDN is on another host (`localhost`), so the token is not sent there.
        assert_eq!(hub.cdn_gets()[0].authorization, None);
    });
}

/// A fake hub, and a cache where a lock file with `owner` in it already holds the test's model.
fn locked_cache(name: &str, owner: &str) -> (TempDir, Hub, PathBuf) {
    let cache = TempDir::new(name);
    let hub = Hub::start(Behaviour::normal());
    let lock = with_suffix(&final_path(&cache), ".lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, owner).unwrap();
    (cache, hub, lock)
}

/// Asserts that resolving waits for the lock, reporting, until the callback gives up, and asks the
/// hub nothing meanwhile.
fn assert_waits_for(lock: &Path, hub: &Hub, options: &FetchOptions) {
    let mut calls = 0;
    let result = resolve(&spec(), options, &mut |_| {
        calls += 1;
        calls < 3
    });
    assert!(matches!(result, Err(FetchError::Aborted { .. })), "{result:?}");
    assert!(hub.seen().is_empty(), "{:?}", hub.seen());
    assert!(lock.exists());
}

#[test]
fn a_lock_held_by_a_live_process_is_waited_for_and_a_stale_one_is_taken_over() {
    bounded(Duration::from_secs(10), || {
        // A lock that names no owner this process can check (another machine's, an older version's).
        let (cache, hub, lock) = locked_cache("lock", "pid 1\n");
        let options = hub.options(&cache);
        assert_waits_for(&lock, &hub, &options);

        // The same lock untouched for eleven minutes belongs to a dead process.
        let old = SystemTime::now() - Duration::from_secs(11 * 60);
        std::fs::File::options().write(true).open(&lock).unwrap().set_modified(old).unwrap();
        let (result, _) = resolve_recording(&spec(), &options);
        assert_eq!(result.unwrap(), final_path(&cache));
        assert!(!lock.exists());
    });
}

#[cfg(target_os = "linux")]
#[test]
fn a_lock_whose_owner_has_exited_is_taken_over_at_once_and_a_live_owners_is_respected() {
    bounded(Duration::from_secs(10), || {
        // A fresh lock of a live process (this one) is waited for.
        let (cache, hub, lock) = locked_cache("owner", &super::cache::owner_text(std::process::id()));
        let options = hub.options(&cache);
        assert_waits_for(&lock, &hub, &options);

        // A fresh lock of a process that has exited is taken over without waiting: a report made
        // while the dead owner's lock is still there gives up.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let dead_owner = super::cache::owner_text(dead);
        std::fs::write(&lock, &dead_owner).unwrap();
        let result =
            resolve(&spec(), &options, &mut |_| std::fs::read_to_string(&lock).ok() != Some(dead_owner.clone()));
        assert_eq!(result.unwrap(), final_path(&cache));
        assert!(!lock.exists());
    });
}

#[test]
fn path_specs_are_returned_as_they_are_if_the_file_exists() {
    let cache = TempDir::new("path");
    let options = FetchOptions {
        cache_dir: cache.0.clone(),
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        timeout: Duration::from_secs(1),
    };
    let model = cache.0.join("m.gguf");
    std::fs::write(&model, b"GGUF").unwrap();
    let (result, _) = resolve_recording(&ModelSpec::Path(model.clone()), &options);
    assert_eq!(result.unwrap(), model);
    let missing = cache.0.join("missing.gguf");
    let (result, _) = resolve_recording(&ModelSpec::Path(missing), &options);
    let error = result.unwrap_err();
    assert!(matches!(error, FetchError::Missing { .. }) && error.to_string().contains("missing.gguf"), "{error}");
    let (result, _) = resolve_recording(&ModelSpec::Path(cache.0.clone()), &options);
    assert!(matches!(result, Err(FetchError::Missing { .. })), "{result:?}");
}

#[test]
fn hub_names_that_would_leave_the_cache_are_refused() {
    let cache = TempDir::new("escape");
    let options = FetchOptions {
        cache_dir: cache.0.clone(),
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        timeout: Duration::from_secs(1),
    };
    let spec = ModelSpec::parse("hf:o/r/../../../../etc/f.gguf").unwrap();
    let (result, _) = resolve_recording(&spec, &options);
    assert!(matches!(result, Err(FetchError::Unsupported { .. })), "{result:?}");
}

#[test]
fn a_stamp_that_does_not_match_the_file_is_not_trusted() {
    let cache = TempDir::new("stamp");
    let file = final_path(&cache);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"GGUF truncated").unwrap();
    std::fs::write(with_suffix(&file, ".sha256"), format!("# size 999\n{}  {FILE}\n", "ab".repeat(32))).unwrap();
    let options = FetchOptions {
        cache_dir: cache.0.clone(),
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        timeout: Duration::from_secs(1),
    };
    // The stamp does not vouch for the file, so the hub is asked (and here cannot be reached).
    let (result, _) = resolve_recording(&spec(), &options);
    assert!(matches!(result, Err(FetchError::Network { .. })), "{result:?}");
}
