//! Python's layout rule, which tree-sitter's grammar forgives: a line may be indented deeper than
//! the line of code before it only when that line opens a block (`:`), or leaves a bracket or a
//! backslash continuation open. The syntax check counts breaches of it next to ERROR nodes.

use crate::syntax::indent_width;
use crate::syntax::lexicon::{lexicon, Lexicon};

/// Counts the lines indented deeper than the code line before them without a reason to be.
/// Lines inside triple-quoted strings and brackets are continuation lines and do not count.
pub fn unexpected_indents<'a>(lines: impl IntoIterator<Item = &'a str>) -> usize {
    let python: &Lexicon = lexicon("python");
    let mut count = 0;
    let mut depth: usize = 0;
    let mut in_docstring = false;
    // The indentation of the previous code line, and whether it allows a deeper next line.
    let mut previous: Option<(usize, bool)> = None;
    for line in lines {
        let code = line.trim();
        let triple_quotes = line.matches("\"\"\"").count() + line.matches("'''").count();
        if in_docstring {
            in_docstring = triple_quotes % 2 == 0;
            continue;
        }
        if python.is_comment(code) {
            continue;
        }
        let indent = indent_width(line);
        if let Some((above, opens)) = previous {
            if depth == 0 && indent > above && !opens {
                count += 1;
            }
        }
        let code = python.code(code);
        let continues = depth > 0;
        depth = (depth as isize + python.bracket_balance(code) as isize).max(0) as usize;
        if !continues {
            let opens = code.ends_with(':') || code.ends_with('\\') || depth > 0;
            previous = Some((indent, opens));
        }
        in_docstring = triple_quotes % 2 == 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &str) -> usize {
        unexpected_indents(text.lines())
    }

    #[test]
    fn a_body_without_its_header_is_a_breach() {
        // HumanEval/36: the hole is the `for` line; `return ans` in its place leaves it broken.
        assert_eq!(count("    ans = 0\n\n        ans += (c == '7')\n    return ans\n"), 1);
        assert_eq!(count("    ans = 0\n    return ans\n        ans += (c == '7')\n"), 1);
        assert_eq!(count("    ans = 0\n    for c in s:\n        ans += (c == '7')\n    return ans\n"), 0);
    }

    #[test]
    fn continuation_lines_are_not_breaches() {
        assert_eq!(count("x = f(a,\n      b)\ny = 1\n"), 0);
        assert_eq!(count("x = [\n    1,\n]\n"), 0);
        assert_eq!(count("x = 1 + \\\n    2\n"), 0);
        assert_eq!(count("def f():\n    \"\"\"Doc.\n        indented example\n    \"\"\"\n    return 1\n"), 0);
        assert_eq!(count("if a:  # why\n    b()\n"), 0);
        assert_eq!(count("s = '(' \n    x = 1\n"), 1, "brackets in strings do not count");
    }

    #[test]
    fn dedents_are_free() {
        assert_eq!(count("def f():\n    if a:\n        return 1\n    return 2\nx = 3\n"), 0);
    }
}
