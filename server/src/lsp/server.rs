//! The tower-lsp `LanguageServer` implementation: one line per method, delegating to its file.

use std::sync::Arc;

use tower_lsp_server::gen_lsp_types::*;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::{Client, LanguageServer};

use super::session::Session;

pub struct Server {
    pub client: Client,
    pub session: Arc<Session>,
}

impl Server {
    pub fn new(client: Client, session: Arc<Session>) -> Server {
        Server { client, session }
    }
}

impl LanguageServer for Server {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        super::initialize::handle(self, params)
    }

    async fn initialized(&self, _: InitializedParams) {
        super::initialized::handle(self).await;
    }

    async fn shutdown(&self) -> Result<()> {
        super::shutdown::handle(self)
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        super::did_save::handle(self, params);
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        super::did_change_configuration::handle(self, params).await;
    }

    async fn inline_completion(&self, params: InlineCompletionParams) -> Result<Option<InlineCompletionResponse>> {
        super::inline_completion::handle(self, params).await
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        super::completion::handle(self, params).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LspAny>> {
        super::execute_command::handle(self, params).await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<Vec<CodeActionResponse>>> {
        super::code_action::handle(self, params).await
    }

    async fn code_action_resolve(&self, params: CodeAction) -> Result<CodeAction> {
        super::document::resolve(self, params).await
    }
}
