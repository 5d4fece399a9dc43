//! Prompt-lookup drafts: a guess of the next tokens, taken from what followed the latest earlier
//! occurrence of the text's last few tokens (code repeats the names and lines of its context).
//! The engine verifies a draft in one batch and keeps the tokens the model itself would choose.

/// The longest run of final tokens looked up first; shorter ones are tried down to [`SHORTEST`].
const LONGEST: usize = 4;
/// One token alone is too common a match to be worth a draft.
const SHORTEST: usize = 2;

/// Up to `limit` tokens that followed the latest earlier occurrence of the longest final run of
/// `tokens` (between [`SHORTEST`] and [`LONGEST`] long) that occurred before; none without one.
pub(crate) fn draft<T: PartialEq + Copy>(tokens: &[T], limit: usize) -> Vec<T> {
    if limit == 0 {
        return Vec::new();
    }
    for n in (SHORTEST..=LONGEST).rev() {
        let Some(tail_start) = tokens.len().checked_sub(n) else { continue };
        let tail = &tokens[tail_start..];
        // An occurrence ending before the last token has at least one token after it.
        if let Some(start) = (0..tail_start).rev().find(|&start| &tokens[start..start + n] == tail) {
            let from = start + n;
            return tokens[from..(from + limit).min(tokens.len())].to_vec();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::draft;

    /// Words stand for tokens.
    fn words(text: &str) -> Vec<&str> {
        text.split_whitespace().collect()
    }

    #[test]
    fn drafts_follow_the_latest_longest_match() {
        let cases = [
            // What followed the same two names before.
            ("let a = x . len ( ) ; let b = x .", 3, "len ( )"),
            // The latest occurrence wins over an older one.
            ("x . a ; x . b ; x .", 2, "b ;"),
            // A longer match wins over a later shorter one.
            ("self . items . push ( v ) ; other . push ( w ) ; self . items . push", 2, "( v"),
            // The draft stops at the end of the text.
            ("a b c a b", 8, "c a b"),
            // No earlier occurrence of two or more final tokens: no draft.
            ("a b c d", 4, ""),
            ("a b c b", 4, ""),
            // A repeated token drafts its own repetition.
            ("x x x", 3, "x"),
            // A limit of zero drafts nothing.
            ("a b a b", 0, ""),
            ("", 4, ""),
            ("a", 4, ""),
        ];
        for (text, limit, expected) in cases {
            assert_eq!(draft(&words(text), limit), words(expected), "{text:?} limit {limit}");
        }
    }
}
