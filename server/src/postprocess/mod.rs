//! Post-processing of model output before it is shown. Pure, one rule per function, each with the
//! case that motivated it as its table test.

/// Drops a tail of `candidate` that only repeats what already follows the cursor on its line.
///
/// Models often finish the line and then restate the suffix, such as a closing `)` that the
/// editor already inserted.
pub fn trim_line_suffix(candidate: &str, line_suffix: &str) -> String {
    let suffix = line_suffix.trim_end();
    if suffix.is_empty() || candidate.contains('\n') {
        return candidate.to_owned();
    }
    match candidate.strip_suffix(suffix) {
        Some(rest) => rest.to_owned(),
        None => candidate.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_line_suffix_cases() {
        let cases = [
            // (candidate, rest of the line, expected)
            ("x, y)", ")", "x, y"),
            ("x, y", ")", "x, y"),
            ("a]) ", "])", "a]) "),
            ("value\nmore)", ")", "value\nmore)"),
            ("done", "", "done"),
        ];
        for (candidate, suffix, expected) in cases {
            assert_eq!(trim_line_suffix(candidate, suffix), expected, "{candidate:?} before {suffix:?}");
        }
    }
}
