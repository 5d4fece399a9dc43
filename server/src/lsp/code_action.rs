//! `textDocument/codeAction`: "Explain this code" on the selection, or on the function, class or
//! impl around the cursor, as a `mistral-lsp.explain` command (see `explain`); "Document this
//! function" on an undocumented function, whose edit `codeAction/resolve` writes (see `document`);
//! "Review this function" (or selection) as a `mistral-lsp.review` command, and the quick fixes of
//! review findings on the range (see `review`).

use serde_json::{json, Value};
use tower_lsp_server::gen_lsp_types::{CodeActionParams, CodeActionResponse, Uri};
use tower_lsp_server::jsonrpc::{Error, Result};

use super::convert;
use super::server::Server;
use super::session::ClientSupport;

/// The kind of the explain action: none in particular (`CodeActionKind.Empty`), since it neither
/// fixes nor refactors.
pub const EXPLAIN_KIND: &str = "";

/// The kind of the document action: it rewrites the code around the cursor.
pub const DOCUMENT_KIND: &str = "refactor.rewrite";

/// The kind of a review finding's fix.
pub const QUICKFIX_KIND: &str = "quickfix";

pub async fn handle(server: &Server, params: CodeActionParams) -> Result<Option<Vec<CodeActionResponse>>> {
    let session = &server.session;
    let only = params.context.only.as_deref();
    let wanted = |kind: &str| {
        only.is_none_or(|only| only.iter().any(|k| kind == k.as_str() || kind.starts_with(&format!("{}.", k.as_str()))))
    };
    let uri: &Uri = &params.text_document.uri;
    let range = params.range;
    let request = session
        .workspace
        .explain_request(uri.as_ref(), convert::line_col(range.start), convert::line_col(range.end), session.encoding())
        .await
        .map_err(|err| Error::invalid_params(err.to_string()))?;
    let support = *session.client.read();
    let mut actions = Vec::new();
    if wanted(EXPLAIN_KIND) {
        if let Ok(target) = crate::explain::target(&request) {
            let explained = convert::range(&request.snapshot, target.start, target.end, session.encoding());
            let arguments = json!([{"uri": uri, "range": explained}]);
            actions.push(action(&support, "Explain this code", EXPLAIN_KIND, super::explain::COMMAND, arguments, None));
        }
    }
    if wanted(EXPLAIN_KIND) {
        if let Ok(part) = crate::review::part_at(&request) {
            let reviewed = convert::range(&request.snapshot, part.target.start, part.target.end, session.encoding());
            let title = if part.target.kind == "selection" { "Review this selection" } else { "Review this function" };
            let arguments = json!([{"uri": uri, "range": reviewed}]);
            actions.push(action(&support, title, EXPLAIN_KIND, super::review::COMMAND, arguments, None));
        }
    }
    if wanted(QUICKFIX_KIND) && support.code_action_literals {
        for fix in super::review::quick_fixes(session, uri, range) {
            actions.push(fix);
        }
    }
    // Only where the edit can reach the editor: resolved into the action, or applied by the server.
    let document_offered = support.code_action_literals && support.resolve_edit || support.apply_edit;
    if wanted(DOCUMENT_KIND) && document_offered && crate::explain::doc_site(&request).is_some() {
        let at = json!({"uri": uri, "position": range.start, "version": request.snapshot.version});
        let command = super::document::COMMAND;
        let resolved = support.code_action_literals && support.resolve_edit;
        let data = resolved.then(|| at.clone());
        actions.push(action(&support, "Document this function", DOCUMENT_KIND, command, json!([at]), data));
    }
    let actions = actions
        .into_iter()
        .map(serde_json::from_value)
        .collect::<std::result::Result<Vec<CodeActionResponse>, _>>()
        .map_err(|err| {
            tracing::error!("building a code action: {err}");
            Error::internal_error()
        })?;
    Ok((!actions.is_empty()).then_some(actions))
}

/// A code action, or a bare command for clients that take no literals. With `data`, the action is
/// resolved later (`codeAction/resolve`) and carries no command.
fn action(
    support: &ClientSupport,
    title: &str,
    kind: &str,
    command: &str,
    arguments: Value,
    data: Option<Value>,
) -> Value {
    let command = json!({"title": title, "command": command, "arguments": arguments});
    if !support.code_action_literals {
        return command;
    }
    let mut action = json!({"title": title, "kind": kind});
    match data {
        Some(data) => action["data"] = data,
        None => action["command"] = command,
    }
    if support.llm_generated_tag {
        action["tags"] = json!([1]);
    }
    action
}
