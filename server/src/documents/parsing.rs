//! The one thread that parses documents, and giving the memory of old trees back to the system.
//!
//! Parses run here rather than on tokio's blocking pool: a keystroke storm on the pool spreads
//! parses over many threads, and glibc's allocator gives each its own arena, where the freed
//! nodes of old trees stay as fragments (a soak of 300,000 edits grew to 3.5 times its starting
//! memory that way, half of it free memory that the allocator kept). One thread keeps parse
//! allocations in one arena; after parsing, at most once a second, free pages are returned.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

type Work = Box<dyn FnOnce() + Send>;

/// How often, at most, free memory is handed back while parses keep coming.
const TRIM_EVERY: Duration = Duration::from_secs(1);

static QUEUE: OnceLock<Mutex<Sender<Work>>> = OnceLock::new();

/// Runs `work` on the parse thread, after the work queued before it; starts the thread the first
/// time. Where the thread cannot be started, runs `work` on the calling thread.
pub fn run_later(work: Work) {
    let queue = QUEUE.get_or_init(|| Mutex::new(start()));
    if let Err(mpsc::SendError(work)) = queue.lock().send(work) {
        work();
    }
}

fn start() -> Sender<Work> {
    let (sender, receiver) = mpsc::channel::<Work>();
    #[allow(clippy::disallowed_methods, reason = "parses run on one thread of their own")]
    let spawned = std::thread::Builder::new().name("mistral-lsp-parse".into()).spawn(move || {
        let mut last_trim = Instant::now();
        let mut untrimmed = false;
        loop {
            match receiver.recv_timeout(TRIM_EVERY) {
                Ok(work) => {
                    work();
                    untrimmed = true;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if untrimmed && last_trim.elapsed() >= TRIM_EVERY {
                release_free_memory();
                last_trim = Instant::now();
                untrimmed = false;
            }
        }
    });
    if let Err(err) = spawned {
        tracing::error!("cannot start the parse thread, parsing on the message loop instead: {err}");
    }
    sender
}

/// Returns the allocator's free pages to the system (glibc keeps them otherwise).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: `malloc_trim` takes no pointers and is thread-safe: glibc locks each arena in turn.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
