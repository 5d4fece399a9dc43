//! Post-processing of model output before it is shown. Pure: one rule per function, each with the
//! case that motivated it as its table test. [`clean`] applies them in order; [`stop_at`] applies
//! the line rules while the model is still generating, so that it stops early instead of being
//! trimmed afterwards.

pub mod doc_comment;
pub mod findings;
pub mod layout;
pub mod prose;
pub mod syntax;

use crate::syntax::indent_width;
use crate::syntax::lexicon::Lexicon;

/// What the rules need to know about the cursor's surroundings.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The cursor line's text before the cursor.
    pub line_before: String,
    /// The cursor line's text after the cursor.
    pub line_after: String,
    /// The lines after the cursor line, nearest first (a few dozen are plenty).
    pub below: Vec<String>,
    /// The lines before the cursor line, in order, the nearest last (a few dozen are plenty).
    pub above: Vec<String>,
    /// Only the rest of the cursor line is wanted.
    pub single_line: bool,
    /// Lines indented less than this end a block.
    pub block_indent: usize,
    /// The file indents with tabs.
    pub tabs: bool,
    /// The language's comment, string and block facts.
    pub lexicon: &'static Lexicon,
}

/// Applies every rule, in order.
pub fn clean(candidate: &str, context: &Context) -> String {
    let mut text = candidate.replace("\r\n", "\n");
    if context.single_line {
        text = first_line(&text);
    }
    text = trim_leading_space(&text, &context.line_before);
    // Every line is complete now: a final line break lets the line rules see the last one.
    text.push('\n');
    if let Some(cut) = stop_at(&text, context) {
        text.truncate(cut);
    }
    text = drop_unreachable_tail(&text, context);
    // Closers alone after the cursor (auto-inserted) are replaced by the suggestion instead, when
    // it supplies them itself; see `completion::finish`.
    if !closers_only(&context.line_after) {
        text = trim_line_suffix(&text, &context.line_after, context.lexicon);
    }
    text = normalize_indentation(&text, context.tabs);
    trim_trailing_blank(&text)
}

/// Where the line rules cut `text` (a byte offset), if anywhere. Used during generation too.
pub fn stop_at(text: &str, context: &Context) -> Option<usize> {
    let rules: [fn(&str, &Context) -> Option<usize>; 6] = [
        cut_single_line,
        cut_at_suffix_repeat,
        cut_at_prefix_repeat,
        cut_at_dedent,
        cut_at_repetition,
        cut_after_missing_header,
    ];
    rules.iter().filter_map(|rule| rule(text, context)).min()
}

/// The lines of `text` that are complete (a line break follows), with their start offsets. The
/// last line may still be growing while the model generates, so the rules leave it alone.
fn complete_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (at, _) in text.match_indices('\n') {
        lines.push((start, &text[start..at]));
        start = at + 1;
    }
    lines
}

fn first_line(text: &str) -> String {
    text.split('\n').next().unwrap_or_default().to_owned()
}

fn cut_single_line(text: &str, context: &Context) -> Option<usize> {
    context.single_line.then(|| text.find('\n')).flatten()
}

/// A model often restates what the user already typed: a space after `return ` comes again.
pub fn trim_leading_space(candidate: &str, line_before: &str) -> String {
    if line_before.ends_with([' ', '\t']) && !line_before.trim().is_empty() {
        return candidate.trim_start_matches([' ', '\t']).to_owned();
    }
    candidate.to_owned()
}

/// Cuts where the candidate starts repeating the code below the cursor.
///
/// A line equal to the next non-empty line below counts when it is substantial, or when the
/// line after it matches too: a lone `}` is often a legitimate new closing line.
pub fn cut_at_suffix_repeat(text: &str, context: &Context) -> Option<usize> {
    let below: Vec<&str> = context.below.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
    let first_below = *below.first()?;
    let lines = complete_lines(text);
    for (index, &(start, line)) in lines.iter().enumerate() {
        let whole = if index == 0 { format!("{}{line}", context.line_before) } else { line.to_owned() };
        let trimmed = whole.trim();
        if trimmed.is_empty() || trimmed != first_below {
            continue;
        }
        let next_matches = match (lines.get(index + 1), below.get(1)) {
            (Some((_, next)), Some(expected)) => next.trim() == *expected,
            _ => false,
        };
        if trimmed.len() >= 6 || next_matches {
            // Cut at the start of the repeating line, with the line break before it.
            return Some(past_own_closers(text, start.saturating_sub(1), context));
        }
    }
    None
}

/// Moves a cut past the closing lines that follow it at once when they close what the candidate
/// itself opened before the cut. Repeats are recognised on trimmed lines, and a line of closers
/// (`}`, `});`) is the same everywhere: a rule that sees the code below (or above) start again
/// at such a line would otherwise cut the candidate's own `}` and leave it open, and a candidate
/// that does not parse is dropped whole. tokio's `registration.rs`: a match arm removed, the
/// model wrote `Ok(ret) => {`, `return Ok(ret);`, `}` and then an arm that exists above.
fn past_own_closers(text: &str, cut: usize, context: &Context) -> usize {
    let balance = |line: &str| context.lexicon.bracket_balance(line);
    let mut depth: i32 = text[..cut].split('\n').map(balance).sum();
    let mut end = cut;
    for (start, line) in complete_lines(text).into_iter().filter(|&(start, _)| start > cut) {
        let code = line.trim();
        let closers = !code.is_empty() && code.chars().all(|c| ")]};,".contains(c));
        let after = depth + balance(line);
        if depth <= 0 || !closers || after < 0 {
            break;
        }
        depth = after;
        end = start + line.len();
    }
    end
}

/// When the code below the cursor is a body whose header is missing (indented deeper than the
/// code above, which opens no block), the candidate ends with the header it writes: what the
/// model goes on to write is a second copy of that body.
pub fn cut_after_missing_header(text: &str, context: &Context) -> Option<usize> {
    let below = context.below.iter().find(|l| !l.trim().is_empty())?;
    let body_indent = indent_width(below);
    let above = std::iter::once(&context.line_before)
        .chain(context.above.iter().rev())
        .find(|l| !l.trim().is_empty())
        .map_or("", String::as_str);
    let opens_block = |line: &str| context.lexicon.opens_block(line);
    if indent_width(above) >= body_indent || opens_block(above) {
        return None;
    }
    let lines = complete_lines(text);
    for (index, &(start, line)) in lines.iter().enumerate() {
        let whole = if index == 0 { format!("{}{line}", context.line_before) } else { line.to_owned() };
        if opens_block(&whole) && indent_width(&whole) < body_indent {
            // The line after the header tells a copy of the body below (cut) from the part of
            // the hole that comes before it (go on); until it is written, wait. A copy starts at
            // the body's depth: a line less deep is another header on the way to it (HumanEval/40:
            // three nested `for` lines above the body, which shares their names).
            let next = lines.get(index + 1)?.1;
            let copy = indent_width(next) == body_indent && similar_words(next, below);
            return copy.then_some(start + line.len());
        }
    }
    None
}

/// Whether at least half of the words of `b` occur in `a` (identifiers and numbers).
fn similar_words(a: &str, b: &str) -> bool {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).map(str::to_owned).collect()
    };
    let (a, b) = (words(a), words(b));
    !b.is_empty() && 2 * b.iter().filter(|w| a.contains(w)).count() >= b.len()
}

/// Drops a last line that ends its block (`return`, `break`, the language's exit words) when code at
/// the same depth follows it below the cursor: that code would be unreachable, so the line is
/// a variant of the code below, not the missing piece (HumanEval/19: the model closed the dict
/// and then wrote its own version of the `return` that follows).
pub fn drop_unreachable_tail(text: &str, context: &Context) -> String {
    let body = text.trim_end_matches(['\n', ' ', '\t']);
    let (head, last) = match body.rfind('\n') {
        Some(at) => (&body[..at], &body[at + 1..]),
        None => ("", body),
    };
    let first_line = !body.contains('\n');
    if first_line && !context.line_before.trim().is_empty() {
        // The user began the line: it is theirs, whatever follows.
        return text.to_owned();
    }
    let whole = if first_line { format!("{}{last}", context.line_before) } else { last.to_owned() };
    let lexicon = context.lexicon;
    let ends_block = lexicon.starts_with_word(&whole, lexicon.exit_words);
    let next = context.below.iter().map(|l| l.trim_end()).find(|l| !lexicon.is_comment(l));
    let unreachable = next.is_some_and(|next| indent_width(next) == indent_width(&whole));
    if !ends_block || !unreachable || !context.line_after.trim().is_empty() {
        return text.to_owned();
    }
    if first_line {
        return String::new();
    }
    format!("{head}\n")
}

/// Cuts where the candidate restates code above the cursor: two consecutive lines equal to two
/// consecutive lines above (chat models like to start over from the function's signature), or
/// a first line that is the line right above the cursor's again. Real code almost never repeats
/// a line of some length at once (35 of 280,855 lines in the Python packages installed here,
/// 135 of 276,675 in the Rust crates): small models do, writing the line above where a line
/// was removed.
pub fn cut_at_prefix_repeat(text: &str, context: &Context) -> Option<usize> {
    let above: Vec<&str> = context.above.iter().map(|l| l.trim()).collect();
    let lines = complete_lines(text);
    if let (Some((_, first)), Some(previous)) = (lines.first(), above.iter().rev().find(|l| !l.is_empty())) {
        let whole = format!("{}{first}", context.line_before);
        let whole = whole.trim();
        let substantial = whole.len() >= 6 && whole.chars().any(char::is_alphanumeric);
        if substantial && whole == *previous && context.line_after.trim().is_empty() {
            return Some(0);
        }
    }
    for (index, pair) in lines.windows(2).enumerate() {
        let (first, second) = (pair[0].1.trim(), pair[1].1.trim());
        if first.is_empty() || second.is_empty() || first.len() + second.len() < 12 {
            continue;
        }
        if above.windows(2).any(|w| w[0] == first && w[1] == second) {
            return Some(past_own_closers(text, lines[index].0.saturating_sub(1), context));
        }
    }
    None
}

/// Cuts before the first later line that is indented less than the block allows. A closing
/// bracket line that closes something the candidate opened is kept, and the cut follows it.
///
/// On an empty line, a first line written less deep than the block sets the depth instead when no
/// deeper code follows below (HumanEval/39: after `return False` in an `if` body at the end of
/// a function, the model goes on with the function's next statement).
pub fn cut_at_dedent(text: &str, context: &Context) -> Option<usize> {
    let lines = complete_lines(text);
    let mut limit = context.block_indent;
    if context.line_before.trim().is_empty() {
        let first = lines
            .iter()
            .enumerate()
            .map(|(index, (_, l))| if index == 0 { format!("{}{l}", context.line_before) } else { (*l).to_owned() })
            .find(|l| !l.trim().is_empty());
        let next_below = context.below.iter().find(|l| !l.trim().is_empty()).map(|l| indent_width(l));
        if let Some(first) = first.map(|l| indent_width(&l)) {
            if next_below.is_none_or(|below| below <= first) {
                limit = limit.min(first);
            }
        }
    }
    if limit == 0 {
        return None;
    }
    let balance = |line: &str| context.lexicon.bracket_balance(line);
    let mut depth = balance(&context.line_before).max(0);
    // The cursor's own line (or the first line with code on an empty one) is the block's first.
    let mut seen_code = !context.line_before.trim().is_empty();
    // A body whose statement needs a later clause (Python's `try:` and its `except`) ends with
    // that clause at the statement's depth, not before it.
    let header = std::iter::once(&context.line_before)
        .chain(context.above.iter().rev())
        .find(|l| !l.trim().is_empty())
        .map(|h| (indent_width(h), context.lexicon.clauses_needed(h)));
    let handler = |line: &str| {
        header.is_some_and(|(at, clauses)| at == indent_width(line) && context.lexicon.starts_with_word(line, clauses))
    };
    for (index, &(start, line)) in lines.iter().enumerate() {
        let blank = line.trim().is_empty();
        if index > 0 && seen_code && !blank && indent_width(line) < limit && !handler(line) {
            let closes = line.trim_start().starts_with([')', ']', '}']);
            if closes && depth > 0 {
                return Some(start + line.len());
            }
            return Some(start.saturating_sub(1));
        }
        seen_code |= !blank;
        depth += balance(line);
    }
    None
}

/// Cuts a line that repeats the line before it, or a block of lines that repeats the block
/// before it: small models loop.
pub fn cut_at_repetition(text: &str, _context: &Context) -> Option<usize> {
    let lines = complete_lines(text);
    for size in 1..=4 {
        for end in (2 * size)..=lines.len() {
            let a = &lines[end - 2 * size..end - size];
            let b = &lines[end - size..end];
            let same = a.iter().zip(b).all(|((_, x), (_, y))| x == y);
            let substantial = a.iter().map(|(_, l)| l.trim().len()).sum::<usize>() >= 4;
            if same && substantial {
                return Some(b[0].0.saturating_sub(1));
            }
        }
    }
    None
}

/// Drops the end of a one-line candidate that repeats what follows the cursor on its line, such
/// as a closing bracket the editor inserted.
pub fn trim_line_suffix(candidate: &str, line_after: &str, lexicon: &Lexicon) -> String {
    let suffix = line_after.trim_end();
    if suffix.is_empty() {
        return candidate.to_owned();
    }
    let (first, rest) = candidate.split_once('\n').map_or((candidate, None), |(a, b)| (a, Some(b)));
    let trimmed_first = first.trim_end();
    let closes_own = suffix.contains([')', ']', '}']) && lexicon.bracket_balance(trimmed_first) >= 0;
    let first = match trimmed_first.strip_suffix(suffix) {
        // The candidate's closers match its own openers: they are not a repeat of the suffix.
        Some(_) if closes_own => trimmed_first.to_owned(),
        Some(kept) => kept.to_owned(),
        None => strip_balanced_closers(trimmed_first, suffix, lexicon),
    };
    match rest {
        Some(rest) => format!("{first}\n{rest}"),
        None => first,
    }
}

/// Removes closing brackets at the end of `line` that it does not open itself, when the text
/// after the cursor already starts with them.
fn strip_balanced_closers(line: &str, after: &str, lexicon: &Lexicon) -> String {
    let mut kept = line.to_owned();
    let mut after = after.trim_start().chars().peekable();
    while let Some(&closer) = after.peek() {
        if !")]}".contains(closer) || !kept.ends_with(closer) || lexicon.bracket_balance(&kept) >= 0 {
            break;
        }
        kept.pop();
        after.next();
    }
    kept
}

/// The first word of a text after its leading whitespace: a run of letters, digits and `_`, or
/// else its first character. `None` for blank text. Alternatives to a suggestion must begin with
/// another first word.
pub fn first_word(text: &str) -> Option<&str> {
    let content = text.trim_start();
    let first = content.chars().next()?;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let end = if word(first) { content.find(|c: char| !word(c)).unwrap_or(content.len()) } else { first.len_utf8() };
    Some(&content[..end])
}

/// Whether the text after the cursor is only closing brackets and quotes (as editors auto-insert).
pub fn closers_only(line_after: &str) -> bool {
    let tail = line_after.trim();
    !tail.is_empty() && tail.chars().all(|c| ")]}\"'`".contains(c))
}

/// Re-indents with the file's own unit: tabs in a tab-indented file, spaces otherwise.
pub fn normalize_indentation(candidate: &str, tabs: bool) -> String {
    let fix = |line: &str| -> String {
        let body = line.trim_start_matches([' ', '\t']);
        let lead = &line[..line.len() - body.len()];
        let width = indent_width(lead);
        let has_tab = lead.contains('\t');
        let has_space = lead.contains(' ');
        if tabs && has_space && width >= 4 {
            format!("{}{}{body}", "\t".repeat(width / 4), " ".repeat(width % 4))
        } else if !tabs && has_tab {
            format!("{}{body}", " ".repeat(width))
        } else {
            line.to_owned()
        }
    };
    let mut lines = candidate.split('\n');
    let first = lines.next().unwrap_or_default().to_owned();
    lines.fold(first, |mut out, line| {
        out.push('\n');
        out.push_str(&fix(line));
        out
    })
}

/// Removes trailing whitespace at the end and blank lines after the last line of code.
pub fn trim_trailing_blank(candidate: &str) -> String {
    let lines: Vec<&str> = candidate.split('\n').map(str::trim_end).collect();
    let keep = lines.iter().rposition(|l| !l.is_empty()).map_or(0, |i| i + 1);
    if keep == 0 {
        return String::new();
    }
    lines[..keep].join("\n")
}

/// Strips what chat models wrap around code: Markdown fences and prose before or after.
pub fn strip_chatter(answer: &str) -> String {
    let answer = answer.replace("\r\n", "\n");
    if let Some(start) = answer.find("```") {
        let after_fence = &answer[start + 3..];
        // Skip the info string (a language name) on the fence line.
        let body_start = after_fence.find('\n').map_or(after_fence.len(), |i| i + 1);
        let body = &after_fence[body_start..];
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].trim_end_matches('\n').to_owned();
    }
    let lines: Vec<&str> = answer.split('\n').collect();
    let is_prose = |line: &str| {
        let t = line.trim();
        let lower = t.to_ascii_lowercase();
        let starts_like_prose = ["here", "this ", "the ", "sure", "certainly", "i ", "note", "explanation", "to "]
            .iter()
            .any(|p| lower.starts_with(p));
        starts_like_prose && t.split_whitespace().count() >= 3
    };
    let start = lines.iter().position(|l| !is_prose(l) && !l.trim().is_empty()).unwrap_or(lines.len());
    let end = lines[start..].iter().position(|l| is_prose(l)).map_or(lines.len(), |i| start + i);
    trim_trailing_blank(&lines[start..end].join("\n"))
}

#[cfg(test)]
mod tests;
