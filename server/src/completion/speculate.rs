//! Speculation: the document as it will be once a suggestion is accepted and the user starts the
//! next line, so that the suggestion for that line can be worked out while the user reads.

use crate::documents::{Document, Snapshot};

use super::Suggestion;

/// The document with `shown` accepted and a line break typed after it, and the cursor at the
/// start of the new line. `None` when text follows the suggestion on its line: the user is not
/// about to start a new line there.
pub fn accepted(snapshot: &Snapshot, shown: &Suggestion) -> Option<(Document, usize)> {
    let text = &snapshot.text;
    let end_line = text.byte_to_line(shown.end.min(text.len_bytes()));
    let line_end = text.line_to_byte(end_line) + text.line(end_line).len_bytes();
    let rest = text.byte_slice(shown.end..line_end).to_string();
    if !rest.trim().is_empty() || shown.text.trim().is_empty() {
        return None;
    }
    let mut inserted = shown.text.trim_end_matches([' ', '\t']).to_owned();
    inserted.push('\n');
    // Trailing whitespace after the suggestion goes with the line break.
    let end = shown.end + rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let cursor = shown.start + inserted.len();
    Some((snapshot.edited(shown.start, end, &inserted), cursor))
}

/// Whether an output made for an unindented line serves a line with `indentation` typed: it
/// begins with exactly that indentation.
pub fn indented_as(output: &str, indentation: &str) -> bool {
    output.strip_prefix(indentation).is_some_and(|rest| !rest.starts_with([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `$0` marks the cursor; the suggestion is inserted there. Returns the accepted document
    /// with `$0` at its cursor.
    fn check(marked: &str, suggestion: &str) -> Option<String> {
        let cursor = marked.find("$0").unwrap();
        let snapshot = Document::new("file:///t.py", "python", 1, &marked.replacen("$0", "", 1)).snapshot();
        let shown = Suggestion { text: suggestion.into(), start: cursor, end: cursor };
        let (document, at) = accepted(&snapshot, &shown)?;
        let mut text = document.text.to_string();
        text.insert_str(at, "$0");
        Some(text)
    }

    #[test]
    fn an_accepted_line_is_followed_by_a_new_line() {
        assert_eq!(check("def f(a):\n    $0\n", "return a"), Some("def f(a):\n    return a\n$0\n".into()));
        assert_eq!(
            check("for x in xs:\n$0\nprint(1)\n", "    y = x\n    z = y"),
            Some("for x in xs:\n    y = x\n    z = y\n$0\nprint(1)\n".into())
        );
        assert_eq!(check("x = $0   \n", "1  "), Some("x = 1\n$0\n".into()), "trailing blanks go");
    }

    #[test]
    fn no_speculation_mid_line_or_for_blank_suggestions() {
        assert_eq!(check("x = f($0)\n", "a"), None);
        assert_eq!(check("x = $0\n", "  "), None);
    }

    #[test]
    fn unindented_outputs_serve_their_own_indentation_only() {
        assert!(indented_as("    return a", "    "));
        assert!(!indented_as("        return a", "    "));
        assert!(!indented_as("return a", "    "));
        assert!(indented_as("return a", ""));
    }
}
