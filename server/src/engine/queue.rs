//! The job queue between the server and the worker: highest priority first, then oldest first.

use std::collections::BinaryHeap;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::{CancelToken, EngineError, Job, Output};

/// Interactive work runs before background work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Cache pre-warming and speculative work.
    Idle,
    /// Explanations and reviews.
    Background,
    /// Completions a person is waiting for.
    Interactive,
}

pub(crate) struct Entry {
    pub job: Job,
    pub cancel: CancelToken,
    pub reply: oneshot::Sender<Result<Output, EngineError>>,
}

struct Queued {
    priority: Priority,
    order: u64,
    entry: Entry,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.order) == (other.priority, other.order)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Higher priority first; among equals the lower order (older) first.
        self.priority.cmp(&other.priority).then(other.order.cmp(&self.order))
    }
}

#[derive(Default)]
pub(crate) struct Queue {
    heap: Mutex<(BinaryHeap<Queued>, u64)>,
    ready: Condvar,
}

impl Queue {
    pub fn push(&self, entry: Entry) {
        let mut guard = self.heap.lock();
        let (heap, counter) = &mut *guard;
        *counter += 1;
        heap.push(Queued { priority: entry.job.priority, order: *counter, entry });
        self.ready.notify_one();
    }

    /// Blocks until a job is there. Jobs cancelled while queued are answered and skipped.
    pub fn pop(&self) -> Entry {
        let mut guard = self.heap.lock();
        loop {
            while let Some(queued) = guard.0.pop() {
                if queued.entry.cancel.is_cancelled() {
                    let _ = queued.entry.reply.send(Err(EngineError::Cancelled));
                    continue;
                }
                return queued.entry;
            }
            self.ready.wait(&mut guard);
        }
    }
}
