//! Review findings from a model's answer: parsed leniently (a grammar-bound answer parses; a
//! remote model's may be fenced, chatty or cut short) and anchored to the document's lines. A
//! finding is kept only where the code it quotes is found: on the lines it names, else at the
//! nearest lines that match, else nowhere. Pure.

use serde_json::Value;

use crate::prompt::review::MAX_FINDINGS;

/// What kind of problem a finding reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Bug,
    Security,
    Performance,
    Maintainability,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Bug => "bug",
            Category::Security => "security",
            Category::Performance => "performance",
            Category::Maintainability => "maintainability",
        }
    }

    fn parse(text: &str) -> Option<Category> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "bug" | "correctness" | "logic" | "error" => Category::Bug,
            "security" => Category::Security,
            "performance" => Category::Performance,
            "maintainability" | "style" | "readability" => Category::Maintainability,
            _ => return None,
        })
    }
}

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    fn parse(text: &str) -> Severity {
        match text.trim().to_ascii_lowercase().as_str() {
            "error" | "critical" | "high" | "major" => Severity::Error,
            "info" | "information" | "note" | "low" | "minor" | "hint" => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

/// A finding as the model wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raw {
    /// 1-based, as in the numbered prompt.
    pub line: usize,
    pub end_line: usize,
    pub code: String,
    pub category: Category,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

/// A finding anchored to the document.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// First and last line, 0-based, inclusive.
    pub lines: (usize, usize),
    pub category: Category,
    pub severity: Severity,
    pub message: String,
    /// The text that replaces those whole lines (each ending in `\n`), if the model gave one that
    /// differs from them.
    pub fix: Option<String>,
    /// How much more likely the model finds the code with `fix` in place than as written (the
    /// difference of natural-log probabilities), where the review could weigh it.
    pub fix_gain: Option<f32>,
}

/// The findings in an answer, in order, at most [`MAX_FINDINGS`]; whatever does not parse is
/// skipped (an answer cut short keeps its complete findings).
pub fn parse(answer: &str) -> Vec<Raw> {
    let Some(start) = answer.find('{') else { return Vec::new() };
    let text = &answer[start..];
    let value: Option<Value> =
        serde_json::Deserializer::from_str(text).into_iter::<Value>().next().and_then(Result::ok);
    let items: Vec<Value> = match value {
        Some(Value::Object(mut object)) => match object.remove("findings") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        // Cut short or malformed: the complete objects inside the list.
        _ => complete_objects(text),
    };
    items.iter().filter_map(raw).take(MAX_FINDINGS).collect()
}

/// The complete `{…}` objects that follow the first `[` of a truncated answer.
fn complete_objects(text: &str) -> Vec<Value> {
    let Some(open) = text.find('[') else { return Vec::new() };
    let mut found = Vec::new();
    let mut rest = &text[open + 1..];
    while let Some(start) = rest.find('{') {
        rest = &rest[start..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                found.push(value);
                rest = &rest[stream.byte_offset()..];
            }
            _ => break,
        }
    }
    found
}

fn raw(item: &Value) -> Option<Raw> {
    let number = |key: &str| item.get(key).and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()));
    let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let line = usize::try_from(number("line")?).ok()?;
    let end_line = number("end_line").and_then(|n| usize::try_from(n).ok()).unwrap_or(line).max(line);
    let category = item.get("category").and_then(Value::as_str).and_then(Category::parse).unwrap_or(Category::Bug);
    let severity = Severity::parse(item.get("severity").and_then(Value::as_str).unwrap_or(""));
    let message = text("message").trim().to_owned();
    if line == 0 || message.is_empty() {
        return None;
    }
    Some(Raw { line, end_line, code: text("code"), category, severity, message, fix: text("fix") })
}

/// How far from the lines it names a finding's quoted code is looked for.
const NEARBY: usize = 8;

/// Anchors `raw` in the document (`lines`, without line ends) within `scope` (0-based lines,
/// inclusive: what was reviewed). Kept where its quoted code is on the lines it names, else at
/// the nearest lines in reach that hold it; dropped otherwise, and when it quotes nothing.
pub fn anchor(raw: &Raw, lines: &[&str], scope: (usize, usize)) -> Option<Finding> {
    let quoted: Vec<String> = raw.code.lines().map(normal).filter(|l| !l.is_empty()).collect();
    if quoted.is_empty() || scope.0 > scope.1 || scope.1 >= lines.len() {
        return None;
    }
    let claimed = raw.line - 1;
    let span = quoted.len();
    // Candidate starts, nearest to the claimed line first.
    let lowest = claimed.saturating_sub(NEARBY).max(scope.0);
    let highest = (claimed + NEARBY).min(scope.1);
    let mut starts: Vec<usize> = (lowest..=highest).collect();
    starts.sort_by_key(|&s| (s.abs_diff(claimed), s));
    let start = starts.into_iter().find(|&s| holds(lines, s, scope.1, &quoted))?;
    let end = last_line(lines, start, span);
    let fix = fix_for(raw, lines, start, end);
    Some(Finding {
        lines: (start, end),
        category: raw.category,
        severity: raw.severity,
        message: raw.message.clone(),
        fix,
        fix_gain: None,
    })
}

/// Whether the non-blank lines from `start` (up to `limit`) are the quoted ones, each equal or,
/// for a quote of part of a line, contained in it.
fn holds(lines: &[&str], start: usize, limit: usize, quoted: &[String]) -> bool {
    let mut row = start;
    for (i, quote) in quoted.iter().enumerate() {
        while row <= limit && normal(lines[row]).is_empty() && i > 0 {
            row += 1;
        }
        if row > limit {
            return false;
        }
        let line = normal(lines[row]);
        let partial = quote.len() >= 6 || quote.len() * 2 >= line.len();
        if !(line == *quote || (partial && line.contains(quote.as_str()))) {
            return false;
        }
        row += 1;
    }
    true
}

/// The last line of `span` non-blank lines from `start`.
fn last_line(lines: &[&str], start: usize, span: usize) -> usize {
    let mut seen = 0;
    let mut row = start;
    while row < lines.len() {
        if !normal(lines[row]).is_empty() {
            seen += 1;
            if seen == span {
                return row;
            }
        }
        row += 1;
    }
    start
}

/// The fix as whole lines for `start..=end`, re-indented where the model dropped the
/// indentation; `None` when there is none or it changes nothing.
fn fix_for(raw: &Raw, lines: &[&str], start: usize, end: usize) -> Option<String> {
    let fix = raw.fix.trim_end();
    if fix.trim().is_empty() {
        return None;
    }
    let original: Vec<&str> = lines[start..=end].to_vec();
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let have = original.first().map(|l| &l[..indent_of(l)]).unwrap_or("");
    let fix_lines: Vec<&str> = fix.lines().collect();
    let given = fix_lines.iter().find(|l| !l.trim().is_empty()).map(|l| indent_of(l)).unwrap_or(0);
    let mut out = String::new();
    for line in &fix_lines {
        if line.trim().is_empty() {
            out.push('\n');
        } else if given < have.len() {
            out.push_str(&have[..have.len() - given]);
            out.push_str(line);
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let same = original.iter().map(|l| normal(l)).eq(out.lines().map(normal));
    (!same).then_some(out)
}

/// A line compared for anchoring: trimmed, inner runs of blanks as one space.
fn normal(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Anchored findings without repeats (the same lines and category), most severe first, in line
/// order otherwise.
pub fn dedup(mut findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert((f.lines, f.category)));
    findings.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.lines));
    findings
}

/// Moves findings with an edit that replaces `start..end` (0-based line and column; the
/// column counts only where it is 0) by `inserted`: findings below shift by the lines added or
/// removed, findings on edited lines are dropped (what they said may no longer hold).
pub fn follow_edit(findings: &mut Vec<Finding>, start: (usize, usize), end: (usize, usize), inserted: &str) {
    findings.retain_mut(|finding| match follow_edit_lines(finding.lines, start, end, inserted) {
        Some(lines) => {
            finding.lines = lines;
            true
        }
        None => false,
    });
}

/// Where the lines `first..=last` are after the edit of [`follow_edit`]; `None` when the edit
/// touches them.
pub fn follow_edit_lines(
    (first, last): (usize, usize),
    start: (usize, usize),
    end: (usize, usize),
    inserted: &str,
) -> Option<(usize, usize)> {
    let added = inserted.matches('\n').count() as isize - (end.0 - start.0) as isize;
    // Text inserted at the start of a line that ends with a line break leaves that line as it was.
    let whole_lines_before = end.1 == 0 && (inserted.is_empty() || inserted.ends_with('\n'));
    if end.0 < first || (end.0 == first && whole_lines_before) {
        let shift = |line: usize| line.checked_add_signed(added).unwrap_or(0);
        Some((shift(first), shift(last)))
    } else {
        (start.0 > last).then_some((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(line: usize, end_line: usize, code: &str, fix: &str) -> Raw {
        Raw {
            line,
            end_line,
            code: code.into(),
            category: Category::Bug,
            severity: Severity::Error,
            message: "wrong".into(),
            fix: fix.into(),
        }
    }

    #[test]
    fn answers_parse_whole_fenced_or_cut_short() {
        let one = r#"{"line": 2, "end_line": 2, "code": "x", "category": "bug", "severity": "error", "message": "m", "fix": ""}"#;
        let table: [(String, usize); 6] = [
            (format!(r#"{{"findings": [{one}]}}"#), 1),
            (format!("Here you go:\n```json\n{{\"findings\": [{one}, {one}]}}\n```"), 2),
            (format!(r#"{{"findings": [{one}, {{"line": 3, "code": "y", "mess"#), 1),
            (r#"{"findings": []}"#.into(), 0),
            ("no JSON at all".into(), 0),
            (r#"{"findings": [{"line": 0, "message": "m"}, {"line": "4", "message": "n"}]}"#.into(), 1),
        ];
        for (answer, count) in table {
            assert_eq!(parse(&answer).len(), count, "{answer}");
        }
        let parsed =
            parse(r#"{"findings": [{"line": "4", "message": " n ", "category": "Security", "severity": "low"}]}"#);
        assert_eq!(
            (parsed[0].line, parsed[0].end_line, parsed[0].category, parsed[0].severity, parsed[0].message.as_str()),
            (4, 4, Category::Security, Severity::Info, "n")
        );
    }

    const FILE: &str = "def f(xs):\n    total = 0\n    for x in xs:\n        total -= x\n\n    return total\n";

    #[test]
    fn findings_stay_where_their_code_is_else_move_to_it_else_go() {
        let lines: Vec<&str> = FILE.lines().collect();
        let scope = (0, lines.len() - 1);
        let table = [
            // (line, end, code) → anchored lines
            ((4, 4, "        total -= x"), Some((3, 3))),
            ((4, 4, "total -= x"), Some((3, 3))),
            // Off by one or two: moved to the quoted code.
            ((2, 2, "total -= x"), Some((3, 3))),
            // Two lines across a blank line.
            ((4, 6, "total -= x\nreturn total"), Some((3, 5))),
            // Code that is not there, or nothing quoted.
            ((4, 4, "total += x * 2"), None),
            ((4, 4, ""), None),
            // A fragment too short to place.
            ((4, 4, "x"), None),
        ];
        for ((line, end, code), expected) in table {
            let found = anchor(&raw(line, end, code, ""), &lines, scope).map(|f| f.lines);
            assert_eq!(found, expected, "{code:?} at {line}");
        }
        // Outside what was reviewed.
        assert_eq!(anchor(&raw(4, 4, "total -= x", ""), &lines, (0, 2)), None);
    }

    #[test]
    fn fixes_are_whole_lines_indented_as_the_code_and_never_a_no_op() {
        let lines: Vec<&str> = FILE.lines().collect();
        let scope = (0, lines.len() - 1);
        let table = [
            ("        total += x", Some("        total += x\n")),
            ("total += x", Some("        total += x\n")),
            ("total -= x", None),
            ("", None),
        ];
        for (fix, expected) in table {
            let found = anchor(&raw(4, 4, "total -= x", fix), &lines, scope).unwrap();
            assert_eq!(found.fix.as_deref(), expected, "{fix:?}");
        }
    }

    #[test]
    fn findings_move_with_edits_above_and_go_with_edits_on_their_lines() {
        let at = |first, last| Finding {
            lines: (first, last),
            category: Category::Bug,
            severity: Severity::Error,
            message: "m".into(),
            fix: None,
            fix_gain: None,
        };
        // (edit start, edit end, inserted) → where a finding on lines 5-6 ends up
        let table = [
            ((0, 0), (0, 0), "import os\n", Some((6, 7))),
            ((2, 0), (4, 0), "", Some((3, 4))),
            ((5, 0), (5, 0), "# note\n", Some((6, 7))),
            ((4, 3), (4, 9), "x", Some((5, 6))),
            ((8, 0), (9, 0), "", Some((5, 6))),
            ((5, 4), (5, 5), "+", None),
            ((6, 0), (6, 0), "y = 1\n", None),
            ((3, 0), (7, 0), "", None),
            ((4, 2), (5, 1), "", None),
        ];
        for (start, end, inserted, expected) in table {
            let mut findings = vec![at(5, 6)];
            follow_edit(&mut findings, start, end, inserted);
            assert_eq!(findings.first().map(|f| f.lines), expected, "{start:?}-{end:?} {inserted:?}");
        }
    }

    #[test]
    fn repeats_go_and_the_most_severe_come_first() {
        let finding = |lines, severity| Finding {
            lines,
            category: Category::Bug,
            severity,
            message: "m".into(),
            fix: None,
            fix_gain: None,
        };
        let found = dedup(vec![
            finding((5, 5), Severity::Info),
            finding((1, 1), Severity::Error),
            finding((5, 5), Severity::Error),
            finding((9, 9), Severity::Error),
        ]);
        let got: Vec<_> = found.iter().map(|f| (f.lines.0, f.severity)).collect();
        assert_eq!(got, [(1, Severity::Error), (9, Severity::Error), (5, Severity::Info)]);
    }
}
