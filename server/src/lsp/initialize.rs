//! `initialize`: negotiate the position encoding, read the editor's options, advertise capabilities.
//!
//! It answers at once; the model loads later, in the background (see `initialized`).

use serde_json::json;
use tower_lsp_server::gen_lsp_types::{
    CodeActionTag, InitializeParams, InitializeResult, ServerCapabilities, ServerInfo, WorkspaceFolders,
};
use tower_lsp_server::jsonrpc::Result;

use super::convert;
use super::server::Server;
use super::session::ClientSupport;
use crate::config::Options;

/// Commands the server executes through `workspace/executeCommand`.
pub const COMMANDS: &[&str] =
    &[super::execute_command::STATUS, super::explain::COMMAND, super::document::COMMAND, super::review::COMMAND];

pub fn handle(server: &Server, params: InitializeParams) -> Result<InitializeResult> {
    let session = &server.session;
    let capabilities = &params.capabilities;
    let offered = capabilities.general.as_ref().and_then(|general| general.position_encodings.as_deref());
    let encoding = convert::negotiate(offered);
    let code_actions = capabilities.text_document.as_ref().and_then(|t| t.code_action.as_ref());
    let workspace = capabilities.workspace.as_ref();
    *session.encoding.write() = encoding;
    *session.client.write() = ClientSupport {
        work_done_progress: capabilities.window.as_ref().and_then(|w| w.work_done_progress).unwrap_or(false),
        configuration: workspace.and_then(|w| w.configuration).unwrap_or(false),
        code_action_literals: code_actions.is_some_and(|c| c.code_action_literal_support.is_some()),
        llm_generated_tag: code_actions
            .and_then(|c| c.tag_support.as_ref())
            .is_some_and(|tags| tags.value_set.contains(&CodeActionTag::LLMGenerated)),
        resolve_edit: code_actions
            .and_then(|c| c.resolve_support.as_ref())
            .is_some_and(|resolve| resolve.properties.iter().any(|p| p == "edit")),
        apply_edit: workspace.and_then(|w| w.apply_edit).unwrap_or(false),
        document_changes: workspace
            .and_then(|w| w.workspace_edit.as_ref())
            .and_then(|edit| edit.document_changes)
            .unwrap_or(false),
    };
    if let Some(options) = &params.initialization_options {
        let mut problems = Vec::new();
        *session.editor_options.lock() = Options::from_json(options, "initializationOptions", &mut problems);
        session.pending_problems.lock().extend(problems);
    }
    session.resolve_settings();
    #[allow(deprecated, reason = "older clients send only rootUri")]
    let root_uri = params
        .workspace_folders_initialize_params
        .workspace_folders
        .as_ref()
        .and_then(|folders| match folders {
            WorkspaceFolders::WorkspaceFolderList(list) => list.first(),
            WorkspaceFolders::Null => None,
        })
        .map(|folder| folder.uri.as_ref().to_owned())
        .or_else(|| params.root_uri.as_ref().map(|uri| uri.as_ref().to_owned()));
    session.workspace.set_root(root_uri.as_deref().and_then(crate::documents::uri::to_path));
    tracing::info!("initialize: position encoding {encoding:?}");

    let capabilities = json!({
        "positionEncoding": convert::encoding_kind(encoding),
        "textDocumentSync": {"openClose": true, "change": 2, "save": {"includeText": false}},
        "inlineCompletionProvider": {},
        "completionProvider": {"resolveProvider": false, "triggerCharacters": []},
        "executeCommandProvider": {"commands": COMMANDS},
        // "Explain this code" is a command behind a code action of no particular kind; "Document
        // this function" a rewrite whose edit is written when it is resolved.
        "codeActionProvider": {
            "codeActionKinds": [super::code_action::EXPLAIN_KIND, super::code_action::DOCUMENT_KIND, super::code_action::QUICKFIX_KIND],
            "resolveProvider": true,
        },
    });
    let capabilities: ServerCapabilities = serde_json::from_value(capabilities).map_err(|err| {
        tracing::error!("building capabilities: {err}");
        tower_lsp_server::jsonrpc::Error::internal_error()
    })?;
    Ok(InitializeResult {
        capabilities,
        server_info: Some(ServerInfo { name: "mistral-lsp".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
    })
}
