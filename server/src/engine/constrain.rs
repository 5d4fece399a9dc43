//! The constrained choice of the next token, pure: from every token's text, which tokens end
//! generation, and the model's logits, the token that the job's requirements allow (healed text
//! the output must start with, required indentation written as the tokenizer writes text, first
//! words to avoid, content before a line break), or none, and the sampler chooses freely.

/// What a job asks of its first tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    /// The output's first word must not be, start or be started by any of these.
    pub avoid: Vec<String>,
    /// The output must have content before a line break or its end.
    pub needs_content: bool,
}

/// Where a job is in meeting its requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bytes the output must still start with.
    pub required: Vec<u8>,
    /// A token of blanks used up the required indentation: the next token starts with code.
    pub content_next: bool,
}

/// The vocabulary as the choice sees it.
pub(crate) struct Vocabulary<'v> {
    /// Every token's text.
    pub pieces: &'v [Vec<u8>],
    /// Whether a token ends generation.
    pub eog: &'v dyn Fn(usize) -> bool,
}

/// Whether a piece of output that starts the first word (after whitespace) is ruled out by
/// `avoid`: it is a prefix of an avoided word or extends one.
pub(crate) fn avoided(content: &[u8], avoid: &[String]) -> bool {
    !content.is_empty()
        && avoid.iter().any(|word| word.as_bytes().starts_with(content) || content.starts_with(word.as_bytes()))
}

/// Whether the requirements may still decide a token; once false, they never will again in this
/// job, and the sampler chooses every later token.
pub(crate) fn pending(rules: &Rules, progress: &Progress, blank_so_far: bool) -> bool {
    !progress.required.is_empty()
        || blank_so_far && (!rules.avoid.is_empty() || rules.needs_content || progress.content_next)
}

/// The next token if the requirements decide it, updating `progress`; `None` lets the sampler
/// choose. `blank_so_far`: the output so far is only whitespace.
pub(crate) fn next_token(
    vocabulary: &Vocabulary,
    logits: &[f32],
    rules: &Rules,
    progress: &mut Progress,
    blank_so_far: bool,
) -> Option<usize> {
    healed(vocabulary, logits, rules, progress, blank_so_far)
        .or_else(|| avoiding(vocabulary, logits, rules, progress, blank_so_far))
}

/// While the output must still start with some text, the most likely token consistent with it
/// (its text a prefix of what is required, or the other way round).
fn healed(
    vocabulary: &Vocabulary,
    logits: &[f32],
    rules: &Rules,
    progress: &mut Progress,
    blank_so_far: bool,
) -> Option<usize> {
    let pieces = vocabulary.pieces;
    if progress.required.is_empty() {
        return None;
    }
    if let Some((t, whole)) = indentation(pieces, &progress.required, logits) {
        progress.required.drain(..pieces[t].len());
        progress.content_next = whole;
        return Some(t);
    }
    let required = &progress.required;
    let avoid = &rules.avoid;
    // Avoided words apply to what a token adds after required whitespace.
    let avoiding = !avoid.is_empty() && blank_so_far && required.iter().all(u8::is_ascii_whitespace);
    let best = best_where(pieces, logits, |_, piece| {
        // Required indentation is exactly that deep: what follows it is not more of it.
        let overshoot = piece.get(required.len()).is_some_and(|b| *b == b' ' || *b == b'\t')
            && required.last().is_some_and(|b| *b == b' ' || *b == b'\t');
        // A required space ends with the word after it (" x" after "return"): a token of blanks
        // alone that uses it up is not how the text was written, and the model, taking it, goes
        // on writing blanks.
        let blank_end = required.last() == Some(&b' ')
            && piece.len() >= required.len()
            && piece.iter().all(u8::is_ascii_whitespace);
        let avoided =
            avoiding && piece.len() > required.len() && avoided(piece[required.len()..].trim_ascii_start(), avoid);
        !piece.is_empty()
            && !blank_end
            && (required.starts_with(piece) || (piece.starts_with(required) && !overshoot && !avoided))
    });
    match best {
        Some(t) => {
            let used = pieces[t].len().min(progress.required.len());
            progress.required.drain(..used);
            Some(t)
        }
        None => {
            progress.required.clear();
            None
        }
    }
}

/// Required indentation is written as the tokenizer writes text, whatever the model would like
/// (it often prefers a shallower depth): all of it in one token of blanks, then code (twelve
/// spaces, then "5"), or all but a last space, then a word with its space (eleven spaces, then
/// " letter"), whichever the model finds likelier; longer runs take the longest token first.
/// Choosing the likeliest prefix of the blanks instead (three spaces, then more) walks an
/// unnatural path, and the model then writes nonsense such as `]`. The second value says whether
/// the token uses up the requirement.
fn indentation(pieces: &[Vec<u8>], required: &[u8], logits: &[f32]) -> Option<(usize, bool)> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    if required.len() < 2 || !required.iter().all(blank) {
        return None;
    }
    let runs = pieces.iter().enumerate().filter(|(_, p)| !p.is_empty() && required.starts_with(p));
    let mut whole = None;
    let mut part: Option<usize> = None;
    for (t, piece) in runs {
        if piece.len() == required.len() {
            whole = Some(t);
        } else if part.is_none_or(|best| pieces[best].len() < piece.len()) {
            part = Some(t);
        }
    }
    let ends_with_space = required.last() == Some(&b' ');
    let part_fits = part.is_some_and(|t| !ends_with_space || pieces[t].len() + 1 == required.len());
    match (whole, part) {
        (Some(w), Some(p)) if part_fits => Some(if logits[w] >= logits[p] { (w, true) } else { (p, false) }),
        (Some(w), _) => Some((w, true)),
        (None, Some(p)) => Some((p, false)),
        (None, None) => None,
    }
}

/// The most likely token that does not begin one of the words the job avoids (nor, when content
/// is needed, a line break or the end), while the output has no content yet.
fn avoiding(
    vocabulary: &Vocabulary,
    logits: &[f32],
    rules: &Rules,
    progress: &Progress,
    blank_so_far: bool,
) -> Option<usize> {
    let free = rules.avoid.is_empty() && !rules.needs_content && !progress.content_next;
    if free || !progress.required.is_empty() || !blank_so_far {
        return None;
    }
    best_where(vocabulary.pieces, logits, |t, piece| {
        let eog = (vocabulary.eog)(t);
        let ends_blank = rules.needs_content && (piece.contains(&b'\n') || eog);
        let code = !progress.content_next || piece.first().is_some_and(|b| !b.is_ascii_whitespace()) && !eog;
        code && !ends_blank && !avoided(piece.trim_ascii_start(), &rules.avoid)
    })
}

/// The most likely token whose piece `allowed` accepts (given the token and its text).
fn best_where(pieces: &[Vec<u8>], logits: &[f32], allowed: impl Fn(usize, &[u8]) -> bool) -> Option<usize> {
    logits
        .iter()
        .enumerate()
        .filter(|(t, _)| allowed(*t, pieces.get(*t).map_or(&[][..], Vec::as_slice)))
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny vocabulary: token 0 ends generation.
    const PIECES: &[&str] =
        &["", "    ", "   ", " ", "\n", "return", " return", " x", " y", "re", "x", "y", "        "];

    fn pieces() -> Vec<Vec<u8>> {
        PIECES.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    /// Logits that rank `order` first to last; every other token below them.
    fn logits(order: &[&str]) -> Vec<f32> {
        let mut logits = vec![-100.0; PIECES.len()];
        for (rank, piece) in order.iter().enumerate() {
            let t = PIECES.iter().position(|p| p == piece).unwrap();
            logits[t] = 10.0 - rank as f32;
        }
        logits
    }

    /// The pieces chosen one after another (each choice removed from the ranking), until the
    /// requirements let the sampler choose.
    fn run(order: &[&str], rules: &Rules, required: &str, blank_so_far: bool) -> (Vec<&'static str>, Progress) {
        let pieces = pieces();
        let eog = |t: usize| t == 0;
        let vocabulary = Vocabulary { pieces: &pieces, eog: &eog };
        let mut progress = Progress { required: required.as_bytes().to_vec(), content_next: false };
        let mut chosen = Vec::new();
        let mut blank = blank_so_far;
        loop {
            let Some(t) = next_token(&vocabulary, &logits(order), rules, &mut progress, blank) else {
                // With the whole vocabulary, the rule stands back only for good.
                assert!(!pending(rules, &progress, blank), "{chosen:?}");
                break;
            };
            chosen.push(PIECES[t]);
            blank &= PIECES[t].trim().is_empty();
            if chosen.len() > 4 {
                break;
            }
        }
        (chosen, progress)
    }

    #[test]
    fn healed_text_is_written_with_the_likeliest_tokens_that_fit_it() {
        let free = Rules::default();
        // "return" healed to "re": " return" does not fit (a space first), "return" does.
        assert_eq!(run(&[" return", "return", "re"], &free, "re", false).0, vec!["return"]);
        // A required space ends with the word after it: " x", not " " alone.
        assert_eq!(run(&[" ", " x", " y"], &free, " ", false).0, vec![" x"]);
        // Nothing fits: the requirement is dropped and the sampler chooses.
        let (chosen, progress) = run(&["x"], &free, "zz", false);
        assert!(chosen.is_empty() && progress.required.is_empty());
    }

    #[test]
    fn required_indentation_is_tokenized_as_text_is() {
        let free = Rules::default();
        // Eight spaces: one token of all of them (the model's likeliest shallower "    " is not
        // taken), which uses the requirement up; then code, not more blanks.
        let (chosen, progress) = run(&["    ", "        ", "x"], &free, "        ", true);
        assert_eq!(chosen, vec!["        ", "x"]);
        assert!(progress.content_next && progress.required.is_empty());
        // Four spaces where a word with its space is likelier: all but a space ("   "), then the
        // word (" return").
        let (chosen, _) = run(&["   ", " return", "    "], &free, "    ", true);
        assert_eq!(chosen, vec!["   ", " return"]);
    }

    #[test]
    fn avoided_words_and_blank_answers_are_ruled_out_until_there_is_content() {
        let avoid = Rules { avoid: vec!["return".into()], needs_content: false };
        // "return", " return" and "re" (which starts it) are avoided.
        assert_eq!(run(&["return", " return", "re", "x"], &avoid, "", true).0, vec!["x"]);
        // After required indentation, the word after it is what is avoided.
        assert_eq!(run(&["    ", "return", "x"], &avoid, "    ", true).0, vec!["    ", "x"]);
        // Content is needed: no line break, no end of text first.
        let content = Rules { avoid: Vec::new(), needs_content: true };
        assert_eq!(run(&["\n", "", "y"], &content, "", true).0, vec!["y"]);
        // Output with content already: free.
        assert!(run(&["return"], &avoid, "", false).0.is_empty());
    }

    #[test]
    fn avoiding_is_by_prefix_either_way() {
        let words = vec!["return".to_owned()];
        assert!(avoided(b"re", &words) && avoided(b"returns", &words) && !avoided(b"x", &words));
        assert!(!avoided(b"", &words));
    }
}
