//! The job queue between the server and the worker: highest priority first, then oldest first.

use std::collections::BinaryHeap;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::{CancelToken, EngineError, Job, Output};

/// Interactive work runs before background work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
struct Inner {
    heap: BinaryHeap<Queued>,
    counter: u64,
    closed: bool,
}

#[derive(Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl Queue {
    pub fn push(&self, entry: Entry) {
        let mut inner = self.inner.lock();
        if inner.closed {
            let _ = entry.reply.send(Err(EngineError::Failed("the engine was stopped".into())));
            return;
        }
        inner.counter += 1;
        let order = inner.counter;
        inner.heap.push(Queued { priority: entry.job.priority, order, entry });
        self.ready.notify_one();
    }

    /// Blocks until a job is there; `None` once the queue is closed. Jobs cancelled while queued
    /// are answered and skipped.
    pub fn pop(&self) -> Option<Entry> {
        let mut inner = self.inner.lock();
        loop {
            if inner.closed {
                return None;
            }
            if let Some(entry) = Self::take_live(&mut inner, None) {
                return Some(entry);
            }
            self.ready.wait(&mut inner);
        }
    }

    /// Takes a waiting job of higher priority than `than`, without blocking.
    pub fn pop_higher(&self, than: super::Priority) -> Option<Entry> {
        let mut inner = self.inner.lock();
        Self::take_live(&mut inner, Some(than))
    }

    fn take_live(inner: &mut Inner, above: Option<Priority>) -> Option<Entry> {
        loop {
            let top = inner.heap.peek()?;
            if above.is_some_and(|above| top.priority <= above) {
                return None;
            }
            let queued = inner.heap.pop()?;
            if queued.entry.cancel.is_cancelled() {
                let _ = queued.entry.reply.send(Err(EngineError::Cancelled));
                continue;
            }
            return Some(queued.entry);
        }
    }

    /// Stops the worker after its current job; queued jobs are answered with an error.
    pub fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        for queued in inner.heap.drain() {
            let _ = queued.entry.reply.send(Err(EngineError::Cancelled));
        }
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }
}
