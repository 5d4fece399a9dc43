//! The model's documentation text made into a comment in the language's own style: `///` lines
//! for Rust, a docstring for Python, at the item's indentation. Pure, and whatever the model
//! wrote, the result is a comment (markers, quotes and fences it added are taken off; quotes that
//! would end a docstring are escaped).

use crate::prompt::explain::DocStyle;

/// Lines of documentation kept at most: a doc comment, not an essay.
const MAX_LINES: usize = 30;

/// The comment to insert, each line ending in `\n`; `None` when the answer holds no text.
pub fn doc_comment(style: DocStyle, indent: &str, answer: &str) -> Option<String> {
    let lines = plain_lines(style, answer);
    if lines.is_empty() {
        return None;
    }
    let mut out = String::new();
    match style {
        DocStyle::RustLines => {
            for line in &lines {
                let sep = if line.is_empty() { "" } else { " " };
                out.push_str(&format!("{indent}///{sep}{line}\n"));
            }
        }
        DocStyle::PythonDocstring => {
            let escape = |line: &str| line.replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"");
            let mut first = escape(&lines[0]);
            if lines.len() == 1 {
                if first.ends_with('"') {
                    first.insert(first.len() - 1, '\\');
                }
                out.push_str(&format!("{indent}\"\"\"{first}\"\"\"\n"));
            } else {
                out.push_str(&format!("{indent}\"\"\"{first}\n"));
                for line in &lines[1..] {
                    if line.is_empty() {
                        out.push('\n');
                    } else {
                        out.push_str(&format!("{indent}{}\n", escape(line)));
                    }
                }
                out.push_str(&format!("{indent}\"\"\"\n"));
            }
        }
    }
    Some(out)
}

/// The answer's text as lines without markers: a fence around it, comment markers or docstring
/// quotes taken off; the common indentation removed; blank runs squeezed to one.
fn plain_lines(style: DocStyle, answer: &str) -> Vec<String> {
    let answer = answer.replace("\r\n", "\n");
    let mut lines: Vec<&str> = answer.lines().skip_while(|l| l.trim().is_empty()).collect();
    // A fence around the whole answer (```text … ```).
    if lines.first().is_some_and(|l| l.trim_start().starts_with("```")) {
        lines.remove(0);
        if let Some(end) = lines.iter().position(|l| l.trim_start().starts_with("```")) {
            lines.truncate(end);
        }
    }
    let unmarked: Vec<String> = lines
        .iter()
        .map(|line| {
            let trimmed = line.trim_end();
            let body = trimmed.trim_start();
            let rest = match style {
                DocStyle::RustLines => body.strip_prefix("///").or_else(|| body.strip_prefix("//!")),
                DocStyle::PythonDocstring => None,
            };
            match rest {
                Some(rest) => rest.strip_prefix(' ').unwrap_or(rest).to_owned(),
                None => trimmed.to_owned(),
            }
        })
        .collect();
    let mut text = unmarked.join("\n");
    if style == DocStyle::PythonDocstring {
        let trimmed = text.trim();
        for quote in ["\"\"\"", "'''"] {
            if let Some(inner) = trimmed.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
                text = inner.to_owned();
                break;
            }
        }
    }
    let raw: Vec<&str> = text.lines().collect();
    let common =
        raw.iter().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let mut out: Vec<String> = Vec::new();
    for (i, line) in raw.iter().enumerate() {
        let line = if i == 0 { line.trim() } else { line.get(common..).unwrap_or(line.trim_start()).trim_end() };
        if line.is_empty() && out.last().is_none_or(|last| last.is_empty()) {
            continue;
        }
        out.push(line.to_owned());
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.truncate(MAX_LINES);
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_documentation_becomes_triple_slash_lines_at_the_items_indentation() {
        let answer = "Returns the sum.\n\n# Panics\n\nOn overflow.\n";
        assert_eq!(
            doc_comment(DocStyle::RustLines, "    ", answer).unwrap(),
            "    /// Returns the sum.\n    ///\n    /// # Panics\n    ///\n    /// On overflow.\n"
        );
        // Markers and a fence the model added anyway are taken off, not doubled.
        let answer = "```rust\n/// Returns the sum.\n///\n/// More.\n```\n";
        assert_eq!(doc_comment(DocStyle::RustLines, "", answer).unwrap(), "/// Returns the sum.\n///\n/// More.\n");
    }

    #[test]
    fn python_documentation_becomes_a_docstring_that_cannot_end_early() {
        assert_eq!(doc_comment(DocStyle::PythonDocstring, "    ", "Add one.").unwrap(), "    \"\"\"Add one.\"\"\"\n");
        let answer = "\"\"\"Add one to x.\n\n    Args:\n        x: a number.\n\"\"\"";
        assert_eq!(
            doc_comment(DocStyle::PythonDocstring, "    ", answer).unwrap(),
            "    \"\"\"Add one to x.\n\n    Args:\n        x: a number.\n    \"\"\"\n"
        );
        // Quotes and backslashes in the text stay text.
        assert_eq!(
            doc_comment(DocStyle::PythonDocstring, "", "Split on \"\"\" and \\n, then \"x\"").unwrap(),
            "\"\"\"Split on \\\"\\\"\\\" and \\\\n, then \"x\\\"\"\"\"\n"
        );
    }

    #[test]
    fn no_text_no_comment() {
        assert_eq!(doc_comment(DocStyle::RustLines, "", "  \n```\n```\n"), None);
        assert_eq!(doc_comment(DocStyle::PythonDocstring, "", "\"\"\"\"\"\""), None);
    }
}
