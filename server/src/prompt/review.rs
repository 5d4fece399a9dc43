//! The review prompt: numbered lines of the code under review, the same context as an
//! explanation, and the JSON answer's grammar (GBNF) that the engine enforces. Pure.

use super::explain::{chat_prompt, Context, Target};
use super::{Counter, Prompt};

/// Findings an answer may hold: a few that matter, not a list of nits.
pub const MAX_FINDINGS: usize = 3;

/// The answer's grammar: `{"findings": [...]}` with at most [`MAX_FINDINGS`] findings whose
/// fields come in a fixed order (the quoted code before the message, so that the model points at
/// lines before it argues about them). Every string and whitespace run is bounded, so that an
/// answer nearly always ends within [`crate::review::ANSWER_TOKENS`] even when a model loops: a
/// message of at most 200 characters, quoted code and fixes of at most 300.
pub const GRAMMAR: &str = r#"root ::= "{" ws "\"findings\":" ws "[" ws findings? ws "]" ws "}"
findings ::= finding (ws "," ws finding){0,2}
finding ::= "{" ws "\"line\":" ws num ws "," ws "\"end_line\":" ws num ws "," ws "\"code\":" ws code ws "," ws "\"category\":" ws category ws "," ws "\"severity\":" ws severity ws "," ws "\"message\":" ws message ws "," ws "\"fix\":" ws code ws "}"
category ::= "\"bug\"" | "\"security\"" | "\"performance\"" | "\"maintainability\""
severity ::= "\"error\"" | "\"warning\"" | "\"info\""
num ::= [1-9] [0-9]{0,6}
code ::= "\"" chr{0,300} "\""
message ::= "\"" chr{0,200} "\""
chr ::= [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
ws ::= [ \t\n]{0,24}
"#;

/// What the model is asked: real defects it is confident about, pointed at by line, each with
/// the quoted lines and, where it is sure, their corrected text.
const ASK: &str = "Review this code for real defects: bugs (wrong results, wrong operator, variable or bound, \
off-by-one errors, unhandled cases, crashes), security problems, and serious performance problems. Report only \
problems you are confident about, the most important first, at most 3. If the code is correct, answer with an empty \
list. No remarks on style, naming, comments, documentation, tests or type hints.\n\n\
For each problem give: `line` and `end_line`, the numbers of the first and last line it is on, as numbered below; \
`code`, the text of those lines copied exactly, without their numbers; `category`: bug, security, performance or \
maintainability; `severity`: error for a defect that gives wrong results or crashes, warning for a likely one, info \
otherwise; `message`: one or two sentences that say what is wrong and why; `fix`: the corrected text of those same \
lines, whole lines with their indentation, or \"\" if you are not sure of a fix.\n\n\
Answer with JSON only, in this shape: \
{\"findings\": [{\"line\": 3, \"end_line\": 3, \"code\": \"...\", \"category\": \"bug\", \"severity\": \"error\", \
\"message\": \"...\", \"fix\": \"...\"}]}";

/// Lines read before a finding, at most, when its fix is weighed: the start of its function
/// (signature and docstring) where that is near.
const WEIGHED_BEFORE: usize = 100;
/// Lines read after a finding's lines, at most: code that uses what the fix changes.
const WEIGHED_AFTER: usize = 20;

/// The texts that weigh a fix against the lines it replaces: the code before them, and what
/// follows it as written and with the fix in place (the lines after them up to `scope`'s end
/// included, so that what uses the changed lines counts too). The texts after begin with the
/// line break that ends `before`, so that a tokenizer reads the indentation as it would in the
/// whole file.
pub struct FixVersions {
    pub before: String,
    pub original: String,
    pub fixed: String,
}

/// See [`FixVersions`]: `lines` are the document's, `finding` and `scope` 0-based inclusive line
/// ranges, `fix` whole lines each ending in `\n`. `None` when no line of `scope` comes before the
/// finding's (nothing to read first).
pub fn fix_versions(lines: &[&str], scope: (usize, usize), finding: (usize, usize), fix: &str) -> Option<FixVersions> {
    let (first, last) = finding;
    let start = scope.0.max(first.saturating_sub(WEIGHED_BEFORE));
    if first == 0 || first > last || last >= lines.len() || start >= first {
        return None;
    }
    let end = scope.1.min(last + WEIGHED_AFTER).min(lines.len() - 1).max(last);
    let joined = |lines: &mut dyn Iterator<Item = &str>| lines.map(|line| format!("\n{line}")).collect::<String>();
    let after = joined(&mut lines[last + 1..=end].iter().copied());
    Some(FixVersions {
        before: lines[start..first].join("\n"),
        original: joined(&mut lines[first..=last].iter().copied()) + &after,
        fixed: joined(&mut fix.lines()) + &after,
    })
}

/// `code` (the document's lines `target.lines`) with each line's 1-based number in front.
pub fn numbered(code: &str, first_line: usize) -> String {
    let lines: Vec<&str> = code.trim_end_matches('\n').split('\n').collect();
    let width = (first_line + lines.len()).to_string().len();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push_str(&format!("{:>width$}| {line}\n", first_line + 1 + i));
    }
    out
}

/// The chat prompt that asks for a review of `code` (the document's lines `target.lines`), with
/// numbered lines; `focus` (0-based lines) names the lines that changed, for a review of a diff.
pub fn review_prompt(
    target: &Target,
    code: &str,
    focus: Option<(usize, usize)>,
    context: &Context,
    budget: usize,
    counter: &dyn Counter,
) -> Prompt {
    let (first, last) = (target.lines.0 + 1, target.lines.1 + 1);
    let mut code_part = format!(
        "The {kind} to review, from `{path}` (lines {first}-{last}, numbered):\n```\n{code}```",
        kind = target.kind,
        path = context.path,
        code = numbered(code, target.lines.0),
    );
    if let Some((start, end)) = focus {
        code_part.push_str(&format!(
            "\n\nLines {}-{} changed: report only problems on those lines.",
            start + 1,
            end + 1
        ));
    }
    chat_prompt(ASK, code_part, context, budget, counter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{Estimate, Prompt};

    #[test]
    fn a_fix_is_weighed_with_the_lines_before_and_after_it_in_scope() {
        let lines = [
            "import os",
            "def f(xs):",
            "    total = 0",
            "    for x in xs:",
            "        total -= x",
            "    return total",
            "",
        ];
        // (scope, finding, fix) -> (before, original, fixed)
        let table = [
            (
                (1, 5),
                (4, 4),
                "        total += x\n",
                Some((
                    "def f(xs):\n    total = 0\n    for x in xs:",
                    "\n        total -= x\n    return total",
                    "\n        total += x\n    return total",
                )),
            ),
            // Two lines replaced by one; the scope ends with them.
            (
                (0, 3),
                (2, 3),
                "    total = sum(xs)\n",
                Some(("import os\ndef f(xs):", "\n    total = 0\n    for x in xs:", "\n    total = sum(xs)")),
            ),
            // Nothing before the finding to read.
            ((0, 5), (0, 0), "import sys\n", None),
            ((2, 5), (2, 2), "    total = 1\n", None),
        ];
        for (scope, finding, fix, expected) in table {
            let got = fix_versions(&lines, scope, finding, fix);
            let got = got.as_ref().map(|v| (v.before.as_str(), v.original.as_str(), v.fixed.as_str()));
            assert_eq!(got, expected, "{finding:?} in {scope:?}");
        }
    }

    #[test]
    fn lines_are_numbered_from_the_targets_first_line() {
        let table = [
            ("a\nb\n", 0, "1| a\n2| b\n"),
            ("x = 1\r\n", 9, "10| x = 1\n"),
            ("    if x:\n        y()\n", 98, " 99|     if x:\n100|         y()\n"),
        ];
        for (code, first, expected) in table {
            assert_eq!(numbered(code, first), expected, "{code:?}");
        }
    }

    #[test]
    fn the_prompt_shows_numbered_code_and_the_changed_lines() {
        let target = Target { start: 0, end: 20, kind: "function", lines: (4, 5) };
        let context = Context { path: "src/a.py", language_id: "python", imports: &[], definitions: &[] };
        let prompt = review_prompt(&target, "def f(x):\n    return x\n", Some((5, 5)), &context, 4096, &Estimate);
        let Prompt::Chat { messages, .. } = prompt else { panic!("a chat prompt") };
        let text = &messages[0].content;
        assert!(text.contains("5| def f(x):\n6|     return x\n"), "{text}");
        assert!(text.contains("lines 5-6"), "{text}");
        assert!(text.contains("Lines 6-6 changed"), "{text}");
    }
}
