//! "Explain this code" and "Document this function": what is explained or documented, the chat
//! prompts that ask for it, and what is made of the answers. Pure: text and trees in, prompts and
//! text out.

use ropey::Rope;
use tree_sitter::{Node, Tree};

use super::template::Extra;
use super::{ChatMessage, Counter, Prompt};
use crate::syntax::Language;

/// What an action works on: bytes `start..end` of the document, whole lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub start: usize,
    pub end: usize,
    /// What it is, for the prompt and for messages: `function`, `class`, `impl`, `selection`, ….
    pub kind: &'static str,
    /// First and last line, 0-based.
    pub lines: (usize, usize),
}

/// Lines around the cursor explained in files without a grammar, or outside any definition.
const AROUND: usize = 12;

/// Definitions that are explained whole when the selection is empty, smallest first as found.
fn unit_kind(language: Language, kind: &str) -> Option<&'static str> {
    match (language, kind) {
        (Language::Python, "function_definition") => Some("function"),
        (Language::Python, "class_definition") => Some("class"),
        (Language::Rust, "function_item") => Some("function"),
        (Language::Rust, "impl_item") => Some("impl block"),
        (Language::Rust, "trait_item") => Some("trait"),
        (Language::Rust, "struct_item") => Some("struct"),
        (Language::Rust, "enum_item") => Some("enum"),
        (Language::Rust, "mod_item") => Some("module"),
        (Language::Rust, "macro_definition") => Some("macro"),
        _ => None,
    }
}

/// What is explained for a request on bytes `start..end`: the selection (widened to whole
/// lines), else the smallest function, method, class or impl around the cursor, else the lines
/// around it. `None` when that holds no code (an empty file, a selection of blank lines).
pub fn target(
    language: Option<Language>,
    text: &Rope,
    tree: Option<&Tree>,
    start: usize,
    end: usize,
) -> Option<Target> {
    let (start, end) = (start.min(text.len_bytes()), end.min(text.len_bytes()));
    let (start, end) = (start.min(end), start.max(end));
    let selected = text.byte_slice(start..end).to_string();
    let target = if start < end {
        if selected.trim().is_empty() {
            return None;
        }
        // A selection that ends at the start of a line does not take that line.
        let last = text.byte_to_line(if is_line_start(text, end) { end - 1 } else { end });
        lines_target(text, text.byte_to_line(start), last, "selection")
    } else if let Some(unit) = language.zip(tree).and_then(|(l, t)| enclosing_unit(l, t, start)) {
        unit
    } else {
        let line = text.byte_to_line(start);
        let last = (line + AROUND).min(text.len_lines().saturating_sub(1));
        lines_target(text, line.saturating_sub(AROUND), last, "code")
    };
    let code = text.byte_slice(target.start..target.end).to_string();
    (!code.trim().is_empty()).then_some(target)
}

fn is_line_start(text: &Rope, byte: usize) -> bool {
    text.line_to_byte(text.byte_to_line(byte)) == byte
}

/// Lines `first..=last`, from the start of the first to the end of the last (its line break left
/// out, as for a definition).
fn lines_target(text: &Rope, first: usize, last: usize, kind: &'static str) -> Target {
    let line = text.line(last).to_string();
    let content = line.trim_end_matches(['\n', '\r']).len();
    let end = text.line_to_byte(last) + content;
    Target { start: text.line_to_byte(first), end, kind, lines: (first, last) }
}

/// The smallest definition around `byte`, with its decorators (Python) or attributes and doc
/// comments (Rust) left out: the code itself.
fn enclosing_unit(language: Language, tree: &Tree, byte: usize) -> Option<Target> {
    let mut node = tree.root_node().descendant_for_byte_range(byte, byte);
    while let Some(current) = node {
        if let Some(kind) = unit_kind(language, current.kind()) {
            return Some(node_target(current, kind));
        }
        node = current.parent();
    }
    None
}

fn node_target(node: Node, kind: &'static str) -> Target {
    let (first, last) = (node.start_position().row, node.end_position().row);
    // From the start of its first line (the indentation included) to the end of its last.
    let start = node.start_byte() - node.start_position().column;
    Target { start, end: node.end_byte(), kind, lines: (first, last) }
}

/// How a language writes a function's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocStyle {
    /// `///` lines above the item (and above its attributes).
    RustLines,
    /// A docstring: the first statement of the body.
    PythonDocstring,
}

/// Where "Document this function" writes: the function, and the line its comment goes before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocSite {
    /// The function's code, attributes and decorators left out.
    pub function: Target,
    /// The 0-based line the comment is inserted before (at its start).
    pub line: usize,
    /// The comment's indentation.
    pub indent: String,
    pub style: DocStyle,
}

/// The undocumented function around `byte` and where its documentation goes; `None` outside a
/// function, for a function that has documentation already, and for a Python function whose body
/// starts on the `def` line.
pub fn doc_site(language: Option<Language>, text: &Rope, tree: Option<&Tree>, byte: usize) -> Option<DocSite> {
    let (language, tree) = (language?, tree?);
    let kind = match language {
        Language::Python => "function_definition",
        Language::Rust => "function_item",
    };
    let byte = byte.min(text.len_bytes());
    let mut node = tree.root_node().descendant_for_byte_range(byte, byte);
    while let Some(current) = node {
        if current.kind() == kind {
            break;
        }
        // On a decorator or an attribute: the function they belong to.
        let decorated = match current.kind() {
            "decorated_definition" => current.child_by_field_name("definition"),
            "attribute_item" => {
                let mut next = current.next_named_sibling();
                while next.is_some_and(|n| n.kind() == "attribute_item" || n.kind() == "line_comment") {
                    next = next.and_then(|n| n.next_named_sibling());
                }
                next
            }
            _ => None,
        };
        if let Some(function) = decorated.filter(|n| n.kind() == kind) {
            node = Some(function);
            break;
        }
        node = current.parent();
    }
    let function = node?;
    let indent_of = |row: usize| -> String { text.line(row).chars().take_while(|c| *c == ' ' || *c == '\t').collect() };
    let (line, indent, style) = match language {
        Language::Python => {
            let body = function.child_by_field_name("body")?;
            if body.start_position().row == function.start_position().row {
                return None;
            }
            let first = body.named_child(0)?;
            let is_string = |n: Node| n.kind() == "string" || n.kind() == "concatenated_string";
            if first.kind() == "expression_statement" && first.named_child(0).is_some_and(is_string) {
                return None;
            }
            // Right below the header (above any comment that opens the body), indented as the body.
            let mut walker = function.walk();
            let colon = function.children(&mut walker).filter(|n| n.kind() == ":").last();
            let row = colon.map_or(body.start_position().row, |colon| colon.end_position().row + 1);
            (row, indent_of(body.start_position().row), DocStyle::PythonDocstring)
        }
        Language::Rust => {
            // Attributes and comments right above belong to the function: the comment goes above
            // the attributes, and a doc comment among them means it is documented.
            let mut top = function.start_position().row;
            let mut above = function.prev_sibling();
            while let Some(node) = above {
                if node.end_position().row + 1 < top {
                    break;
                }
                let source = text.byte_slice(node.byte_range()).to_string();
                match node.kind() {
                    "line_comment" | "block_comment"
                        if source.starts_with("///") && !source.starts_with("////")
                            || source.starts_with("/**") && !source.starts_with("/***") =>
                    {
                        return None;
                    }
                    "attribute_item" => top = node.start_position().row,
                    _ => break,
                }
                above = node.prev_sibling();
            }
            (top, indent_of(function.start_position().row), DocStyle::RustLines)
        }
    };
    Some(DocSite { function: node_target(function, "function"), line, indent, style })
}

/// What the explain prompt shows besides the code.
pub struct Context<'a> {
    /// The file's path, relative to the workspace where possible.
    pub path: &'a str,
    /// The LSP language id, for the code fences.
    pub language_id: &'a str,
    /// The file's import lines.
    pub imports: &'a [String],
    /// Definitions of the names the code uses, nearest first.
    pub definitions: &'a [Extra],
}

/// The instruction of the explain prompt: a summary paragraph first, then what matters.
const EXPLAIN_ASK: &str = "Explain this code to a programmer who is about to change it. Start with one paragraph that \
says what the code does and what it is for, in plain words. Then, only where they matter, the details a reader \
needs: inputs, outputs, edge cases, errors, side effects, and anything surprising. Write Markdown. Do not restate \
the code line by line.";

/// The chat prompt that asks to explain `code`, within `budget` tokens counted with `counter`:
/// the code always, then the imports and as many definitions as fit, nearest first.
pub fn explain_prompt(target: &Target, code: &str, context: &Context, budget: usize, counter: &dyn Counter) -> Prompt {
    chat_prompt(EXPLAIN_ASK, code_part("explain", target, code, context), context, budget, counter)
}

/// The instruction of the document prompt, in the language's own conventions.
fn document_ask(style: DocStyle) -> &'static str {
    match style {
        DocStyle::RustLines => {
            "Write the rustdoc documentation of this Rust function: a one-sentence summary of what it \
does, then, only where they matter, a short paragraph and the sections `# Errors` (what it returns `Err` for) and \
`# Panics`. Answer with the text of the comment only: no `///` markers, no code fence around it, no copy of the \
function."
        }
        DocStyle::PythonDocstring => {
            "Write the docstring of this Python function (PEP 257): a one-line summary of what \
it does, then, only where they matter, a blank line and the sections `Args:`, `Returns:` and `Raises:`. Answer with \
the text of the docstring only: no quotes, no code fence around it, no copy of the function."
        }
    }
}

/// The chat prompt that asks for the documentation of the function at `site`, with the same
/// context as an explanation.
pub fn document_prompt(site: &DocSite, code: &str, context: &Context, budget: usize, counter: &dyn Counter) -> Prompt {
    let code_part = code_part("document", &site.function, code, context);
    chat_prompt(document_ask(site.style), code_part, context, budget, counter)
}

/// The code a prompt is about, fenced, with where it comes from.
fn code_part(verb: &str, target: &Target, code: &str, context: &Context) -> String {
    let fence = super::template::fence_language(context.language_id);
    let (first, last) = (target.lines.0 + 1, target.lines.1 + 1);
    format!(
        "The {kind} to {verb}, from `{path}` (lines {first}-{last}):\n```{fence}\n{code}\n```",
        kind = target.kind,
        path = context.path,
        code = code.trim_end(),
    )
}

/// A chat prompt that asks `ask` about `code_part`, within `budget` tokens counted with
/// `counter`: the code always, then the imports and as many definitions as fit, nearest first.
pub(super) fn chat_prompt(
    ask: &str,
    code_part: String,
    context: &Context,
    budget: usize,
    counter: &dyn Counter,
) -> Prompt {
    let fence = super::template::fence_language(context.language_id);
    let mut room = budget.saturating_sub(counter.count(ask) + counter.count(&code_part));
    let mut parts = vec![ask.to_owned()];
    if !context.imports.is_empty() {
        let imports = format!("The file's imports:\n```{fence}\n{}\n```", context.imports.join("\n"));
        let cost = counter.count(&imports);
        if cost <= room {
            room -= cost;
            parts.push(imports);
        }
    }
    let mut shown = Vec::new();
    for definition in context.definitions {
        let part = format!("From `{}`:\n```{fence}\n{}\n```", definition.path, definition.text.trim_end());
        let cost = counter.count(&part);
        if cost <= room {
            room -= cost;
            shown.push(part);
        }
    }
    if !shown.is_empty() {
        parts.push(format!("Definitions of names the code uses:\n\n{}", shown.join("\n\n")));
    }
    parts.push(code_part);
    let messages = vec![ChatMessage { role: "user".into(), content: parts.join("\n\n") }];
    Prompt::Chat { messages, answer_prefix: String::new() }
}

/// The summary paragraph of an explanation: its first paragraph of prose (headings, rules and
/// leading blank lines skipped), on one line.
pub fn summary(markdown: &str) -> String {
    let mut lines = Vec::new();
    for line in markdown.lines().map(str::trim) {
        let heading = line.starts_with('#') || line.chars().all(|c| c == '-' || c == '=' || c == '*');
        if lines.is_empty() && (line.is_empty() || heading) {
            continue;
        }
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    lines.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::Estimate;
    use crate::syntax;

    /// The target for a request marked with `$0` (a cursor) or `$0…$1` (a selection), as text.
    fn target_of(language: Option<Language>, marked: &str) -> Option<(String, &'static str)> {
        let start = marked.find("$0").unwrap();
        let text = marked.replacen("$0", "", 1);
        let end = text.find("$1").unwrap_or(start);
        let text = Rope::from_str(&text.replacen("$1", "", 1));
        let tree = language.and_then(|l| syntax::parse(l, &text, None));
        let found = target(language, &text, tree.as_ref(), start, end)?;
        Some((text.byte_slice(found.start..found.end).to_string(), found.kind))
    }

    const PY: Option<Language> = Some(Language::Python);
    const RS: Option<Language> = Some(Language::Rust);

    #[test]
    fn an_empty_selection_explains_the_smallest_definition_around_the_cursor() {
        let py = "import os\n\nclass A:\n    def f(self):\n        return $0os.sep\n\n    def g(self):\n        pass\n";
        assert_eq!(target_of(PY, py), Some(("    def f(self):\n        return os.sep".into(), "function")));
        let py = "class A:\n    x = 1$0\n\n    def g(self):\n        pass\n";
        let (code, kind) = target_of(PY, py).unwrap();
        assert!(code.starts_with("class A:") && code.ends_with("pass"), "{code:?}");
        assert_eq!(kind, "class");
        let rs = "struct S;\n\nimpl S {\n    fn new() -> S {\n        S$0\n    }\n}\n";
        assert_eq!(target_of(RS, rs), Some(("    fn new() -> S {\n        S\n    }".into(), "function")));
        let rs = "struct S;\n\nimpl S {\n$0\n    fn new() -> S {\n        S\n    }\n}\n";
        assert_eq!(target_of(RS, rs).map(|t| t.1), Some("impl block"));
    }

    #[test]
    fn a_selection_is_explained_as_whole_lines() {
        let py = "def f(a):\n    b = $0a + 1\n    return b$1\n";
        assert_eq!(target_of(PY, py), Some(("    b = a + 1\n    return b".into(), "selection")));
        // Ending at the start of a line does not take that line.
        let py = "x = 1\n$0y = 2\n$1z = 3\n";
        assert_eq!(target_of(PY, py), Some(("y = 2".into(), "selection")));
    }

    #[test]
    fn outside_definitions_and_grammars_the_lines_around() {
        let text: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let marked = text.replacen("line 20", "line $020", 1);
        let (code, kind) = target_of(None, &marked).unwrap();
        assert!(code.starts_with("line 8\n") && code.ends_with("line 32"), "{code:?}");
        assert_eq!(kind, "code");
        assert_eq!(target_of(PY, "\n\n$0\n\n"), None, "nothing to explain");
        assert_eq!(target_of(PY, "x = 1\n$0\n\n$1\n"), None, "a selection of blank lines");
    }

    #[test]
    fn the_prompt_keeps_the_code_and_fits_what_else_it_can() {
        let target = Target { start: 0, end: 0, kind: "function", lines: (3, 4) };
        let definitions = [
            Extra { path: "util.py".into(), text: "def helper(x):\n    return x * 2".into() },
            Extra { path: "big.py".into(), text: "x = 1\n".repeat(400) },
        ];
        let imports = ["import os".to_owned()];
        let context = Context { path: "app.py", language_id: "python", imports: &imports, definitions: &definitions };
        let code = "def f(a):\n    return helper(a)";
        let Prompt::Chat { messages, answer_prefix } = explain_prompt(&target, code, &context, 400, &Estimate) else {
            panic!("a chat prompt")
        };
        let asked = &messages[0].content;
        assert!(asked.starts_with(EXPLAIN_ASK), "{asked}");
        assert!(
            asked.contains("from `app.py` (lines 4-5):\n```python\ndef f(a):\n    return helper(a)\n```"),
            "{asked}"
        );
        assert!(asked.contains("import os") && asked.contains("From `util.py`:"), "{asked}");
        assert!(!asked.contains("big.py"), "a definition that does not fit is left out");
        assert!(answer_prefix.is_empty());
        // No room: the code alone.
        let Prompt::Chat { messages, .. } = explain_prompt(&target, code, &context, 10, &Estimate) else { panic!() };
        assert!(!messages[0].content.contains("import os") && messages[0].content.contains("helper(a)"));
    }

    /// Where the doc comment of the function at `$0` goes: (the line it is inserted before, the
    /// indentation, the function's first line).
    fn site_of(language: Option<Language>, marked: &str) -> Option<(usize, String, String)> {
        let at = marked.find("$0").unwrap();
        let text = Rope::from_str(&marked.replacen("$0", "", 1));
        let tree = language.and_then(|l| syntax::parse(l, &text, None));
        let site = doc_site(language, &text, tree.as_ref(), at)?;
        let first = text.line(site.function.lines.0).to_string().trim_end().to_owned();
        Some((site.line, site.indent, first))
    }

    #[test]
    fn documentation_goes_first_in_a_python_body_and_above_rust_attributes() {
        let py = "class A:\n    @property\n    def f(self):\n        # note\n        return $01\n";
        assert_eq!(site_of(PY, py), Some((3, "        ".into(), "    def f(self):".into())));
        let py = "def f(\n    a,\n) -> int:\n    return $0a\n";
        assert_eq!(site_of(PY, py), Some((3, "    ".into(), "def f(".into())));
        // On the decorator: the function it decorates.
        let py = "class A:\n    @prop$0erty\n    def f(self):\n        return 1\n";
        assert_eq!(site_of(PY, py).map(|s| s.0), Some(3));
        // Documented, on one line, or outside any function: nowhere.
        assert_eq!(site_of(PY, "def f():\n    \"\"\"Doc.\"\"\"\n    return $01\n"), None);
        assert_eq!(site_of(PY, "def f(): return $01\n"), None);
        assert_eq!(site_of(PY, "x = $01\n"), None);

        let rs = "impl S {\n    // Fast path.\n    #[inline]\n    #[must_use]\n    fn f(&self) -> u8 {\n        $01\n    }\n}\n";
        assert_eq!(site_of(RS, rs), Some((2, "    ".into(), "    fn f(&self) -> u8 {".into())));
        // On an attribute: the function it belongs to.
        let rs = "#[inl$0ine]\nfn f() {}\n";
        assert_eq!(site_of(RS, rs), Some((0, String::new(), "fn f() {}".into())));
        // A doc comment, above or among the attributes: documented.
        assert_eq!(site_of(RS, "/// Doc.\n#[inline]\nfn f() { $0}\n"), None);
        assert_eq!(site_of(RS, "#[inline]\n/** Doc. */\nfn f() { $0}\n"), None);
        // A doc comment for something else further up does not count.
        assert_eq!(site_of(RS, "/// Doc.\nfn g() {}\n\nfn f() { $0}\n").map(|s| s.0), Some(3));
        assert_eq!(site_of(None, "fn f() { $0}\n"), None);
    }

    #[test]
    fn the_summary_is_the_first_paragraph_of_prose() {
        assert_eq!(summary("Adds one.\nTo a.\n\nDetails."), "Adds one. To a.");
        assert_eq!(summary("\n## Summary\n\nParses the header.\n\n- a"), "Parses the header.");
        assert_eq!(summary(""), "");
    }
}
