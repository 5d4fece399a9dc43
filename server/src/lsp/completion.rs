//! `textDocument/completion`: the same suggestion as a completion item, for clients without
//! inline completion.

use serde_json::json;
use tower_lsp_server::gen_lsp_types::{CompletionParams, CompletionResponse};
use tower_lsp_server::jsonrpc::{Error, Result};

use super::convert;
use super::inline_completion::suggest;
use super::server::Server;
use crate::completion::decide::Trigger;

pub async fn handle(server: &Server, params: CompletionParams) -> Result<Option<CompletionResponse>> {
    let (snapshot, suggestions) =
        suggest(server, &params.text_document_position_params, Trigger::Invoked, false).await?;
    let Some(suggestion) = suggestions.into_iter().next() else {
        return Ok(Some(CompletionResponse::CompletionItemList(Vec::new())));
    };
    let encoding = server.session.encoding();
    let label = suggestion.text.lines().find(|line| !line.trim().is_empty()).unwrap_or_default().trim().to_owned();
    let item = json!({
        "label": label,
        "kind": 1,
        "detail": "mistral-lsp",
        "documentation": {"kind": "markdown", "value": format!("```\n{}\n```", suggestion.text)},
        "insertTextFormat": 1,
        "filterText": label,
        "sortText": "0",
        "preselect": true,
        "textEdit": {
            "range": convert::range(&snapshot, suggestion.start, suggestion.end, encoding),
            "newText": suggestion.text,
        },
    });
    let response =
        serde_json::from_value(json!({"isIncomplete": true, "items": [item]})).map_err(|_| Error::internal_error())?;
    Ok(Some(response))
}
