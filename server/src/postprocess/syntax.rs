//! The syntax check: splice a candidate into the buffer, re-parse it with tree-sitter, and keep
//! only as much of the candidate as adds no syntax errors the buffer did not already have.

use ropey::Rope;
use tree_sitter::{Node, Tree};

use super::layout;
use crate::syntax::{self, Language};

/// Returns the longest prefix of `candidate` (whole lines, the first line at least) that, spliced
/// in at `cursor` in place of `cursor..replace_end`, adds no error nodes. Empty if even the first
/// line does.
///
/// A candidate that a budget cut before the model finished (`unfinished`) may end inside blocks
/// it opened itself: when no prefix is valid as it stands, the longest one that would be valid
/// with its open brackets closed is kept (a slow model cut 1.5 s after the first line of a new
/// function or `if` would otherwise show nothing at all; the user accepts the start and the
/// next completion goes on).
pub fn keep_valid(
    language: Language,
    text: &Rope,
    tree: &Tree,
    cursor: usize,
    replace_end: usize,
    candidate: &str,
    unfinished: bool,
) -> String {
    let before = errors(tree.root_node());
    // Too large to parse (`None`): no judgement possible, the candidate is kept as it is.
    let valid =
        |attempt: &str| errors_after(language, text, tree, cursor, replace_end, attempt).is_none_or(|e| e <= before);
    let lines: Vec<&str> = candidate.split('\n').collect();
    let prefixes = || (1..=lines.len()).rev().map(|n| lines[..n].join("\n"));
    if let Some(whole) = prefixes().find(|attempt| valid(attempt)) {
        return whole;
    }
    if unfinished {
        let lexicon = crate::syntax::lexicon::lexicon(language.name());
        let closed = |attempt: &str| {
            let closers = lexicon.unclosed(attempt);
            !closers.is_empty() && valid(&format!("{attempt}\n{closers}"))
        };
        if let Some(open) = prefixes().find(|attempt| closed(attempt)) {
            return open;
        }
    }
    String::new()
}

/// Syntax errors of the buffer and how a candidate changes them, to rank candidates: one that
/// repairs the hole the cursor is in (a block's body with no header, a call's missing arguments)
/// beats one that leaves it broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errors {
    /// ERROR and MISSING nodes in the buffer as it is.
    pub before: usize,
    /// Whether one of them is near the cursor: within the lines around it, or around it.
    pub near_cursor: bool,
}

impl Errors {
    pub fn of(language: Language, text: &Rope, tree: &Tree, cursor: usize) -> Errors {
        let root = tree.root_node();
        let line = text.byte_to_line(cursor.min(text.len_bytes()));
        let breaches = local_breaches(language, text, line, line);
        let before = errors(root) + breaches;
        if before == 0 {
            return Errors { before, near_cursor: false };
        }
        let from = text.line_to_byte(line.saturating_sub(1));
        let to = text.line_to_byte((line + NEAR_LINES).min(text.len_lines()));
        let mut near_cursor = breaches > 0;
        visit_errors(root, &mut |node| {
            let starts_near = (from..to).contains(&node.start_byte());
            let around = node.start_byte() <= cursor && cursor <= node.end_byte();
            near_cursor |= starts_near || around;
        });
        Errors { before, near_cursor }
    }

    /// Whether a candidate is worth ranking by the errors it leaves.
    pub fn repairable(&self) -> bool {
        self.near_cursor
    }

    /// The errors left when `insert` replaces `cursor..replace_end`, counted as [`Errors::of`]
    /// counts them; `None` when the text is too large to parse.
    pub fn left_by(
        language: Language,
        text: &Rope,
        tree: &Tree,
        cursor: usize,
        replace_end: usize,
        insert: &str,
    ) -> Option<usize> {
        let (rope, parsed) = splice(language, text, tree, cursor, replace_end, insert)?;
        let first = rope.byte_to_line(cursor);
        let last = first + insert.matches('\n').count();
        Some(errors(parsed.root_node()) + local_breaches(language, &rope, first, last))
    }
}

/// Breaches of the layout rule (Python only) among the lines `first..=last` and the code lines
/// just around them.
fn local_breaches(language: Language, text: &Rope, first: usize, last: usize) -> usize {
    if language != Language::Python {
        return 0;
    }
    let blank = |line: usize| text.line(line).chars().all(char::is_whitespace);
    let (mut from, mut code) = (first, 0);
    while from > 0 && code < 2 && first - from < 10 {
        from -= 1;
        code += usize::from(!blank(from));
    }
    let (mut to, mut code) = (last.min(text.len_lines().saturating_sub(1)), 0);
    while to + 1 < text.len_lines() && code < 3 && to - last < 10 {
        to += 1;
        code += usize::from(!blank(to));
    }
    let lines: Vec<String> = (from..=to).map(|line| text.line(line).to_string()).collect();
    layout::unexpected_indents(lines.iter().map(|line| line.trim_end_matches(['\n', '\r'])))
}

/// Lines below the cursor where an error counts as part of the cursor's hole.
const NEAR_LINES: usize = 3;

/// Count of ERROR and MISSING nodes after `insert` replaces `cursor..replace_end`; `None` when
/// the text is too large to parse.
fn errors_after(
    language: Language,
    text: &Rope,
    tree: &Tree,
    cursor: usize,
    replace_end: usize,
    insert: &str,
) -> Option<usize> {
    splice(language, text, tree, cursor, replace_end, insert).map(|(_, parsed)| errors(parsed.root_node()))
}

/// The buffer with `insert` in place of `cursor..replace_end`, and its new tree.
fn splice(
    language: Language,
    text: &Rope,
    tree: &Tree,
    cursor: usize,
    replace_end: usize,
    insert: &str,
) -> Option<(Rope, Tree)> {
    let mut rope = text.clone();
    let start_char = rope.byte_to_char(cursor);
    let end_char = rope.byte_to_char(replace_end.max(cursor));
    let before = rope.clone();
    rope.remove(start_char..end_char);
    rope.insert(start_char, insert);
    let mut edited = tree.clone();
    edited.edit(&syntax::edit_for(&before, &rope, cursor, replace_end.max(cursor), insert.len()));
    let parsed = syntax::parse(language, &rope, Some(&edited))?;
    Some((rope, parsed))
}

/// Counts ERROR and MISSING nodes.
fn errors(root: Node) -> usize {
    let mut count = 0;
    visit_errors(root, &mut |_| count += 1);
    count
}

/// Calls `found` for every ERROR and MISSING node, outermost first, not inside ERROR nodes.
fn visit_errors(root: Node, found: &mut impl FnMut(Node)) {
    if !root.has_error() {
        return;
    }
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            found(node);
        }
        let descend = node.has_error() && !node.is_error() && cursor.goto_first_child();
        if descend {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `$0` marks the cursor.
    fn check(language: Language, marked: &str, candidate: &str, expected: &str) {
        check_cut(language, marked, candidate, false, expected);
    }

    /// As [`check`], for a candidate that a budget cut (`unfinished`) or the model ended.
    fn check_cut(language: Language, marked: &str, candidate: &str, unfinished: bool, expected: &str) {
        let cursor = marked.find("$0").expect("no cursor marker");
        let text = Rope::from_str(&marked.replacen("$0", "", 1));
        let tree = syntax::parse(language, &text, None).unwrap();
        assert_eq!(
            keep_valid(language, &text, &tree, cursor, cursor, candidate, unfinished),
            expected,
            "{marked:?} + {candidate:?}"
        );
    }

    #[test]
    fn a_candidate_cut_by_a_budget_may_end_inside_blocks_it_opened() {
        // tracing-subscriber's FilterMap, a method removed: 1.5 s after its first line the
        // automatic request's budget cut the model inside the method.
        let marked = "struct M {\n    bits: u64,\n}\n\nimpl M {\n$0\n}\n";
        let candidate = "    fn set(&mut self, on: bool) {\n        if on {\n            self.bits |= 1;\n        } else {\n            self.bits = 0;\n        }";
        check_cut(Language::Rust, marked, candidate, true, candidate);
        // An answer the model ended itself is judged as it stands.
        check_cut(Language::Rust, marked, candidate, false, "");
        // A valid prefix wins over a longer unfinished one: the block the model went on to open
        // after a whole method is left out.
        let candidate = "    fn get(&self) -> u64 {\n        self.bits\n    }\n\n    fn set(&mut self) {";
        check_cut(Language::Rust, marked, candidate, true, "    fn get(&self) -> u64 {\n        self.bits\n    }\n");
        // Closing the brackets must make it valid: a half expression still goes.
        check_cut(
            Language::Rust,
            marked,
            "    fn set(&mut self) {\n        self.bits = (1 <<",
            true,
            "    fn set(&mut self) {",
        );
        // Python: a call cut among its arguments.
        let marked = "def f(items):\n    $0\n";
        check_cut(
            Language::Python,
            marked,
            "total = sum(\n        item.size,\n        item.",
            true,
            "total = sum(\n        item.size,",
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
