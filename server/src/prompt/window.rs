//! The current file around the cursor, cut to a token budget.
//!
//! The cursor line is always kept. The window's start snaps to a syntax scope boundary or a
//! multiple of [`SNAP_LINES`], so that typing (and even moving down a few lines) leaves the start
//! where it was: the engine then reuses the cached tokens instead of evaluating the prompt again.

use ropey::Rope;
use tree_sitter::Tree;

/// Window starts snap to multiples of this many lines.
pub const SNAP_LINES: usize = 32;

/// Counts tokens: the model's tokenizer, or an estimate where there is none.
pub trait Counter {
    fn count(&self, text: &str) -> usize;
}

/// Four characters a token: the usual estimate for code, used only without a tokenizer.
pub struct Estimate;

impl Counter for Estimate {
    fn count(&self, text: &str) -> usize {
        text.len().div_ceil(4)
    }
}

/// The text the prompt is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Whole lines before the cursor's line.
    pub prefix: String,
    /// The cursor's line up to the cursor.
    pub line_before: String,
    /// From the cursor to the end of the window.
    pub suffix: String,
    /// First line of the window (0-based).
    pub start_line: usize,
    /// Whether the prefix reaches the start of the file.
    pub from_file_start: bool,
}

/// Cuts the window for a cursor at byte `cursor`, with `prefix_budget` tokens for the lines
/// above and `suffix_budget` for the text after the cursor.
pub fn window(
    text: &Rope,
    tree: Option<&Tree>,
    cursor: usize,
    prefix_budget: usize,
    suffix_budget: usize,
    counter: &dyn Counter,
) -> Window {
    let cursor = text.char_to_byte(text.byte_to_char(cursor.min(text.len_bytes())));
    let line = text.byte_to_line(cursor);
    let line_start = text.line_to_byte(line);

    // Lines above, nearest first, until the budget is spent.
    let mut used = 0;
    let mut earliest = line;
    while earliest > 0 {
        let cost = counter.count(&text.line(earliest - 1).to_string());
        if used + cost > prefix_budget {
            break;
        }
        used += cost;
        earliest -= 1;
    }
    let start_line = if earliest == 0 { 0 } else { snap_start(tree, text, earliest, line) };

    // Text after the cursor, line by line, until its budget is spent (the rest of the cursor's
    // line always).
    let line_end = if line + 1 < text.len_lines() { text.line_to_byte(line + 1) } else { text.len_bytes() };
    let mut end = line_end;
    let mut spent = counter.count(&text.byte_slice(cursor..line_end).to_string());
    let mut next = line + 1;
    while next < text.len_lines() {
        let cost = counter.count(&text.line(next).to_string());
        if spent + cost > suffix_budget {
            break;
        }
        spent += cost;
        next += 1;
        end = if next < text.len_lines() { text.line_to_byte(next) } else { text.len_bytes() };
    }

    Window {
        prefix: text.byte_slice(text.line_to_byte(start_line)..line_start).to_string(),
        line_before: text.byte_slice(line_start..cursor).to_string(),
        suffix: text.byte_slice(cursor..end).to_string(),
        start_line,
        from_file_start: start_line == 0,
    }
}

/// Moves a window start at or after `earliest` to a stable place: the next multiple of
/// [`SNAP_LINES`] (of a quarter of it, or none, when that would leave nothing above the cursor's
/// line), or, better, the start of the outermost syntax scope around the cursor that fits and
/// keeps at least as much: a scope that starts further down (the previous statement of a long
/// class body or dictionary) would throw away context the budget has room for.
fn snap_start(tree: Option<&Tree>, text: &Rope, earliest: usize, cursor_line: usize) -> usize {
    // A budget of fewer lines than a snap would leave nothing above the cursor's line (or pass
    // it): a finer snap, else none.
    let line_snap = [SNAP_LINES, SNAP_LINES / 4]
        .into_iter()
        .map(|unit| earliest.div_ceil(unit) * unit)
        .find(|&start| start < cursor_line)
        .unwrap_or(earliest);
    let Some(tree) = tree else { return line_snap };
    // The last character before the cursor's line: inside the scope being written.
    let at = text.line_to_byte(cursor_line).saturating_sub(2);
    let mut node = tree.root_node().descendant_for_byte_range(at, at);
    let mut best = None;
    while let Some(current) = node {
        let row = current.start_position().row;
        if (earliest..=line_snap).contains(&row) && row < cursor_line && current.parent().is_some() {
            best = Some(row);
        }
        node = current.parent();
    }
    best.unwrap_or(line_snap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{self, Language};

    /// One token per line, to make budgets easy to reason about.
    struct PerLine;

    impl Counter for PerLine {
        fn count(&self, text: &str) -> usize {
            usize::from(!text.is_empty())
        }
    }

    fn cut(marked: &str, prefix: usize, suffix: usize, language: Option<Language>) -> Window {
        let cursor = marked.find("$0").expect("no cursor marker");
        let text = Rope::from_str(&marked.replacen("$0", "", 1));
        let tree = language.and_then(|l| syntax::parse(l, &text, None));
        window(&text, tree.as_ref(), cursor, prefix, suffix, &PerLine)
    }

    #[test]
    fn everything_when_it_fits() {
        let w = cut("a\nb\n  c$0d\ne\n", 10, 10, None);
        assert_eq!((w.prefix.as_str(), w.line_before.as_str(), w.suffix.as_str()), ("a\nb\n", "  c", "d\ne\n"));
        assert!(w.from_file_start);
    }

    #[test]
    fn the_suffix_stops_at_its_budget_but_keeps_the_cursor_line() {
        let w = cut("x$0y\n1\n2\n3\n", 10, 2, None);
        assert_eq!(w.suffix, "y\n1\n");
        let w = cut("x$0y\n1\n2\n", 10, 0, None);
        assert_eq!(w.suffix, "y\n");
    }

    #[test]
    fn a_long_prefix_snaps_to_a_stable_line() {
        let text: String = (0..100).map(|i| format!("line{i}\n")).collect();
        let marked = format!("{text}$0\n");
        let w = cut(&marked, 50, 10, None);
        assert_eq!(w.start_line, 64, "the first multiple of 32 at or after line 50");
        // One line further down, the start does not move: the cache stays valid.
        let marked = format!("{text}x\n$0\n");
        assert_eq!(cut(&marked, 50, 10, None).start_line, 64);
    }

    #[test]
    fn a_small_budget_never_starts_past_the_cursor_line() {
        let text: String = (0..40).map(|i| format!("line{i}\n")).collect();
        // The budget reaches back to line 35: line 64 would pass the cursor's line 40, and line
        // 40 would leave nothing above it: no snap.
        let w = cut(&format!("{text}$0\n"), 5, 10, None);
        assert_eq!((w.start_line, w.line_before.as_str()), (35, ""));
        // Two lines further down, an 8-line snap leaves something.
        let w = cut(&format!("{text}x\ny\n$0\n"), 4, 10, None);
        assert_eq!(w.start_line, 40, "{w:?}");
        assert_eq!(w.prefix, "x\ny\n");
    }

    #[test]
    fn a_long_prefix_prefers_a_scope_start() {
        let body: String = (0..40).map(|i| format!("    x{i} = {i}\n")).collect();
        let marked = format!("import os\n\n\ndef f():\n{body}    $0\n");
        // The function starts at line 3; the budget reaches back to line 2.
        let w = cut(&marked, 42, 10, Some(Language::Python));
        assert_eq!(w.start_line, 3);
        assert!(w.prefix.starts_with("def f():"));
    }

    #[test]
    fn a_scope_start_that_would_lose_context_gives_way_to_a_line_snap() {
        // A long dictionary (or class body) that began before the budget reaches: the previous
        // entry is a scope start too, but starting there would leave one line of context.
        let entries: String = (0..100).map(|i| format!("    'k{i}': {i},\n")).collect();
        let marked = format!("TABLE = {{\n{entries}    $0\n}}\n");
        let w = cut(&marked, 50, 10, Some(Language::Python));
        assert_eq!(w.start_line, 64, "the line snap, not line 100: {w:?}");
    }
}
