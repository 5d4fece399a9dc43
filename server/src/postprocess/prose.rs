//! Stops prose (an explanation's markdown) that has started to repeat itself: small models,
//! greedy, can fall into a loop that writes the same sentences until the token cap.

use std::collections::HashSet;

/// Sentences shorter than this may repeat in good prose ("It returns `None`."); longer ones,
/// word for word, are a loop.
const MIN_SENTENCE_CHARS: usize = 24;

/// Where the text should end because a sentence (or a line) repeats one written before it: the
/// start of the repeat. Only complete sentences count (ended by `.`, `!` or `?` and a blank, or
/// by a line break); code blocks are left alone, since code repeats legitimately.
pub fn cut_at_repeated_sentence(markdown: &str) -> Option<usize> {
    let mut seen = HashSet::new();
    let mut in_code = false;
    let mut line_start = 0;
    for line in markdown.split_inclusive('\n') {
        let complete = line.ends_with('\n');
        if line.trim_start().starts_with("```") {
            in_code ^= complete;
        } else if !in_code {
            for (start, sentence) in sentences(line, complete) {
                let words: Vec<&str> = sentence.split_whitespace().collect();
                let key = words.join(" ");
                if key.len() >= MIN_SENTENCE_CHARS && !seen.insert(key) {
                    return Some(line_start + start);
                }
            }
        }
        line_start += line.len();
    }
    None
}

/// The complete sentences of one line, with their offsets in it; the text after the last one is
/// a sentence too when the line is complete.
fn sentences(line: &str, complete: bool) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    let mut start = 0;
    let bytes = line.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        let ends = matches!(byte, b'.' | b'!' | b'?') && bytes.get(at + 1).is_some_and(u8::is_ascii_whitespace);
        if ends {
            found.push((start, &line[start..=at]));
            start = at + 1;
        }
    }
    if complete && !line[start..].trim().is_empty() {
        found.push((start, &line[start..]));
    }
    // Offsets point at the sentence's first character, not the blanks before it.
    found
        .into_iter()
        .map(|(start, sentence)| {
            let blanks = sentence.len() - sentence.trim_start().len();
            (start + blanks, sentence.trim())
        })
        .filter(|(_, sentence)| !sentence.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::cut_at_repeated_sentence;

    /// `|` marks where the text should be cut; no marker, no cut.
    #[test]
    fn prose_is_cut_where_a_sentence_repeats() {
        let cases = [
            // A loop inside the summary paragraph: cut before the second round.
            "It sums the list and returns the total. Empty lists give zero. |It sums the list and returns the total. Emp",
            // A repeated line (a bullet) counts as a sentence.
            "- `values`: the numbers to add up.\n- `limit`: the largest sum.\n|- `values`: the numbers to add up.\n",
            // Blanks inside do not hide a repeat.
            "The function returns the first match.\n\n|The  function returns the first match. ",
            // Short sentences repeat in good prose.
            "It may fail. The caller should retry it later. It may fail. ",
            // Not complete yet: the second copy may still go on differently.
            "It sums the list and returns the total. It sums the list and returns the total",
            // Code repeats legitimately.
            "Use it like this:\n```python\ntotal = add_all(values, limit)\ntotal = add_all(values, limit)\n```\nDone.",
            // The same words inside a longer sentence are not a repeat.
            "The result is sorted in place.\nNote: the result is sorted in place. ",
        ];
        for marked in cases {
            let text = marked.replace('|', "");
            assert_eq!(cut_at_repeated_sentence(&text), marked.find('|'), "{marked:?}");
        }
    }
}
