//! Prompt building: what the model sees for a completion. Pure: text in, text out.
//!
//! For now the whole buffer is split at the cursor. Context selection within a token budget,
//! cross-file snippets and per-model templates come with the inline-completions work.

use ropey::Rope;

/// The text around the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Infill {
    pub prefix: String,
    pub suffix: String,
}

/// Splits `text` at byte `cursor` (rounded down to a character boundary).
pub fn infill(text: &Rope, cursor: usize) -> Infill {
    let cursor = text.char_to_byte(text.byte_to_char(cursor.min(text.len_bytes())));
    Infill { prefix: text.byte_slice(..cursor).to_string(), suffix: text.byte_slice(cursor..).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `$0` marks the cursor.
    fn check(marked: &str, prefix: &str, suffix: &str) {
        let cursor = marked.find("$0").expect("no cursor marker");
        let text = Rope::from_str(&marked.replacen("$0", "", 1));
        assert_eq!(infill(&text, cursor), Infill { prefix: prefix.into(), suffix: suffix.into() });
    }

    #[test]
    fn splits_at_the_cursor() {
        check("def f():\n    $0\n", "def f():\n    ", "\n");
        check("$0x", "", "x");
        check("x$0", "x", "");
        check("é$0😀", "é", "😀");
    }
}
