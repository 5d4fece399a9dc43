//! The syntax check: splice a candidate into the buffer, re-parse it with tree-sitter, and keep
//! only as much of the candidate as adds no syntax errors the buffer did not already have.

use ropey::Rope;
use tree_sitter::{Node, Tree};

use crate::syntax::{self, Language};

/// Returns the longest prefix of `candidate` (whole lines, the first line at least) that, spliced
/// in at `cursor` in place of `cursor..replace_end`, adds no error nodes. Empty if even the first
/// line does.
pub fn keep_valid(
    language: Language,
    text: &Rope,
    tree: &Tree,
    cursor: usize,
    replace_end: usize,
    candidate: &str,
) -> String {
    let before = errors(tree.root_node());
    let mut lines: Vec<&str> = candidate.split('\n').collect();
    while !lines.is_empty() {
        let attempt = lines.join("\n");
        match spliced_errors(language, text, tree, cursor, replace_end, &attempt) {
            Some(after) if after <= before => return attempt,
            // Too large to parse: no judgement possible, keep the candidate as it is.
            None => return attempt,
            Some(_) => {
                lines.pop();
            }
        }
    }
    String::new()
}

fn spliced_errors(
    language: Language,
    text: &Rope,
    tree: &Tree,
    cursor: usize,
    replace_end: usize,
    insert: &str,
) -> Option<usize> {
    let mut rope = text.clone();
    let start_char = rope.byte_to_char(cursor);
    let end_char = rope.byte_to_char(replace_end.max(cursor));
    let before = rope.clone();
    rope.remove(start_char..end_char);
    rope.insert(start_char, insert);
    let mut edited = tree.clone();
    edited.edit(&syntax::edit_for(&before, &rope, cursor, replace_end.max(cursor), insert.len()));
    let parsed = syntax::parse(language, &rope, Some(&edited))?;
    Some(errors(parsed.root_node()))
}

/// Counts ERROR and MISSING nodes.
fn errors(root: Node) -> usize {
    if !root.has_error() {
        return 0;
    }
    let mut count = 0;
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            count += 1;
        }
        let descend = node.has_error() && !node.is_error() && cursor.goto_first_child();
        if descend {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return count;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `$0` marks the cursor.
    fn check(language: Language, marked: &str, candidate: &str, expected: &str) {
        let cursor = marked.find("$0").expect("no cursor marker");
        let text = Rope::from_str(&marked.replacen("$0", "", 1));
        let tree = syntax::parse(language, &text, None).unwrap();
        assert_eq!(
            keep_valid(language, &text, &tree, cursor, cursor, candidate),
            expected,
            "{marked:?} + {candidate:?}"
        );
    }

    #[test]
    fn a_valid_candidate_is_kept_whole() {
        check(Language::Python, "def f(a, b):\n    return $0\n", "a + b", "a + b");
        check(Language::Rust, "fn f() -> i32 {\n    $0\n}\n", "let x = 1;\n    x + 1", "let x = 1;\n    x + 1");
    }

    #[test]
    fn lines_that_break_the_syntax_are_dropped() {
        // The model ran on into a half statement.
        check(Language::Python, "def f(a, b):\n    $0\n", "s = a + b\n    return (s", "s = a + b");
        check(Language::Rust, "fn f() {\n    $0\n}\n", "let x = 1;\n    }\n}", "let x = 1;");
    }

    #[test]
    fn a_first_line_that_breaks_the_syntax_is_rejected() {
        check(Language::Python, "x = [1, 2]\n$0\n", ") + ]", "");
    }

    #[test]
    fn errors_already_in_the_buffer_do_not_count() {
        // The user is mid-way through typing: the buffer is broken before and after.
        check(Language::Python, "def f(:\n    return $0\n", "1", "1");
    }
}
