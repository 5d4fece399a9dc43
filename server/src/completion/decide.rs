//! What to complete at the cursor: nothing, the rest of one line, or a block of lines.
//!
//! Pure: it reads the text (and the syntax tree where there is one) around the cursor. The rules
//! follow what editor users complain about: no suggestions in the middle of a word, none when a
//! long tail stands right of the cursor, one line when code follows on the line, a block where a
//! body opens.

use ropey::Rope;
use tree_sitter::Tree;

use crate::syntax::indent_width;
use crate::syntax::lexicon::Lexicon;

/// How much to suggest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Nothing (only for automatic requests).
    Nothing,
    /// The rest of the cursor's line.
    Line,
    /// Several lines, ended by the stop rules.
    Block,
}

/// Whether the user asked or the editor did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Automatic,
    Invoked,
}

/// The decision, with the facts about the cursor's surroundings the later stages need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub scope: Scope,
    /// Why, for logs and tests.
    pub reason: &'static str,
    /// Byte offset where the cursor's line starts.
    pub line_start: usize,
    /// The cursor line's text before the cursor.
    pub line_before: String,
    /// The cursor line's text after the cursor, without its line break.
    pub line_after: String,
    /// Width of the indentation that a block's lines must keep; a line indented less ends it.
    pub block_indent: usize,
    /// On an empty line with the cursor at column 0, the indentation the line takes when the code
    /// around leaves no doubt (a body's first line): the suggestion starts with it, as if the user
    /// had typed it. Editors leave the cursor there on blank lines whose whitespace they trimmed;
    /// small models then write a blank line first, or code at the wrong depth (a `return` at the
    /// function's depth right after an `if` line).
    pub indentation: String,
    /// The same for alternatives to a first answer that was dropped: also a guess, the depth of
    /// the lines above and below when they agree (the line between may still be an `else:` less
    /// deep, HumanEval/9, so the first answer is the model's own).
    pub retry_indentation: String,
}

/// Automatic suggestions are skipped when more than this stands right of the cursor.
const MAX_LINE_SUFFIX: usize = 8;

/// Decides at byte `cursor` of `text`.
pub fn decide(text: &Rope, tree: Option<&Tree>, cursor: usize, trigger: Trigger) -> Decision {
    let cursor = cursor.min(text.len_bytes());
    let line = text.byte_to_line(cursor);
    let line_start = text.line_to_byte(line);
    let line_text = text.line(line).to_string();
    let line_text = line_text.trim_end_matches(['\n', '\r']);
    let split = (cursor - line_start).min(line_text.len());
    let (line_before, line_after) = line_text.split_at(split);
    let lexicon = crate::syntax::lexicon::of_tree(tree);
    let (block_indent, (indentation, retry_indentation)) = block_indent(text, line, line_before, line_after, lexicon);
    let decision = |scope, reason| Decision {
        scope,
        reason,
        line_start,
        line_before: line_before.to_owned(),
        line_after: line_after.to_owned(),
        block_indent,
        indentation: indentation.clone(),
        retry_indentation: retry_indentation.clone(),
    };
    let automatic = trigger == Trigger::Automatic;
    let next_char = line_after.chars().next();
    if automatic && next_char.is_some_and(is_word) {
        return decision(Scope::Nothing, "the cursor is inside a word");
    }
    let tail = line_after.trim();
    let only_closers = !tail.is_empty() && tail.chars().all(|c| ")]}>\"'`;,:".contains(c));
    if automatic && tail.len() > MAX_LINE_SUFFIX && !only_closers {
        return decision(Scope::Nothing, "a long tail stands right of the cursor");
    }
    if in_comment(tree, cursor) {
        return decision(Scope::Line, "inside a comment");
    }
    if in_long_string(tree, cursor) {
        return decision(Scope::Line, "inside a string of several lines");
    }
    if !tail.is_empty() {
        return decision(Scope::Line, "code follows on the cursor's line");
    }
    let code = line_before.trim();
    if code.is_empty() {
        return decision(Scope::Block, "an empty line");
    }
    if code.ends_with([':', '{', '(', '[']) || code.ends_with("=>") {
        return decision(Scope::Block, "the line opens a body");
    }
    decision(Scope::Line, "the rest of a line")
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A line's indentation, as written.
fn leading_whitespace(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// The indentation a block written at the cursor must keep.
///
/// On a line with code, that is the line's own indentation (deeper for a body it opens). On an
/// empty line it is the larger of what was typed and the indentation of the code around, since
/// editors often leave the cursor at column 0 of an empty line inside a body. Second: the
/// [`Decision::indentation`] and [`Decision::retry_indentation`].
fn block_indent(
    text: &Rope,
    line: usize,
    line_before: &str,
    line_after: &str,
    lexicon: &Lexicon,
) -> (usize, (String, String)) {
    let opens = |l: &str| lexicon.opens_body(l);
    if !line_before.trim().is_empty() {
        let own = indent_width(line_before);
        let opens = opens(line_before) && line_after.trim().is_empty();
        return (own + usize::from(opens), Default::default());
    }
    let typed = indent_width(line_before);
    let previous = (0..line).rev().map(|l| text.line(l).to_string()).find(|l| !l.trim().is_empty());
    let next = (line + 1..text.len_lines()).map(|l| text.line(l).to_string()).find(|l| !l.trim().is_empty());
    // The code below stays where it is: the block may end at its depth, not below it. A closing
    // bracket line closes a block whose lines are deeper than it. After a line that opens a body,
    // the block only goes back to that line's depth for more clauses of the same statement when
    // the code below is one (HumanEval/81: `elif` clauses before the `elif` below); an `else:`
    // before a plain statement below is the model running on (HumanEval/46).
    let clause = |n: &str| lexicon.starts_with_word(n, lexicon.clause_words);
    let below = |n: &str| indent_width(n) + usize::from(n.trim_start().starts_with([')', ']', '}']));
    let above = |p: &str| if opens(p) { indent_width(p) + 1 } else { indent_width(p) };
    let context = match (&previous, &next) {
        (Some(p), Some(n)) if opens(p) && !clause(n) => above(p),
        (Some(p), Some(n)) => above(p).min(below(n)),
        // Nothing below: the rest of the enclosing definition is the hole's (HumanEval/96: after
        // the inner loop, the outer loop's and the function's last lines).
        (Some(p), None) => enclosing_body(text, line, indent_width(p), lexicon).unwrap_or_else(|| above(p)),
        (None, Some(n)) => below(n),
        (None, None) => 0,
    };
    let whitespace = |l: &str| leading_whitespace(l).to_owned();
    let indentation = match (&previous, &next) {
        _ if !line_before.is_empty() || !line_after.trim().is_empty() => Default::default(),
        // A body's first line: one step deeper than its header (code deeper still below is the
        // body of a header the hole holds, HumanEval/18).
        (Some(p), _) if opens(p) => {
            let body = whitespace(p) + &indent_step(text, line, lexicon);
            (body.clone(), body)
        }
        (Some(p), Some(n)) if indent_width(p) == indent_width(n) => (String::new(), whitespace(n)),
        _ => Default::default(),
    };
    (typed.max(context), indentation)
}

/// How far back the indentation rules look.
const LOOK_BACK: usize = 200;

/// The lines above `line` that have code, nearest first.
fn code_above(text: &Rope, line: usize) -> impl Iterator<Item = String> + '_ {
    (0..line).rev().take(LOOK_BACK).map(|l| text.line(l).to_string()).filter(|l| !l.trim().is_empty())
}

/// One level of indentation in the file: how much deeper than a line that opens a body the
/// body's first line is, found above `line` (4 spaces if none is; docstring lines do not count).
fn indent_step(text: &Rope, line: usize, lexicon: &Lexicon) -> String {
    let mut deeper: Option<String> = None;
    for l in code_above(text, line) {
        let own = leading_whitespace(&l);
        // Brackets left open are continuation lines, aligned as their author likes: not a step.
        let code = lexicon.code(&l);
        let opens = code.ends_with(lexicon.body_openers) || code.ends_with('{');
        if let Some(body) = deeper.as_deref().filter(|body| opens && body.len() > own.len() && body.starts_with(own)) {
            return body[own.len()..].to_owned();
        }
        deeper = Some(own.to_owned());
    }
    "    ".to_owned()
}

/// The depth a block may return to below `line` when no code follows: one more than the
/// enclosing definition (`def`, `class`, `fn`, `impl`, …; less deep than `depth`), if there is one.
fn enclosing_body(text: &Rope, line: usize, depth: usize, lexicon: &Lexicon) -> Option<usize> {
    code_above(text, line).find_map(|l| {
        let definition = lexicon.starts_with_word(&l, lexicon.definition_words);
        (definition && indent_width(&l) < depth).then(|| indent_width(&l) + 1)
    })
}

fn in_comment(tree: Option<&Tree>, cursor: usize) -> bool {
    let Some(tree) = tree else { return false };
    let at = cursor.saturating_sub(1);
    let Some(node) = tree.root_node().descendant_for_byte_range(at, at) else { return false };
    node.kind().contains("comment") && cursor <= node.end_byte()
}

/// Whether the cursor is inside a string literal that spans lines (a docstring, a multi-line
/// message or raw string): prose, written a line at a time like a comment's; a block there runs
/// on into more prose, or past the closing quotes into code.
fn in_long_string(tree: Option<&Tree>, cursor: usize) -> bool {
    let Some(tree) = tree else { return false };
    let at = cursor.saturating_sub(1);
    let mut node = tree.root_node().descendant_for_byte_range(at, at);
    while let Some(current) = node {
        if matches!(current.kind(), "string" | "string_literal" | "raw_string_literal") {
            let (start, end) = (current.start_position(), current.end_position());
            // Between the quotes.
            return start.row < end.row && cursor > current.start_byte() && cursor < current.end_byte();
        }
        node = current.parent();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{self, Language};

    /// The decision at the `$0` marker.
    fn decide_marked(language: Option<Language>, marked: &str, trigger: Trigger) -> Decision {
        let cursor = marked.find("$0").expect("no cursor marker");
        let text = Rope::from_str(&marked.replacen("$0", "", 1));
        let tree = language.and_then(|l| syntax::parse(l, &text, None));
        decide(&text, tree.as_ref(), cursor, trigger)
    }

    /// Checks the indentation an empty line takes, for first answers and for alternatives.
    fn check_indentation(language: Option<Language>, marked: &str, first: &str, retry: &str) {
        let decision = decide_marked(language, marked, Trigger::Invoked);
        assert_eq!((decision.indentation.as_str(), decision.retry_indentation.as_str()), (first, retry), "{marked:?}");
    }

    fn check(language: Option<Language>, marked: &str, trigger: Trigger, scope: Scope, indent: usize) {
        let decision = decide_marked(language, marked, trigger);
        assert_eq!((decision.scope, decision.block_indent), (scope, indent), "{marked:?}: {}", decision.reason);
    }

    const PY: Option<Language> = Some(Language::Python);
    const RS: Option<Language> = Some(Language::Rust);
    use Scope::*;
    use Trigger::*;

    #[test]
    fn nothing_mid_word_or_with_a_long_tail() {
        check(PY, "x = fo$0o + 1\n", Automatic, Nothing, 0);
        check(PY, "x = $0compute(a, b, c) + 1\n", Automatic, Nothing, 0);
        check(PY, "x = $0  # a long trailing comment\n", Automatic, Nothing, 0);
        check(None, "let x = fo$0o;", Automatic, Nothing, 0);
        // Asked for by the user, it completes anyway.
        check(PY, "x = fo$0o + 1\n", Invoked, Line, 0);
    }

    #[test]
    fn one_line_when_code_follows_or_the_line_has_code() {
        check(PY, "print($0)\n", Automatic, Line, 0);
        check(PY, "    xs = [$0]\n", Automatic, Line, 4);
        check(RS, "    let v = foo($0);\n", Automatic, Line, 4);
        check(PY, "def f(x):\n    return $0\n", Automatic, Line, 4);
        check(RS, "fn main() {\n    let x = $0\n}\n", Automatic, Line, 4);
        check(None, "SELECT * FROM t WHERE $0\n", Automatic, Line, 0);
    }

    #[test]
    fn a_block_where_a_body_opens_or_on_an_empty_line() {
        check(PY, "def f(x):$0\n", Automatic, Block, 1);
        check(PY, "def f(x):\n    $0\n", Automatic, Block, 4);
        check(RS, "fn main() {$0\n}\n", Automatic, Block, 1);
        check(RS, "fn main() {\n    $0\n}\n", Automatic, Block, 4);
        check(PY, "\n$0", Automatic, Block, 0);
    }

    #[test]
    fn an_empty_line_at_column_zero_takes_the_bodys_indentation() {
        // HumanEval's holes: an empty line inside a body, the cursor at its start.
        check(PY, "def f(x):\n    y = x\n$0\n    return y\n", Automatic, Block, 4);
        check(PY, "def f(xs):\n    for x in xs:\n$0\n    return 0\n", Automatic, Block, 5);
        check(PY, "def f(xs):\n    for x in xs:\n$0\n        x += 1\n", Automatic, Block, 5);
        check(PY, "def f(x):\n$0\n", Automatic, Block, 1);
        // Nothing below: the rest of the function (HumanEval/96).
        check(PY, "def f(xs):\n    for x in xs:\n        if x:\n$0\n", Automatic, Block, 1);
        check(PY, "class A:\n    def f(self):\n        if x:\n            y = 1\n$0\n", Automatic, Block, 5);
    }

    #[test]
    fn a_block_may_end_at_the_depth_of_the_code_below() {
        // HumanEval/81: the first body of an `if`, then more `elif` clauses before the one below.
        check(PY, "    if a:\n$0\n    elif b:\n        pass\n", Automatic, Block, 4);
        // Not an `else:` before a plain statement (HumanEval/46): the body's depth.
        check(PY, "    if a:\n$0\n    for x in xs:\n        pass\n", Automatic, Block, 5);
        check(PY, "def f(xs):\n    for x in xs:\n        y = x\n$0\n    return 0\n", Automatic, Block, 4);
        // A closing brace below: the block's lines stay deeper than it.
        check(RS, "fn main() {\n$0\n}\n", Automatic, Block, 1);
        check(RS, "fn main() {\n    let x = 1;\n$0\n}\n", Automatic, Block, 1);
    }

    #[test]
    fn an_empty_line_at_column_zero_takes_the_depth_the_code_around_leaves_no_doubt_about() {
        // HumanEval/81: a body's first line, one step deeper than its `elif`, though an `elif`
        // follows.
        let eight = "        ";
        check_indentation(PY, "    if a:\n        x()\n    elif b:\n$0\n    elif c:\n", eight, eight);
        // Deeper code below is the body of a header the hole holds (HumanEval/18).
        check_indentation(PY, "if a:\n$0\n        y = 2\n", "    ", "    ");
        check_indentation(RS, "fn main() {\n\tlet x = 1;\n\tif x {\n$0\n}\n", "\t\t", "\t\t");
        check_indentation(RS, "fn main() {\n  let x = 1;\n  if x {\n$0\n}\n", "    ", "    ");
        // Rust's lifetimes are not quotes, and a trailing comment does not hide the opener.
        check_indentation(RS, "fn f<'a>(x: &'a str) -> &'a str {  // borrow\n$0\n}\n", "    ", "    ");
        check_indentation(PY, "for c in s:  # each\n$0\n", "    ", "    ");
        // The step is a body's depth below its header, not a docstring's (HumanEval/109).
        let doc = "def f(a):\n    \"\"\"Doc\n            indented text.\n    \"\"\"\n    if a:\n$0\n";
        check_indentation(PY, doc, eight, eight);
        // Between two statements of a body, their depth is a guess for alternatives (not a comment
        // at column 0, HumanEval/66); the first answer may be an `else:` less deep (HumanEval/9).
        check_indentation(PY, "def f(s):\n    s = 1\n\n$0\n    return s\n", "", "    ");
        // After a block's last line, the code may go on at any depth (HumanEval/39).
        check_indentation(PY, "def f(p):\n    if p:\n        return 1\n$0\n", "", "");
        check_indentation(PY, "def f(p):\n    if p:\n        return 1\n$0\n    return 0\n", "", "");
        // Typed indentation, or code on the line: the user's.
        check_indentation(PY, "def f(x):\n  $0\n    return x\n", "", "");
        check_indentation(PY, "def f(x):\n$0)\n    return x\n", "", "");
    }

    #[test]
    fn comments_complete_one_line() {
        check(PY, "# compute the $0\nx = 1\n", Automatic, Line, 0);
        check(RS, "    // returns the $0\n", Automatic, Line, 4);
    }

    #[test]
    fn strings_of_several_lines_complete_one_line() {
        // A docstring's empty line, or a line begun in it: prose, a line at a time.
        let doc = "def f(a):\n    \"\"\"Sum the values.\n\n    $0\n    \"\"\"\n    return a\n";
        check(PY, doc, Automatic, Line, 4);
        check(PY, "def f(a):\n    \"\"\"Sum the\n    values $0\n    \"\"\"\n", Automatic, Line, 4);
        check(RS, "fn f() {\n    let s = r\"first\n$0\n\";\n}\n", Automatic, Line, 0);
        check(RS, "fn f() {\n    let s = \"first\n    $0\n\";\n}\n", Automatic, Line, 4);
        // Not a string of one line, nor the line after the closing quotes.
        check(PY, "def f(a):\n    \"\"\"Sum.\"\"\"\n    $0\n", Automatic, Block, 4);
        check(PY, "x = \"\"\"a\nb\"\"\"\n$0\n", Automatic, Block, 0);
    }
}
