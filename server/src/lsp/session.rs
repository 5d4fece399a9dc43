//! The server's shared state: documents, settings, the engine and what the client can do.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use tower_lsp_server::gen_lsp_types::MessageType;
use tower_lsp_server::Client;

use crate::config::{Options, Problem, Settings};
use crate::documents::Encoding;
use crate::engine::Engine;
use crate::workspace::Workspace;

/// Problems remembered as shown, at most.
const MAX_REPORTED: usize = 1024;

/// What the client said it supports, from `initialize`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientSupport {
    pub work_done_progress: bool,
    pub configuration: bool,
    /// Code actions as literals (else as bare commands).
    pub code_action_literals: bool,
    /// The `LLMGenerated` code action tag (LSP 3.18).
    pub llm_generated_tag: bool,
    /// `codeAction/resolve` may fill in a code action's `edit`.
    pub resolve_edit: bool,
    /// `workspace/applyEdit` requests.
    pub apply_edit: bool,
    /// Versioned `documentChanges` in workspace edits.
    pub document_changes: bool,
}

/// Shared state behind every handler: the workspace, and what only the LSP side knows.
pub struct Session {
    pub workspace: Workspace,
    pub encoding: RwLock<Encoding>,
    pub client: RwLock<ClientSupport>,
    /// Options from the environment and the command line.
    pub base_options: Options,
    /// Options from the editor, latest last.
    pub editor_options: Mutex<Options>,
    /// Why the model setting cannot be used, while it cannot; no engine runs meanwhile.
    pub model_error: Mutex<Option<String>>,
    pub tickets: Tickets,
    pub initialized: AtomicBool,
    pub shutdown_requested: AtomicBool,
    /// Set when settings that the engine depends on changed and it has not restarted yet.
    pub engine_restart_pending: AtomicBool,
    /// Problems already shown to the user, so each is shown once.
    reported: Mutex<HashSet<String>>,
    /// Problems found before the client could be told (command line, environment).
    pub pending_problems: Mutex<Vec<Problem>>,
    /// The client, for messages from code that runs outside a handler (the ordered layer).
    pub lsp_client: OnceLock<Client>,
    /// One engine start at a time ([`super::progress::start_engine`]).
    pub engine_turn: tokio::sync::Mutex<()>,
    /// An engine (re)start was asked for and has not begun yet.
    pub engine_wanted: AtomicBool,
    /// The longest time, in microseconds, that the message loop spent on one message.
    pub longest_stall_us: AtomicU64,
    /// The most CPU time, in microseconds, that the message loop spent on one message (the
    /// wall time above also counts waiting for a core).
    pub longest_stall_cpu_us: AtomicU64,
    /// Set when the client's input ended: nothing more will be asked, so nothing runs on.
    pub input_closed: AtomicBool,
    /// Review findings per document URI, kept in step with its edits (see `review`).
    pub findings: Mutex<std::collections::HashMap<String, Vec<crate::postprocess::findings::Finding>>>,
    /// The review each saved document waits for or runs (`review.onSave`); a newer save cancels it.
    pub save_reviews: Mutex<std::collections::HashMap<String, crate::engine::CancelToken>>,
    /// The edits of documents that reviews are running on, so that their findings land where
    /// their lines are when they end (see `journal::Journal`).
    pub review_journals: Mutex<std::collections::HashMap<String, super::journal::Journal>>,
}

impl Session {
    pub fn new(base_options: Options, problems: Vec<Problem>) -> Arc<Session> {
        Arc::new(Session {
            workspace: Workspace::new(Settings::resolve(&base_options)),
            encoding: RwLock::new(Encoding::Utf16),
            client: RwLock::new(ClientSupport::default()),
            base_options,
            editor_options: Mutex::new(Options::default()),
            model_error: Mutex::new(None),
            tickets: Tickets::default(),
            initialized: AtomicBool::new(false),
            shutdown_requested: AtomicBool::new(false),
            engine_restart_pending: AtomicBool::new(false),
            reported: Mutex::new(HashSet::new()),
            pending_problems: Mutex::new(problems),
            lsp_client: OnceLock::new(),
            input_closed: AtomicBool::new(false),
            engine_turn: tokio::sync::Mutex::new(()),
            engine_wanted: AtomicBool::new(false),
            longest_stall_us: AtomicU64::new(0),
            longest_stall_cpu_us: AtomicU64::new(0),
            findings: Mutex::new(Default::default()),
            save_reviews: Mutex::new(Default::default()),
            review_journals: Mutex::new(Default::default()),
        })
    }

    pub fn encoding(&self) -> Encoding {
        *self.encoding.read()
    }

    pub fn settings(&self) -> Settings {
        self.workspace.settings()
    }

    pub fn engine(&self) -> Option<Engine> {
        self.workspace.engine()
    }

    /// Re-resolves settings from the base options and the editor's; returns the new settings.
    pub fn resolve_settings(&self) -> Settings {
        let mut options = self.base_options.clone();
        options.merge(&self.editor_options.lock());
        let settings = Settings::resolve(&options);
        self.workspace.set_settings(settings.clone());
        settings
    }

    /// Shows a message to the user the first time it comes up, without waiting for the client.
    pub fn show_once(&self, kind: MessageType, message: String) {
        if !self.first_report(&message) {
            return;
        }
        if let (Some(client), Ok(runtime)) = (self.lsp_client.get(), tokio::runtime::Handle::try_current()) {
            let client = client.clone();
            runtime.spawn(async move { client.show_message(kind, message).await });
        }
    }

    /// The client is gone (its input ended): stops every completion and speculation at once.
    pub fn cancel_everything(&self) {
        self.input_closed.store(true, Ordering::Release);
        self.tickets.supersede_all();
        self.workspace.stop_speculating();
    }

    /// Returns true the first time a problem is seen.
    pub fn first_report(&self, message: &str) -> bool {
        let mut reported = self.reported.lock();
        // Messages can name documents: a client sending endless new ones must not grow this
        // without bound. Forgetting them all only means a message may be shown once more.
        if reported.len() >= MAX_REPORTED {
            reported.clear();
        }
        reported.insert(message.to_owned())
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Acquire)
    }
}

/// Per-document counters of completion requests, in the order they arrived on the wire.
///
/// A request whose number is no longer the latest for its document has been superseded and
/// stops, even if the client never cancels it.
#[derive(Default)]
pub struct Tickets {
    latest: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

/// One completion request's place in its document's sequence.
#[derive(Clone, Debug)]
pub struct Ticket {
    pub latest: Arc<AtomicU64>,
    pub mine: u64,
}

impl Ticket {
    pub fn is_superseded(&self) -> bool {
        self.latest.load(Ordering::Acquire) != self.mine
    }
}

impl Tickets {
    /// Issues the next ticket for `uri`, superseding every earlier one.
    pub fn issue(&self, uri: &str) -> Ticket {
        let latest = self.latest.lock().entry(uri.to_owned()).or_default().clone();
        let mine = latest.fetch_add(1, Ordering::AcqRel) + 1;
        Ticket { latest, mine }
    }

    pub fn forget(&self, uri: &str) {
        self.latest.lock().remove(uri);
    }

    /// How many documents have tickets.
    pub fn len(&self) -> usize {
        self.latest.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Supersedes every ticket issued so far.
    pub fn supersede_all(&self) {
        for latest in self.latest.lock().values() {
            latest.fetch_add(1, Ordering::AcqRel);
        }
    }
}
