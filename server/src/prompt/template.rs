//! Prompt templates: native fill-in-the-middle, an instruct "fill the hole" prompt for chat
//! models without FIM training, and plain prefix continuation for base models.
//!
//! Every template orders the prompt so that what changes least comes first: extra context, then
//! the file above the cursor's line, then the code after the cursor, and last the cursor's own
//! line. Typing on a line then changes only the prompt's last few tokens, and the engine's KV
//! cache keeps the rest.

use super::window::Window;
use super::{ChatMessage, Prompt, Segment, Special};
use crate::models::ModelInfo;

/// How completion prompts are built (the `completion.fimMode` setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FimMode {
    Auto,
    Native,
    Instruct,
    Prefix,
}

/// How the prompt asks for the completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The vocabulary's FIM tokens. `spm`: suffix before prefix, as Codestral expects.
    Native { spm: bool },
    /// A chat prompt that shows the code and asks for the missing part.
    Instruct,
    /// The code before the cursor, continued.
    Prefix,
}

/// Model families trained for fill-in-the-middle. FIM-looking tokens in a vocabulary are not
/// proof of that training: Qwen2.5 chat models share the coder models' tokenizer, for example.
const FIM_FAMILIES: &[&str] = &[
    "coder",
    "starcoder",
    "codellama",
    "code llama",
    "codegemma",
    "codestral",
    "stable-code",
    "santacoder",
    "refact",
    "granite-code",
    "granite code",
    "codeqwen",
];

/// Picks the mode: the setting, or for `auto` the model's family and vocabulary.
pub fn choose(setting: FimMode, model: &ModelInfo) -> Mode {
    let name = model.name.to_ascii_lowercase();
    let spm = name.contains("codestral");
    match setting {
        FimMode::Native => Mode::Native { spm },
        FimMode::Instruct => Mode::Instruct,
        FimMode::Prefix => Mode::Prefix,
        FimMode::Auto if model.has_fim_tokens && FIM_FAMILIES.iter().any(|f| name.contains(f)) => Mode::Native { spm },
        FimMode::Auto if model.has_chat_template => Mode::Instruct,
        FimMode::Auto => Mode::Prefix,
    }
}

/// A piece of context from another file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extra {
    pub path: String,
    pub text: String,
}

/// Everything a template needs.
pub struct Parts<'a> {
    pub window: &'a Window,
    /// The file's path, relative to the workspace where possible.
    pub path: &'a str,
    /// The LSP language id, for comment syntax and code fences.
    pub language_id: &'a str,
    /// The project's name, for repo-level tokens.
    pub repo: &'a str,
    pub extras: &'a [Extra],
    /// The vocabulary has `<|repo_name|>` and `<|file_sep|>`.
    pub repo_tokens: bool,
}

/// Builds the prompt for `mode`.
pub fn build(mode: Mode, parts: &Parts) -> Prompt {
    match mode {
        Mode::Native { spm } => native(parts, spm),
        Mode::Instruct => instruct(parts),
        Mode::Prefix => Prompt::Segments(vec![Segment::Text(format!(
            "{}{}{}",
            comment_header(parts),
            parts.window.prefix,
            parts.window.line_before
        ))]),
    }
}

fn native(parts: &Parts, spm: bool) -> Prompt {
    use Segment::{Special as S, Text as T};
    let window = parts.window;
    let mut segments = Vec::new();
    let header = if parts.repo_tokens {
        segments.push(S(Special::FimRepo));
        segments.push(T(format!("{}\n", parts.repo)));
        for extra in parts.extras {
            segments.push(S(Special::FimSeparator));
            segments.push(T(format!("{}\n{}\n", extra.path, extra.text)));
        }
        segments.push(S(Special::FimSeparator));
        segments.push(T(format!("{}\n", parts.path)));
        String::new()
    } else {
        comment_header(parts)
    };
    if spm {
        segments.extend([S(Special::FimSuffix), T(window.suffix.clone()), S(Special::FimPrefix)]);
        segments.push(T(format!("{header}{}{}", window.prefix, window.line_before)));
        segments.push(S(Special::FimMiddle));
    } else {
        // The cursor's line goes after FIM_MIDDLE, as the start of the middle: typing on the line
        // then leaves everything before it, the code after the cursor included, in the cache.
        segments.extend([S(Special::FimPrefix), T(format!("{header}{}", window.prefix)), S(Special::FimSuffix)]);
        segments.extend([T(window.suffix.clone()), S(Special::FimMiddle), T(window.line_before.clone())]);
    }
    Prompt::Segments(segments)
}

fn instruct(parts: &Parts) -> Prompt {
    let window = parts.window;
    let fence = fence_language(parts.language_id);
    let mut context = String::new();
    for extra in parts.extras {
        context.push_str(&format!("From `{}`:\n```{fence}\n{}\n```\n\n", extra.path, extra.text));
    }
    // The request comes first, in the same words wherever the cursor is, then the code after the
    // cursor and the code before it; the cursor's line is not in the question but starts the
    // answer. Moving to another line then changes only the prompt's end from that line on, and
    // typing on the line only the answer's start.
    let question = format!(
        "{context}Complete the code in `{path}` at the cursor. Write only the code that belongs there: the rest of the cursor's line, and more lines only where the code at the cursor is unfinished. Your answer continues the cursor's line. Do not repeat the code before or after the cursor. No explanations.\n\nThe code after the cursor:\n```{fence}\n{suffix}\n```\n\nThe code before the cursor's line:\n```{fence}\n{prefix}\n```",
        path = parts.path,
        suffix = window.suffix.trim_end(),
        prefix = window.prefix.trim_end(),
    );
    let messages = vec![ChatMessage { role: "user".into(), content: question }];
    Prompt::Chat { messages, answer_prefix: format!("```{fence}\n{}", window.line_before) }
}

/// Context from other files as comment lines ahead of the code, for models without repo tokens.
fn comment_header(parts: &Parts) -> String {
    let mark = comment_mark(parts.language_id);
    let mut header = String::new();
    for extra in parts.extras {
        header.push_str(&format!("{mark} Path: {}\n", extra.path));
        for line in extra.text.lines() {
            header.push_str(&format!("{mark} {line}\n"));
        }
    }
    if !parts.extras.is_empty() || parts.window.from_file_start {
        header.push_str(&format!("{mark} Path: {}\n", parts.path));
    }
    header
}

/// The line-comment mark of a language.
pub fn comment_mark(language_id: &str) -> &'static str {
    match language_id {
        "python" | "shellscript" | "ruby" | "perl" | "r" | "yaml" | "toml" | "dockerfile" | "makefile" | "elixir" => {
            "#"
        }
        "lua" | "sql" | "haskell" => "--",
        "vim" => "\"",
        "latex" | "tex" | "erlang" => "%",
        _ => "//",
    }
}

pub(crate) fn fence_language(language_id: &str) -> &str {
    match language_id {
        "plaintext" => "",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, fim: bool, chat: bool) -> ModelInfo {
        ModelInfo { name: name.into(), has_fim_tokens: fim, has_chat_template: chat, ..ModelInfo::default() }
    }

    #[test]
    fn auto_picks_by_family_and_vocabulary() {
        assert_eq!(
            choose(FimMode::Auto, &info("Qwen2.5 Coder 0.5B Instruct", true, true)),
            Mode::Native { spm: false }
        );
        // SmolLM2 (llama architecture, no FIM tokens), like Mistral 7B Instruct.
        assert_eq!(choose(FimMode::Auto, &info("SmolLM2 135M Instruct", false, true)), Mode::Instruct);
        assert_eq!(choose(FimMode::Auto, &info("Mistral-7B-Instruct-v0.3", false, true)), Mode::Instruct);
        // FIM-looking tokens in a chat model's vocabulary are not FIM training.
        assert_eq!(choose(FimMode::Auto, &info("Qwen2.5 0.5B Instruct", true, true)), Mode::Instruct);
        assert_eq!(choose(FimMode::Auto, &info("Codestral 22B", true, false)), Mode::Native { spm: true });
        assert_eq!(choose(FimMode::Auto, &info("Some Base Model", false, false)), Mode::Prefix);
        assert_eq!(choose(FimMode::Prefix, &info("Qwen2.5 Coder", true, true)), Mode::Prefix);
    }

    fn window() -> Window {
        Window {
            prefix: "def add(a, b):\n".into(),
            line_before: "    return ".into(),
            suffix: "\n\nprint(add(1, 2))\n".into(),
            start_line: 0,
            from_file_start: true,
        }
    }

    fn parts<'a>(window: &'a Window, extras: &'a [Extra], repo_tokens: bool) -> Parts<'a> {
        Parts { window, path: "src/add.py", language_id: "python", repo: "demo", extras, repo_tokens }
    }

    #[test]
    fn native_psm_puts_the_cursor_line_last() {
        let window = window();
        let extras = [Extra { path: "src/util.py".into(), text: "def scale(x): ...".into() }];
        let Prompt::Segments(segments) = build(Mode::Native { spm: false }, &parts(&window, &extras, true)) else {
            panic!()
        };
        use Segment::{Special as S, Text as T};
        assert_eq!(
            segments,
            vec![
                S(Special::FimRepo),
                T("demo\n".into()),
                S(Special::FimSeparator),
                T("src/util.py\ndef scale(x): ...\n".into()),
                S(Special::FimSeparator),
                T("src/add.py\n".into()),
                S(Special::FimPrefix),
                T("def add(a, b):\n".into()),
                S(Special::FimSuffix),
                T("\n\nprint(add(1, 2))\n".into()),
                S(Special::FimMiddle),
                T("    return ".into()),
            ]
        );
    }

    #[test]
    fn without_repo_tokens_context_becomes_comments() {
        let window = window();
        let extras = [Extra { path: "src/util.py".into(), text: "def scale(x): ...".into() }];
        let Prompt::Segments(segments) = build(Mode::Native { spm: false }, &parts(&window, &extras, false)) else {
            panic!()
        };
        assert_eq!(
            segments[1],
            Segment::Text("# Path: src/util.py\n# def scale(x): ...\n# Path: src/add.py\ndef add(a, b):\n".into())
        );
        let Prompt::Segments(spm) = build(Mode::Native { spm: true }, &parts(&window, &[], false)) else { panic!() };
        assert_eq!(spm[0], Segment::Special(Special::FimSuffix));
        assert_eq!(spm.last(), Some(&Segment::Special(Special::FimMiddle)));
    }

    #[test]
    fn instruct_starts_the_answer_with_the_cursor_line() {
        let window = window();
        let Prompt::Chat { messages, answer_prefix } = build(Mode::Instruct, &parts(&window, &[], false)) else {
            panic!()
        };
        assert_eq!(answer_prefix, "```python\n    return ");
        let question = &messages[0].content;
        assert!(question.contains("print(add(1, 2))") && question.contains("def add(a, b):"), "{question}");
        assert!(!question.contains("return"), "the cursor line is only in the answer");
        // The request first, the code before the cursor's line last: a move to another line
        // changes only the prompt's end.
        assert!(question.starts_with("Complete the code in `src/add.py`"), "{question}");
        assert!(question.ends_with("def add(a, b):\n```"), "{question}");
    }

    #[test]
    fn prefix_mode_is_the_code_before_the_cursor() {
        let window = window();
        assert_eq!(
            build(Mode::Prefix, &parts(&window, &[], false)),
            Prompt::Segments(vec![Segment::Text("# Path: src/add.py\ndef add(a, b):\n    return ".into())])
        );
    }
}
