//! Completion caches: model outputs by prompt, and the suggestion on screen per document, so that
//! typing the first characters of a suggestion is answered with its rest without the model.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use ropey::Rope;

use crate::prompt::Prompt;

/// Outputs kept.
pub const CAPACITY: usize = 250;
/// Documents larger than this are not checked for typing through (hashing them costs too much).
const MAX_FOLLOW_BYTES: usize = 1024 * 1024;
/// Text after the cursor compared to check that the rest of the document is as it was.
const AFTER_BYTES: usize = 512;

/// A suggestion the editor was shown.
#[derive(Clone, Debug)]
struct Shown {
    start: usize,
    before: u64,
    after: String,
    text: String,
}

#[derive(Default)]
pub struct Cache {
    outputs: VecDeque<(u64, Output)>,
    shown: HashMap<String, Shown>,
}

/// A model output kept for its prompt: the text after the stop rules, and whether a budget cut
/// it before the model had finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub text: String,
    pub unfinished: bool,
}

/// A hash of a prompt (and whatever else decides the output), for the output cache.
pub fn key(prompt: &Prompt, extra: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    prompt.hash(&mut hasher);
    extra.hash(&mut hasher);
    hasher.finish()
}

fn hash_prefix(text: &Rope, end: usize) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    // Bytes alone, not chunk by chunk: equal texts hash equally however the rope splits them.
    for chunk in text.byte_slice(..end).chunks() {
        hasher.write(chunk.as_bytes());
    }
    hasher.finish()
}

fn after(text: &Rope, start: usize) -> String {
    let end = text.char_to_byte(text.byte_to_char((start + AFTER_BYTES).min(text.len_bytes())));
    text.byte_slice(start..end).to_string()
}

impl Cache {
    pub fn output(&mut self, key: u64) -> Option<Output> {
        let at = self.outputs.iter().position(|(k, _)| *k == key)?;
        let entry = self.outputs.remove(at)?;
        let output = entry.1.clone();
        self.outputs.push_back(entry);
        Some(output)
    }

    pub fn store_output(&mut self, key: u64, output: Output) {
        self.outputs.retain(|(k, _)| *k != key);
        self.outputs.push_back((key, output));
        while self.outputs.len() > CAPACITY {
            self.outputs.pop_front();
        }
    }

    /// Remembers the suggestion shown at `start` in document `uri`.
    pub fn shown(&mut self, uri: &str, text: &Rope, start: usize, suggestion: &str) {
        if text.len_bytes() > MAX_FOLLOW_BYTES || suggestion.is_empty() {
            self.shown.remove(uri);
            return;
        }
        let shown =
            Shown { start, before: hash_prefix(text, start), after: after(text, start), text: suggestion.to_owned() };
        self.shown.insert(uri.to_owned(), shown);
    }

    /// If the user typed the start of the shown suggestion (and changed nothing else), the rest.
    pub fn follow(&self, uri: &str, text: &Rope, cursor: usize) -> Option<String> {
        let shown = self.shown.get(uri)?;
        if cursor < shown.start || cursor > text.len_bytes() || text.len_bytes() > MAX_FOLLOW_BYTES {
            return None;
        }
        let typed = text.get_byte_slice(shown.start..cursor)?.to_string();
        let rest = shown.text.strip_prefix(typed.as_str())?;
        if rest.trim().is_empty() {
            return None;
        }
        let now = after(text, cursor);
        let common = now.len().min(shown.after.len());
        let unchanged_after = now.as_bytes()[..common] == shown.after.as_bytes()[..common];
        if !unchanged_after || hash_prefix(text, shown.start) != shown.before {
            return None;
        }
        Some(rest.to_owned())
    }

    pub fn forget(&mut self, uri: &str) {
        self.shown.remove(uri);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_the_start_of_a_suggestion_gives_its_rest() {
        let mut cache = Cache::default();
        let text = Rope::from_str("def f(a, b):\n    return \n");
        cache.shown("u", &text, 24, "a + b");
        let typed = Rope::from_str("def f(a, b):\n    return a \n");
        assert_eq!(cache.follow("u", &typed, 26).as_deref(), Some("+ b"));
        // Typing something else, or editing elsewhere, ends it.
        let other = Rope::from_str("def f(a, b):\n    return x\n");
        assert_eq!(cache.follow("u", &other, 25), None);
        let elsewhere = Rope::from_str("def g(a, b):\n    return a \n");
        assert_eq!(cache.follow("u", &elsewhere, 26), None);
        // Typed to the end: nothing left to show.
        let done = Rope::from_str("def f(a, b):\n    return a + b\n");
        assert_eq!(cache.follow("u", &done, 29), None);
        assert_eq!(cache.follow("other", &typed, 26), None);
    }

    #[test]
    fn outputs_are_kept_in_lru_order() {
        let mut cache = Cache::default();
        for i in 0..CAPACITY as u64 + 5 {
            cache.store_output(i, Output { text: format!("out {i}"), unfinished: i % 2 == 0 });
        }
        let text = |cache: &mut Cache, key| cache.output(key).map(|o| (o.text, o.unfinished));
        assert_eq!(text(&mut cache, 0), None);
        assert_eq!(text(&mut cache, 10), Some(("out 10".into(), true)));
        cache.store_output(999, Output { text: "new".into(), unfinished: false });
        assert_eq!(text(&mut cache, 10), Some(("out 10".into(), true)), "recently used entries survive");
    }

    #[test]
    fn equal_texts_hash_equally_however_the_rope_splits_them() {
        let line = "x = compute(value) + other_value\n";
        let whole = Rope::from_str(&line.repeat(400));
        let mut built = Rope::new();
        for _ in 0..400 {
            let end = built.len_chars();
            built.insert(end, line);
        }
        assert!(
            whole.chunks().count() != built.chunks().count() || whole.chunks().zip(built.chunks()).any(|(a, b)| a != b)
        );
        assert_eq!(hash_prefix(&whole, whole.len_bytes()), hash_prefix(&built, built.len_bytes()));
        assert_ne!(hash_prefix(&whole, 10), hash_prefix(&whole, 11));
    }

    #[test]
    fn output_keys_follow_the_prompt_and_the_variant() {
        let prompt = |prefix: &str| Prompt::Infill { prefix: prefix.into(), suffix: "s".into() };
        assert_eq!(key(&prompt("p"), ""), key(&prompt("p"), ""));
        assert_ne!(key(&prompt("p"), ""), key(&prompt("q"), ""));
        assert_ne!(key(&prompt("p"), ""), key(&prompt("p"), "    "));
    }
}
