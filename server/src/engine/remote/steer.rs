//! The first tokens of a llama-server job chosen here, pure: the embedded engine's rule
//! (`constrain`) applied to the candidates that the server ranks, with their log-probabilities,
//! one token at a time. Healed text and required indentation are written as the tokenizer writes
//! text, avoided first words and blank answers are ruled out, exactly as on the embedded engine,
//! except that the choice is among the server's likeliest candidates rather than the whole
//! vocabulary.

use serde_json::Value;

use super::super::constrain::{self, Progress, Rules, Vocabulary};
use super::super::Job;

/// Candidates the server is asked to rank at each step. The rule's choice is nearly always among
/// the likeliest few; a requirement that none of them fits is written as text instead.
pub const CANDIDATES: u32 = 40;

/// Most tokens chosen here; then the server samples the rest freely.
pub const MOST_STEPS: usize = 24;

/// One candidate for the next token, as the server reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub id: i64,
    pub piece: Vec<u8>,
    pub logprob: f32,
}

/// Parses the candidates for the first token of a `/completion` answer asked with `n_probs`.
pub fn candidates(answer: &Value) -> Result<Vec<Candidate>, String> {
    let first = answer
        .get("completion_probabilities")
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .ok_or("the answer has no `completion_probabilities`; is this llama-server?")?;
    let listed = first.get("top_logprobs").and_then(Value::as_array).ok_or("the answer has no `top_logprobs`")?;
    Ok(listed.iter().filter_map(candidate).collect())
}

fn candidate(entry: &Value) -> Option<Candidate> {
    let id = entry.get("id")?.as_i64()?;
    let logprob = entry.get("logprob")?.as_f64()? as f32;
    // `bytes` holds a piece that is not whole UTF-8 exactly; `token` is its lossy text.
    let piece = match entry.get("bytes").and_then(Value::as_array) {
        Some(bytes) => bytes.iter().map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect::<Option<_>>()?,
        None => entry.get("token")?.as_str()?.as_bytes().to_vec(),
    };
    Some(Candidate { id, piece, logprob })
}

/// Whether a piece is spelled as control tokens are: nothing, or one bracketed word
/// (`<|endoftext|>`, `</s>`, `[PAD]`).
pub fn spelled_like_control(piece: &[u8]) -> bool {
    let bracketed = |open: u8, close: u8| {
        piece.len() > 2 && piece[0] == open && piece[piece.len() - 1] == close && !piece.contains(&b' ')
    };
    piece.is_empty() || bracketed(b'<', b'>') || bracketed(b'[', b']')
}

/// What the rule makes of one step's candidates.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// This candidate (an index into the step's list) is the next token.
    Token(usize),
    /// None of the candidates fits the text the output must start with: it is written as text.
    Text(Vec<u8>),
    /// The rule stands back: the server samples from here on.
    Free,
}

/// Where a job's steering is.
#[derive(Debug)]
pub struct Steering {
    rules: Rules,
    progress: Progress,
    blank_so_far: bool,
}

impl Steering {
    pub fn new(job: &Job) -> Steering {
        Steering {
            rules: Rules { avoid: job.avoid.clone(), needs_content: job.needs_content },
            progress: Progress { required: job.required_prefix.as_bytes().to_vec(), content_next: false },
            blank_so_far: true,
        }
    }

    /// Whether the rule may still decide a token.
    pub fn pending(&self) -> bool {
        constrain::pending(&self.rules, &self.progress, self.blank_so_far)
    }

    /// The next token among `candidates`, by the rule; `is_control` says which candidates are
    /// control tokens (the end of text and its kind), which never count as content.
    pub fn choose(&mut self, candidates: &[Candidate], is_control: &dyn Fn(i64) -> bool) -> Choice {
        let pieces: Vec<Vec<u8>> = candidates.iter().map(|c| c.piece.clone()).collect();
        let logits: Vec<f32> = candidates.iter().map(|c| c.logprob).collect();
        let eog = |t: usize| is_control(candidates[t].id);
        let vocabulary = Vocabulary { pieces: &pieces, eog: &eog };
        let required = self.progress.required.clone();
        let chosen = constrain::next_token(&vocabulary, &logits, &self.rules, &mut self.progress, self.blank_so_far);
        let choice = match chosen {
            Some(t) => Choice::Token(t),
            None if !required.is_empty() => Choice::Text(required),
            None => Choice::Free,
        };
        match &choice {
            Choice::Token(t) => self.wrote(&pieces[*t]),
            Choice::Text(text) => self.wrote(text),
            // Among the whole vocabulary the rule would have found a token; among the
            // candidates it found none: the server chooses.
            Choice::Free => self.rules = Rules::default(),
        }
        choice
    }

    fn wrote(&mut self, piece: &[u8]) {
        self.blank_so_far &= piece.iter().all(u8::is_ascii_whitespace);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::Priority;
    use crate::prompt::Prompt;

    /// Candidates ranked as listed; id 0 is the end of text.
    fn ranked(pieces: &[(i64, &str)]) -> Vec<Candidate> {
        pieces
            .iter()
            .enumerate()
            .map(|(rank, (id, piece))| Candidate { id: *id, piece: piece.as_bytes().to_vec(), logprob: -(rank as f32) })
            .collect()
    }

    fn job(required: &str, avoid: &[&str], needs_content: bool) -> Job {
        let mut job = Job::new(Priority::Interactive, Prompt::Segments(Vec::new()), 8);
        job.required_prefix = required.into();
        job.avoid = avoid.iter().map(|w| w.to_string()).collect();
        job.needs_content = needs_content;
        job
    }

    /// The choices of successive steps, each step offered the same candidates.
    fn steer(job: &Job, candidates: &[Candidate]) -> Vec<Choice> {
        let mut steering = Steering::new(job);
        let mut choices = Vec::new();
        while steering.pending() && choices.len() < 4 {
            choices.push(steering.choose(candidates, &|id| id == 0));
        }
        choices
    }

    #[test]
    fn a_job_without_requirements_is_not_steered() {
        assert!(!Steering::new(&job("", &[], false)).pending());
    }

    #[test]
    fn blank_answers_and_avoided_words_are_ruled_out_among_the_candidates() {
        let candidates = ranked(&[(0, ""), (1, "\n"), (2, " return"), (3, " x")]);
        // Content is needed: neither the end nor a line break; " return" is the likeliest rest.
        assert_eq!(steer(&job("", &[], true), &candidates), vec![Choice::Token(2)]);
        // "return" was the earlier answer's first word.
        assert_eq!(steer(&job("", &["return"], true), &candidates), vec![Choice::Token(3)]);
        // No candidate is allowed: the server chooses, and the answer is checked afterwards.
        assert_eq!(steer(&job("", &["return", "x"], true), &candidates), vec![Choice::Free]);
    }

    #[test]
    fn required_indentation_is_one_token_of_it_or_written_as_text() {
        let candidates = ranked(&[(5, "    "), (6, "        "), (7, "x")]);
        // Eight spaces: the one token of all of them, then content ("x").
        assert_eq!(steer(&job("        ", &[], false), &candidates), vec![Choice::Token(1), Choice::Token(2)]);
        // Twelve spaces, and no candidate of twelve: the longest run ("        ") first, then the
        // rest as required.
        let choices = steer(&job("            ", &[], false), &candidates);
        assert_eq!(choices[0], Choice::Token(1));
        // Healed text that no candidate fits is written as text.
        assert_eq!(steer(&job("zz", &[], false), &candidates), vec![Choice::Text(b"zz".to_vec())]);
    }

    #[test]
    fn candidates_are_read_from_the_servers_answer() {
        let answer = json!({"completion_probabilities": [{"id": 9, "token": "x", "logprob": -0.1, "top_logprobs": [
            {"id": 9, "token": "x", "bytes": [120], "logprob": -0.1},
            {"id": 4, "token": "\u{fffd}", "bytes": [226, 128], "logprob": -2.5},
            {"id": 2, "token": "<|endoftext|>", "logprob": -3.0},
        ]}]});
        let parsed = candidates(&answer).unwrap();
        assert_eq!(parsed[1], Candidate { id: 4, piece: vec![226, 128], logprob: -2.5 });
        assert_eq!(parsed[2].piece, b"<|endoftext|>");
        assert!(candidates(&json!({"content": "x"})).is_err());
    }

    #[test]
    fn control_tokens_are_spelled_in_brackets_or_not_at_all() {
        for piece in ["", "<|endoftext|>", "</s>", "<fim_pad>", "[PAD]"] {
            assert!(spelled_like_control(piece.as_bytes()), "{piece:?}");
        }
        for piece in ["<", "<>", " <x>", "[i]x", "x", "\n", "<a b>"] {
            assert!(!spelled_like_control(piece.as_bytes()), "{piece:?}");
        }
    }
}
