//! Conversions between LSP types and the core's plain types. Positions are converted only here.

use tower_lsp_server::gen_lsp_types::{Position, PositionEncodingKind, Range};
use tower_lsp_server::jsonrpc;

use crate::documents::{position, Encoding, LineCol, Snapshot};

pub fn line_col(position: Position) -> LineCol {
    LineCol { line: position.line, column: position.character }
}

pub fn position(pos: LineCol) -> Position {
    Position { line: pos.line, character: pos.column }
}

/// The LSP range of a byte range in a snapshot.
pub fn range(snapshot: &Snapshot, start: usize, end: usize, encoding: Encoding) -> Range {
    Range {
        start: position(position::line_col(&snapshot.text, start, encoding)),
        end: position(position::line_col(&snapshot.text, end, encoding)),
    }
}

pub fn encoding_kind(encoding: Encoding) -> PositionEncodingKind {
    match encoding {
        Encoding::Utf8 => PositionEncodingKind::UTF8,
        Encoding::Utf16 => PositionEncodingKind::UTF16,
        Encoding::Utf32 => PositionEncodingKind::UTF32,
    }
}

/// Picks the client's most preferred encoding that we support; UTF-16 when it names none.
pub fn negotiate(offered: Option<&[PositionEncodingKind]>) -> Encoding {
    offered
        .unwrap_or_default()
        .iter()
        .find_map(|kind| match kind {
            PositionEncodingKind::UTF8 => Some(Encoding::Utf8),
            PositionEncodingKind::UTF16 => Some(Encoding::Utf16),
            PositionEncodingKind::UTF32 => Some(Encoding::Utf32),
            _ => None,
        })
        .unwrap_or(Encoding::Utf16)
}

/// An error answer for a document that is not open.
pub fn unknown_document(uri: &str) -> jsonrpc::Error {
    jsonrpc::Error::invalid_params(format!("document is not open: {uri}"))
}
