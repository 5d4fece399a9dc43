//! Table tests for the post-processing rules, each with the case that motivated it.

use super::*;

fn context(line_before: &str, line_after: &str, below: &[&str], block_indent: usize) -> Context {
    Context {
        line_before: line_before.into(),
        line_after: line_after.into(),
        below: below.iter().map(|s| s.to_string()).collect(),
        above: Vec::new(),
        single_line: false,
        block_indent,
        tabs: false,
        lexicon: crate::syntax::lexicon::lexicon("python"),
    }
}

#[test]
fn suffix_repetition_is_cut() {
    // Qwen 0.5B writes the middle and then the line that already follows (seen with /infill).
    let ctx = context("", "", &["    return result", ""], 4);
    assert_eq!(clean("    result = a + b\n    return result\n", &ctx), "    result = a + b");
    // Immediately repeating the next line means there is nothing to add.
    assert_eq!(clean("    return result", &ctx), "");
    // A short line like `}` is only a repeat if what follows matches too.
    let ctx = context("", "", &["}", "fn next() {}"], 4);
    assert_eq!(clean("    if x {\n        y();\n    }\n}\nfn next() {}", &ctx), "    if x {\n        y();\n    }");
}

#[test]
fn dedent_ends_a_block() {
    let ctx = context("    ", "", &[], 4);
    assert_eq!(
        clean("total = 0\n    for x in xs:\n        total += x\ndef other():\n    pass", &ctx),
        "total = 0\n    for x in xs:\n        total += x"
    );
    // A closing brace that closes what the candidate opened stays; the cut follows it.
    let ctx = context("fn f() {", "", &[], 1);
    assert_eq!(clean("\n    let x = 1;\n}\nfn g() {}", &ctx), "\n    let x = 1;\n}");
}

#[test]
fn a_try_body_ends_with_its_handler() {
    // HumanEval/105: the hole is a `try:` body and its `except`; the code below is less deep.
    let mut ctx = context("", "", &["    return new_arr"], 9);
    ctx.above = vec!["    for var in sorted_arr:".into(), "        try:".into()];
    let candidate =
        "            new_arr.append(dic[var])\n        except KeyError:\n            pass\n    print(new_arr)\n";
    assert_eq!(
        clean(candidate, &ctx),
        "            new_arr.append(dic[var])\n        except KeyError:\n            pass"
    );
    // After any other header, a line at its depth ends the block.
    ctx.above = vec!["    for var in sorted_arr:".into(), "        if var:".into()];
    assert_eq!(clean(candidate, &ctx), "            new_arr.append(dic[var])");
}

#[test]
fn a_first_line_written_less_deep_sets_the_blocks_depth() {
    // HumanEval/39: the cursor on an empty line after `return False` (an `if` body, depth 8) at
    // the end of a function; the model goes on with the function's own code at depth 4.
    let ctx = context("", "", &[], 8);
    let candidate =
        "    for k in ks:\n        if p % k == 0:\n            return False\n    return True\ndef g():\n    pass";
    assert_eq!(
        clean(candidate, &ctx),
        "    for k in ks:\n        if p % k == 0:\n            return False\n    return True"
    );
    // Deeper code below keeps the block's depth: the first line alone stands.
    let ctx = context("", "", &["        return x"], 8);
    assert_eq!(clean("    y = 1\n    z = 2", &ctx), "    y = 1");
    // A blank first line does not count as the block's first line.
    let ctx = context("", "", &[], 8);
    assert_eq!(clean("\n    y = 1\n    z = 2\nw = 3", &ctx), "\n    y = 1\n    z = 2");
}

#[test]
fn repeated_lines_and_blocks_are_cut() {
    let ctx = context("", "", &[], 0);
    assert_eq!(clean("x += 1\nx += 1\nx += 1", &ctx), "x += 1");
    assert_eq!(clean("a = 1\nb = 2\na = 1\nb = 2\n", &ctx), "a = 1\nb = 2");
    // Short lines (closing brackets) may legitimately repeat.
    assert_eq!(clean("    }\n}", &ctx), "    }\n}");
}

#[test]
fn single_line_scope_keeps_the_first_line() {
    let mut ctx = context("x = ", "", &[], 0);
    ctx.single_line = true;
    assert_eq!(clean("compute(a)\ny = 2", &ctx), "compute(a)");
}

#[test]
fn a_stray_leading_space_is_dropped() {
    assert_eq!(trim_leading_space(" a + b", "    return "), "a + b");
    assert_eq!(trim_leading_space(" a + b", "    return"), " a + b");
    assert_eq!(trim_leading_space("    x = 1", "    "), "    x = 1", "indentation on an empty line is kept");
}

#[test]
fn the_rest_of_the_line_is_not_repeated() {
    let cases = [
        // (candidate, rest of the line, expected)
        ("x, y)", ")", "x, y"),
        ("x, y", ")", "x, y"),
        ("a])", "])", "a"),
        ("f(a))", ")", "f(a)"),
        ("f(a)", ")", "f(a)"),
        ("value\nmore)", ")", "value\nmore)"),
        ("done", "", "done"),
    ];
    for (candidate, suffix, expected) in cases {
        assert_eq!(
            trim_line_suffix(candidate, suffix, crate::syntax::lexicon::lexicon("python")),
            expected,
            "{candidate:?} before {suffix:?}"
        );
    }
}

#[test]
fn indentation_follows_the_file() {
    assert_eq!(normalize_indentation("if x:\n        y()", true), "if x:\n\t\ty()");
    assert_eq!(normalize_indentation("{\n\tx();\n}", false), "{\n    x();\n}");
    assert_eq!(normalize_indentation("a\n    b", false), "a\n    b");
}

#[test]
fn trailing_blank_lines_go() {
    assert_eq!(trim_trailing_blank("x = 1  \n\n  \n"), "x = 1");
    assert_eq!(trim_trailing_blank("\n\n"), "");
}

#[test]
fn chat_models_lose_their_fences_and_prose() {
    assert_eq!(strip_chatter("Here is the completion:\n```python\nreturn a + b\n```\nThis adds them."), "return a + b");
    assert_eq!(strip_chatter("```\nx = 1\n```"), "x = 1");
    assert_eq!(strip_chatter("Sure, here is the code you need:\nreturn a + b"), "return a + b");
    assert_eq!(strip_chatter("return a + b\n\nThis returns the sum of both."), "return a + b");
    assert_eq!(strip_chatter("return a + b"), "return a + b");
}

#[test]
fn stop_rules_ignore_the_growing_last_line() {
    let ctx = context("", "", &["    return result"], 4);
    // Generation so far: the repeating line is not complete yet, so nothing is cut.
    assert_eq!(stop_at("    result = 1\n    return result", &ctx), None);
    assert_eq!(stop_at("    result = 1\n    return result\n", &ctx), Some(14));
}

#[test]
fn restating_the_code_above_is_cut() {
    // SmolLM2 answering an instruct prompt on an empty line: it starts over from the signature.
    let mut ctx = context("    ", "", &[], 0);
    ctx.above = vec!["def add(a, b):".into(), "    \"\"\"Return the sum.\"\"\"".into()];
    assert_eq!(clean("def add(a, b):\n    \"\"\"Return the sum.\"\"\"\n    return a + b", &ctx), "");
    assert_eq!(clean("return a + b\ndef add(a, b):\n    \"\"\"Return the sum.\"\"\"", &ctx), "return a + b");
    // One equal short line is no restatement.
    ctx.above = vec!["    }".into(), "}".into()];
    assert_eq!(clean("    }\n}\nfn more() {}", &ctx), "    }\n}\nfn more() {}");
}

#[test]
fn a_repeat_cut_keeps_the_closing_lines_of_what_the_candidate_opened() {
    // tokio's registration.rs, a match arm removed: the model writes another arm, closes it, and
    // goes on with an arm that exists above (`}` then `Err(ref e) ... => {`, trimmed).
    let mut ctx = context("", "", &["        }", "    }"], 12);
    ctx.lexicon = crate::syntax::lexicon::lexicon("rust");
    ctx.above = vec![
        "                }".into(),
        "                Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => {".into(),
        "                    self.clear_readiness(ev);".into(),
        "        match f() {".into(),
    ];
    let candidate = "            Ok(ret) => {\n                return Ok(ret);\n            }\n            Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => {\n";
    assert_eq!(clean(candidate, &ctx), "            Ok(ret) => {\n                return Ok(ret);\n            }");
    // tokio's coop/mod.rs: the candidate's `}` and the next one look like the `}`, `}` below.
    let mut ctx = context("", "", &["            }", "        }", "    }"], 16);
    ctx.lexicon = crate::syntax::lexicon::lexicon("rust");
    let candidate = "                if budget.is_unconstrained() {\n                    return Poll::Pending;\n                }\n            }\n        }\n";
    assert_eq!(
        clean(candidate, &ctx),
        "                if budget.is_unconstrained() {\n                    return Poll::Pending;\n                }"
    );
    // Closers beyond what the candidate opened belong to the code below: the cut stays.
    let candidate = "                poll();\n            }\n        }\n";
    assert_eq!(clean(candidate, &ctx), "                poll();");
    // Python: a call the candidate opened over several lines keeps its `)`.
    let mut ctx = context("", "", &[")", "return x"], 4);
    ctx.above = vec![")".into(), "y = g(".into()];
    assert_eq!(clean("    x = f(\n        1,\n    )\n    return x\n", &ctx), "    x = f(\n        1,\n    )");
}

#[test]
fn a_first_line_that_is_the_line_above_again_is_cut() {
    // pygments/lexers/c_like.py, a class attribute removed: the model wrote the one above again.
    let mut ctx = context("    ", "", &["", "    tokens = {"], 4);
    ctx.above = vec!["    mimetypes = ['text/x-vala']".into(), "    url = 'https://vala.dev'".into(), "".into()];
    assert_eq!(clean("url = 'https://vala.dev'\n    version_added = '1.5'", &ctx), "");
    // What the user typed counts as part of the line.
    ctx.line_before = "    url".into();
    assert_eq!(clean(" = 'https://vala.dev'", &ctx), "");
    // Another line, or a short one that code repeats (closers), stays.
    ctx.line_before = "    ".into();
    assert_eq!(clean("version_added = '1.5'", &ctx), "version_added = '1.5'");
    ctx.above = vec!["        }".into()];
    assert_eq!(clean("}\n", &ctx), "}");
}

#[test]
fn a_missing_header_ends_the_candidate() {
    // HumanEval/36: the hole is `for c in s:` above its body; the model wrote a second body.
    let mut ctx = context("", "", &["        ans += (c == '7')", "    return ans"], 4);
    ctx.above = vec!["    ans = 0".into()];
    assert_eq!(
        clean("    for c in s:\n        if c == '7':\n            ans += 1\n    return ans\n", &ctx),
        "    for c in s:"
    );
    // A hole of several lines: after its header the model writes what comes before the body.
    let mut hole = context("", "", &["            ans += 1", "    return ans"], 4);
    hole.above = vec!["    ans = 0".into()];
    assert_eq!(
        clean("    for c in s:\n        if c == '7':\n", &hole),
        "    for c in s:\n        if c == '7':",
        "not a copy of the body below"
    );
    // Headers on the way to the body below are not a copy of it (HumanEval/40).
    let mut nested = context("", "", &["                if l[i] + l[j] + l[k] == 0:", "    return False"], 4);
    nested.above = vec!["    \"\"\"".into()];
    let candidate =
        "    for i in range(n):\n        for j in range(i + 1, n):\n            for k in range(j + 1, len(l)):\n";
    assert_eq!(clean(candidate, &nested), candidate.trim_end());
    // The header was already there: the body is the candidate's to write.
    ctx.above = vec!["    for c in s:".into()];
    assert_eq!(
        clean("        if c == '7':\n            ans += 1\n", &ctx),
        "        if c == '7':\n            ans += 1"
    );
    // The code below continues at the same depth: no header is missing.
    let mut ctx = context("", "", &["    return ans"], 4);
    ctx.above = vec!["    ans = 0".into()];
    assert_eq!(clean("    for c in s:\n        ans += 1\n", &ctx), "    for c in s:\n        ans += 1");
}

#[test]
fn a_block_ending_line_before_code_at_its_depth_is_dropped() {
    // HumanEval/19: the hole is `}`; the model went on with its own `return`.
    let ctx = context("", "", &["", "    return ' '.join(sorted(words))"], 4);
    assert_eq!(clean("    }\n    return ' '.join(words)\n", &ctx), "    }");
    assert_eq!(clean("    return words\n", &ctx), "");
    // Code below at a lower depth is reachable: the line stays.
    let ctx = context("", "", &["", "def other():"], 4);
    assert_eq!(clean("    return words\n", &ctx), "    return words");
    // Not a block-ending line.
    let ctx = context("", "", &["    return total"], 4);
    assert_eq!(clean("    total += 1\n", &ctx), "    total += 1");
    // The user typed `return` already: their line, whatever follows.
    let ctx = context("    return ", "", &["    x = 1"], 4);
    assert_eq!(clean("a\n", &ctx), "a");
}

#[test]
fn rust_lines_are_read_as_rust() {
    // A last `return;` before code at its depth below is unreachable there, in Rust as in
    // Python (the language's exit words and comments come from its lexicon).
    let mut ctx = context("", "", &["    x.len()", "}"], 4);
    ctx.lexicon = crate::syntax::lexicon::lexicon("rust");
    assert_eq!(clean("    let y: &'a str = x;\n    return y;", &ctx), "    let y: &'a str = x;");
}
