//! The text a job generates, with the job's stop rules and time limits applied as it grows:
//! shared by every backend, local or remote, so that they end jobs the same way.

use std::time::Instant;

use super::{Job, StopReason};

/// Generated text so far, and where the stop rules cut it.
#[derive(Debug, Default)]
pub(crate) struct Generation {
    text: String,
    /// Bytes of a character not complete yet.
    pending: Vec<u8>,
    /// Where a stop rule or a time limit cut the text.
    cut: Option<usize>,
    /// When the first line with code in it was complete.
    first_line_done: Option<Instant>,
    pub tokens: usize,
}

impl Generation {
    /// Everything generated so far (complete characters only).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Adds one token's bytes; says why generation ends, if it ends with this token.
    pub fn push(&mut self, job: &Job, piece: &[u8], now: Instant) -> Option<StopReason> {
        self.tokens += 1;
        let checked_from = self.text.len().saturating_sub(job.stop.iter().map(String::len).max().unwrap_or(0));
        let new_line = piece.contains(&b'\n');
        let has_code = self.text.bytes().any(|b| !b.is_ascii_whitespace());
        if new_line && has_code && self.first_line_done.is_none() {
            self.first_line_done = Some(now);
        }
        self.pending.extend_from_slice(piece);
        let complete = complete_utf8(&mut self.pending);
        self.text.push_str(&complete);
        if let (false, Some(sink)) = (complete.is_empty(), &job.on_text) {
            (sink.0)(&self.text);
        }
        if let (true, Some(check)) = (new_line || job.stop_check_every_token, &job.stop_check) {
            if let Some(cut) = (check.0)(&self.text) {
                self.cut = Some(cut);
                return Some(StopReason::StopString);
            }
        }
        if !job.stop.is_empty() {
            let tail = &self.text[floor_char_boundary(&self.text, checked_from)..];
            if job.stop.iter().any(|stop| tail.contains(stop.as_str())) {
                return Some(StopReason::StopString);
            }
        }
        if self.tokens >= job.max_tokens as usize {
            return Some(StopReason::MaxTokens);
        }
        None
    }

    /// Whether a time limit ends generation now; `first_token` is when generation began.
    pub fn over_time(&mut self, job: &Job, first_token: Instant, now: Instant) -> Option<StopReason> {
        if self.tokens > 0 && now.duration_since(first_token) > job.budget.generation {
            return Some(StopReason::TimeBudget);
        }
        if self.first_line_done.is_some_and(|at| now.duration_since(at) > job.budget.after_first_line) {
            // Keep whole lines only: cut after the last line break.
            let last_break = self.text.rfind('\n').unwrap_or(0);
            self.cut = Some(self.cut.map_or(last_break, |cut| cut.min(last_break)));
            return Some(StopReason::TimeBudget);
        }
        None
    }

    /// The output's text (cut by the rules) and everything generated.
    pub fn finish(&self, job: &Job, stop: StopReason) -> (String, String) {
        // A character still incomplete when generation stops is dropped, not shown as U+FFFD.
        let generated = self.text.clone();
        let mut text = generated.clone();
        if let Some(cut) = self.cut {
            text.truncate(floor_char_boundary(&text, cut));
        } else if stop == StopReason::StopString {
            if let Some(at) = job.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                text.truncate(at);
            }
        }
        (text, generated)
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Takes the complete characters off the front of `pending` (bytes of generated text) and
/// leaves there the start of a character whose remaining bytes have not been generated yet.
/// Bytes that can never begin or continue a character become U+FFFD at once, so nothing waits
/// on them.
pub(crate) fn complete_utf8(pending: &mut Vec<u8>) -> String {
    let mut text = String::new();
    let mut rest = pending.as_slice();
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                text.push_str(valid);
                rest = &[];
                break;
            }
            Err(err) => {
                let (valid, after) = rest.split_at(err.valid_up_to());
                text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match err.error_len() {
                    Some(invalid) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        rest = &after[invalid..];
                    }
                    None => {
                        rest = after;
                        break;
                    }
                }
            }
        }
    }
    *pending = rest.to_vec();
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::{complete_utf8, Generation};
    use crate::engine::{Job, Priority, StopCheck, StopReason};
    use crate::prompt::Prompt;

    /// A stop check runs at line ends, or after every token where the job asks for it (prose
    /// that loops inside a paragraph).
    #[test]
    fn stop_checks_run_at_line_ends_or_after_every_token() {
        let pieces = ["One. ", "Two. ", "One. ", "Three.\n", "Four."];
        let cut_at_second_one = |text: &str| text.match_indices("One.").nth(1).map(|(at, _)| at);
        for (every_token, stopped_after, text) in [(false, 4, "One. Two. "), (true, 3, "One. Two. ")] {
            let mut job = Job::new(Priority::Background, Prompt::Segments(Vec::new()), 64);
            job.stop_check = Some(StopCheck(Arc::new(cut_at_second_one)));
            job.stop_check_every_token = every_token;
            let mut generation = Generation::default();
            let stop =
                pieces.iter().position(|piece| generation.push(&job, piece.as_bytes(), Instant::now()).is_some());
            assert_eq!(stop.map(|at| at + 1), Some(stopped_after), "every token: {every_token}");
            assert_eq!(generation.finish(&job, StopReason::StopString).0, text);
        }
    }

    /// Feeds pieces of generated bytes one at a time: the text each one completes, then what
    /// is left pending at the end.
    fn decode(pieces: &[&[u8]]) -> (Vec<String>, Vec<u8>) {
        let mut pending = Vec::new();
        let texts = pieces
            .iter()
            .map(|piece| {
                pending.extend_from_slice(piece);
                complete_utf8(&mut pending)
            })
            .collect();
        (texts, pending)
    }

    #[test]
    fn characters_split_across_tokens_wait_for_their_last_byte() {
        let e_acute = "é".as_bytes();
        let emoji = "😀".as_bytes();
        // Pieces fed in order, the text each completes, and the bytes left pending.
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a str], &'a [u8]);
        let cases: &[Case] = &[
            (&[b"ab", b"c"], &["ab", "c"], b""),
            // "é" in two tokens.
            (&[&e_acute[..1], &e_acute[1..]], &["", "é"], b""),
            // A four-byte emoji split 1 + 3, after text.
            (&[b"x", &[emoji[0]], &emoji[1..]], &["x", "", "😀"], b""),
            // Split 2 + 2, with text on both sides.
            (&[&[b'a', emoji[0], emoji[1]], &[emoji[2], emoji[3], b'b']], &["a", "😀b"], b""),
            // Generation stopped mid-character: the start stays pending (and is dropped).
            (&[&[b'x', emoji[0], emoji[1]]], &["x"], &emoji[..2]),
            // Bytes that can never be part of a character do not stall the text.
            (&[&[0xff, b'a']], &["\u{fffd}a"], b""),
            (&[&[0xc3], b"A"], &["", "\u{fffd}A"], b""),
            (&[&[0x80, 0x80]], &["\u{fffd}\u{fffd}"], b""),
        ];
        for (pieces, texts, pending) in cases {
            let expected: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
            assert_eq!(decode(pieces), (expected, pending.to_vec()), "{pieces:?}");
        }
    }
}
