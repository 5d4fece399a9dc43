//! Per-language facts for the line-level rules (where comments start, what a string is, which
//! line ends open a body, which words continue or leave one), in one table, so that every rule
//! treats Rust with the same care as Python and no rule hard-codes one language's words.

/// What the line-level rules know about a language.
#[derive(Debug, PartialEq, Eq)]
pub struct Lexicon {
    /// The language id this entry is for (`"*"` for the fallback).
    pub language_id: &'static str,
    /// Starts a comment that runs to the end of the line.
    pub line_comment: &'static str,
    /// Characters that open and close string literals.
    pub quotes: &'static [char],
    /// `'` starts a character literal only when one follows (`'a'`, `'\n'`); otherwise it is a
    /// lifetime or label (`'a`, `'outer:`), not a quote.
    pub char_literals: bool,
    /// Characters that end a line that opens a body (after brackets are closed).
    pub body_openers: &'static [char],
    /// Words that start another clause of the statement above (at its depth, not in its body).
    pub clause_words: &'static [&'static str],
    /// Words that leave a block: a line starting with one ends it.
    pub exit_words: &'static [&'static str],
    /// Words that start a definition whose body is a unit of its own (with what may precede them).
    pub definition_words: &'static [&'static str],
    /// Statements whose body is not complete without a later clause at their depth (Python's
    /// `try:` and its `except`/`finally`).
    pub needs_clause: &'static [(&'static str, &'static [&'static str])],
}

const PYTHON: Lexicon = Lexicon {
    language_id: "python",
    line_comment: "#",
    quotes: &['"', '\''],
    char_literals: false,
    body_openers: &[':'],
    clause_words: &["elif", "else", "except", "finally", "case"],
    exit_words: &["return", "raise", "break", "continue"],
    definition_words: &["def", "async def", "class"],
    needs_clause: &[("try", &["except", "finally"])],
};

const RUST: Lexicon = Lexicon {
    language_id: "rust",
    line_comment: "//",
    quotes: &['"'],
    char_literals: true,
    body_openers: &['{'],
    clause_words: &["else"],
    exit_words: &["return", "break", "continue", "panic!", "unreachable!"],
    definition_words: &[
        "fn",
        "pub fn",
        "pub(crate) fn",
        "async fn",
        "pub async fn",
        "impl",
        "struct",
        "pub struct",
        "enum",
        "pub enum",
        "trait",
        "pub trait",
        "mod",
        "pub mod",
    ],
    needs_clause: &[],
};

/// Languages with braces and `//` comments, for everything else.
const C_LIKE: Lexicon = Lexicon {
    language_id: "*",
    line_comment: "//",
    quotes: &['"', '\'', '`'],
    char_literals: false,
    body_openers: &['{'],
    clause_words: &["else", "catch", "finally", "case", "default"],
    exit_words: &["return", "throw", "break", "continue"],
    definition_words: &["function", "class", "func", "def"],
    needs_clause: &[("try", &["catch", "finally"])],
};

/// The lexicon of a parsed tree's language (the fallback without a tree).
pub fn of_tree(tree: Option<&tree_sitter::Tree>) -> &'static Lexicon {
    lexicon(tree.and_then(|tree| tree.language().name()).unwrap_or_default())
}

/// The lexicon of an LSP language id.
pub fn lexicon(language_id: &str) -> &'static Lexicon {
    match language_id {
        "python" => &PYTHON,
        "rust" => &RUST,
        _ => &C_LIKE,
    }
}

impl Default for &'static Lexicon {
    fn default() -> &'static Lexicon {
        &C_LIKE
    }
}

impl Lexicon {
    /// The line's code: without a trailing comment (outside string literals), trimmed at the end.
    pub fn code<'a>(&self, line: &'a str) -> &'a str {
        let mut end = line.len();
        self.scan(line, |at, c| {
            if c == '\0' {
                end = at;
            }
        });
        line[..end].trim_end()
    }

    /// Brackets opened minus brackets closed, outside strings, character literals and comments.
    pub fn bracket_balance(&self, line: &str) -> i32 {
        let mut balance = 0;
        self.scan(line, |_, c| match c {
            '(' | '[' | '{' => balance += 1,
            ')' | ']' | '}' => balance -= 1,
            _ => {}
        });
        balance
    }

    /// The closing brackets that the brackets `text` leaves open need, innermost first (outside
    /// strings and comments, line by line); closers of brackets opened before `text` are ignored.
    pub fn unclosed(&self, text: &str) -> String {
        let mut open = Vec::new();
        for line in text.split('\n') {
            self.scan(line, |_, c| match c {
                '(' => open.push(')'),
                '[' => open.push(']'),
                '{' => open.push('}'),
                ')' | ']' | '}' => {
                    open.pop();
                }
                _ => {}
            });
        }
        open.iter().rev().collect()
    }

    /// Whether the line opens a body: it ends with a body opener (`:` in Python, `{` in Rust) or
    /// an opening bracket, so that the next line goes one step deeper.
    pub fn opens_body(&self, line: &str) -> bool {
        let code = self.code(line);
        code.ends_with(self.body_openers) || code.ends_with(['(', '[', '{'])
    }

    /// Whether the line leaves its statement open: it opens a body, or ends with a comma or a
    /// line continuation.
    pub fn opens_block(&self, line: &str) -> bool {
        self.opens_body(line) || self.code(line).ends_with([',', '\\'])
    }

    /// Whether the line's code starts with one of `words` as a whole word.
    pub fn starts_with_word(&self, line: &str, words: &[&str]) -> bool {
        let code = line.trim_start();
        words.iter().any(|word| {
            code.strip_prefix(word).is_some_and(|rest| {
                let next = rest.chars().next();
                // `panic!` ends with punctuation already; other words need a boundary.
                word.ends_with(|c: char| !c.is_alphanumeric() && c != '_')
                    || next.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            })
        })
    }

    /// The clauses that the statement `header` opens a body for and needs later, if any.
    pub fn clauses_needed(&self, header: &str) -> &'static [&'static str] {
        let wanted = self.needs_clause.iter().find(|(word, _)| self.starts_with_word(header, &[word]));
        match wanted {
            Some((_, clauses)) if self.opens_body(header) => clauses,
            _ => &[],
        }
    }

    /// Whether the line is only a comment (or blank).
    pub fn is_comment(&self, line: &str) -> bool {
        let code = line.trim_start();
        code.is_empty() || code.starts_with(self.line_comment)
    }

    /// Calls `code(at, c)` for each character of code outside strings, character literals and
    /// comments, and `code(at, '\0')` where a comment starts (the end of the scan).
    fn scan(&self, line: &str, mut code: impl FnMut(usize, char)) {
        let mut quote: Option<char> = None;
        let mut escaped = false;
        for (at, c) in line.char_indices() {
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                continue;
            }
            if line[at..].starts_with(self.line_comment) {
                return code(at, '\0');
            }
            if self.quotes.contains(&c) {
                quote = Some(c);
            } else if c == '\'' && self.char_literals {
                // A character literal: `'x'` or an escape; anything else is a lifetime or label.
                let rest = &line[at + 1..];
                let literal = rest.starts_with('\\') || rest.chars().nth(1) == Some('\'');
                if literal {
                    quote = Some('\'');
                }
            } else {
                code(at, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_count_outside_strings_literals_and_comments() {
        let cases: &[(&str, &str, i32)] = &[
            ("python", "print(\"(\")", 0),
            ("python", "foo(a, [b", 2),
            ("python", "x = 1  # (unclosed", 0),
            ("python", "s = '(' + f(", 1),
            ("rust", "fn f<'a>(x: &'a str) {", 1),
            ("rust", "let c = '(';", 0),
            ("rust", "let c = '\\'';  // )", 0),
            ("rust", "'outer: loop {", 1),
            ("rust", "let s = \"{\"; // {", 0),
            ("javascript", "f(`(`, '[', \"{\") {", 1),
        ];
        for &(language, line, expected) in cases {
            assert_eq!(lexicon(language).bracket_balance(line), expected, "{language}: {line}");
        }
    }

    #[test]
    fn lines_that_open_a_body_are_told_by_language() {
        let cases: &[(&str, &str, bool)] = &[
            ("python", "    for c in s:", true),
            ("python", "    for c in s:  # each", true),
            ("python", "x = {'a': 1}", false),
            ("python", "x = f(a,", true),
            ("rust", "fn f<'a>(x: &'a str) {", true),
            ("rust", "    match x {  // all", true),
            ("rust", "let x = a:", false),
            ("rust", "let s = \"{\";", false),
        ];
        for &(language, line, expected) in cases {
            assert_eq!(lexicon(language).opens_block(line), expected, "{language}: {line}");
        }
    }

    #[test]
    fn words_are_whole_words() {
        let python = lexicon("python");
        assert!(python.starts_with_word("    return x", python.exit_words));
        assert!(!python.starts_with_word("    returned = 1", python.exit_words));
        assert!(python.starts_with_word("elif x:", python.clause_words));
        let rust = lexicon("rust");
        assert!(rust.starts_with_word("    panic!(\"no\")", rust.exit_words));
        assert!(rust.starts_with_word("} else {", &["}"]));
        assert!(rust.starts_with_word("pub fn f() {", rust.definition_words));
        assert_eq!(rust.code("let x = 1; // one"), "let x = 1;");
        assert_eq!(python.clauses_needed("    try:  # risky"), &["except", "finally"]);
        assert!(python.clauses_needed("    try_it()").is_empty() && rust.clauses_needed("try {").is_empty());
        assert!(rust.is_comment("   // note") && python.is_comment("  # note") && !python.is_comment("x # y"));
    }
}
