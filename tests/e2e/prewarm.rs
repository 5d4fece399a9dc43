//! Pre-warming and adaptive budgets, by behaviour: what the engine evaluated, not how long it
//! took.

use serde_json::{json, Value};

use crate::harness::{checksum, Server};

fn status(server: &mut Server) -> Value {
    server.request("workspace/executeCommand", json!({"command": "mistral-lsp.status"})).unwrap()
}

fn count(status: &Value, key: &str) -> u64 {
    status[key].as_u64().unwrap_or_else(|| panic!("{key} in {status}"))
}

/// A Python file long enough that its prompt is worth warming.
fn long_file() -> String {
    (0..60).map(|i| format!("def f{i}(x):\n    return x + {i}\n\n")).collect::<String>() + "def g(y):\n    \n"
}

#[test]
fn the_cursor_notification_prewarms_the_next_completion_prompt() {
    let mut server = Server::start("test:checksum?prompt_ms=100", json!({}), Value::Null);
    server.wait_ready();
    let text = long_file();
    let (line, column) = (text.lines().count() as u32 - 1, 4);
    server.open("file:///w/a.py", "python", &text);
    // Opening pre-warms the file's start; however late the cursor notification arrives on a
    // busy machine, the pre-warming counted after it is the one at the cursor.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let wait_for = |server: &mut Server, at_least: u64| loop {
        let now = status(server);
        if count(&now, "prewarmed") >= at_least {
            return now;
        }
        assert!(std::time::Instant::now() < deadline, "no pre-warming: {now}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let opened = count(&wait_for(&mut server, 1), "prewarmed");
    server.notify(
        "mistral-lsp/cursor",
        json!({"textDocument": {"uri": "file:///w/a.py"}, "position": {"line": line, "character": column}}),
    );
    let before = wait_for(&mut server, opened + 1);
    assert_eq!(
        before["userAt"],
        json!({"uri": "file:///w/a.py", "position": {"line": line, "character": column}}),
        "the status shows where pre-warming reads"
    );
    let items = server.inline("file:///w/a.py", line, column).unwrap();
    assert_eq!(items[0]["insertText"], checksum(&text, text.len() - 1), "the answer is unchanged");
    let after = status(&mut server);
    let evaluated = count(&after, "evaluatedTokens") - count(&before, "evaluatedTokens");
    let reused = count(&after, "reusedTokens") - count(&before, "reusedTokens");
    assert!(evaluated <= 2, "the completion read only what the pre-warming left: {evaluated} evaluated");
    assert!(reused > 1000, "it reused the pre-warmed prompt: {reused}");
    server.shutdown();
}

#[test]
fn without_prewarming_the_completion_reads_its_whole_prompt() {
    let mut server =
        Server::builder().arg("--model").arg("test:checksum").arg("--set").arg("completion.prewarm=false").spawn();
    server.initialize(json!({}), Value::Null);
    server.wait_ready();
    let text = long_file();
    let line = text.lines().count() as u32 - 1;
    server.open("file:///w/b.py", "python", &text);
    server.notify(
        "mistral-lsp/cursor",
        json!({"textDocument": {"uri": "file:///w/b.py"}, "position": {"line": line, "character": 4}}),
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let items = server.inline("file:///w/b.py", line, 4).unwrap();
    assert_eq!(items[0]["insertText"], checksum(&text, text.len() - 1));
    let after = status(&mut server);
    assert_eq!(count(&after, "prewarmed"), 0, "{after}");
    assert!(count(&after, "evaluatedTokens") > 1000, "{after}");
    server.shutdown();
}

/// The checksum backend answers "LEN:HASH" where LEN is the cursor's offset in the prompt's
/// window: the length of the code before the cursor that the prompt holds.
fn window_before_cursor(server: &mut Server, uri: &str, text: &str) -> usize {
    server.open(uri, "python", text);
    let line = text.lines().count() as u32 - 1;
    let items = server.inline(uri, line, 4).unwrap();
    let answer = items[0]["insertText"].as_str().unwrap().trim_matches('"').to_owned();
    answer.split(':').next().unwrap().parse().unwrap()
}

#[test]
fn a_slow_model_gets_a_smaller_prompt_unless_budgets_are_fixed() {
    // The backend reports 10 prompt tokens/s as its measured speed: 12 s read 120 tokens.
    let slow = "test:checksum?prompt_us=100000&generation_us=100000";
    let text = long_file();
    let mut adaptive = Server::start(slow, json!({}), Value::Null);
    adaptive.wait_ready();
    let speed = status(&mut adaptive)["speed"].clone();
    assert_eq!(speed["promptTokensPerSecond"], 10.0, "{speed}");
    let small = window_before_cursor(&mut adaptive, "file:///w/c.py", &text);
    adaptive.shutdown();
    let mut fixed =
        Server::builder().arg("--model").arg(slow).arg("--set").arg("completion.adaptiveBudgets=false").spawn();
    fixed.initialize(json!({}), Value::Null);
    fixed.wait_ready();
    let full = window_before_cursor(&mut fixed, "file:///w/c.py", &text);
    fixed.shutdown();
    // Four bytes a token: the prefix gets its share (1024 of 1792) of 120 tokens.
    assert!(small > 0 && small <= 4 * 120, "adaptive: {small} bytes before the cursor");
    assert!(full > 1500, "settings as they are: {full} bytes before the cursor");
}

#[test]
fn a_slow_model_answers_with_its_first_candidate_rather_than_repair_twice_as_long() {
    // `total = compute(` is broken and the checksum answer (a string literal) leaves it broken:
    // an automatic request then tries another candidate, unless that would take too long.
    let text = "def f(values):\n    total = compute(\n";
    let jobs = |spec: &str| {
        let mut server =
            Server::builder().arg("--model").arg(spec).arg("--set").arg("completion.prewarm=false").spawn();
        server.initialize(json!({}), Value::Null);
        server.wait_ready();
        server.open("file:///w/r.py", "python", text);
        let items = server.inline("file:///w/r.py", 1, 20).unwrap();
        assert!(!items.is_empty(), "an answer either way");
        let jobs = count(&status(&mut server), "jobs");
        server.shutdown();
        jobs
    };
    assert_eq!(jobs("test:checksum"), 2, "a fast model tries another candidate");
    // Four tokens 800 ms apart: the first candidate alone takes 3.2 s.
    assert_eq!(jobs("test:checksum?tokens=4&token_ms=800"), 1, "a slow one answers with the first");
    // A new prompt read for 4 s, a quick answer: the second candidate reads no prompt and costs
    // little beside the wait so far.
    assert_eq!(jobs("test:checksum?prompt_ms=4000"), 2, "a slow prompt alone does not forbid a repair");
}

#[test]
fn a_speed_measured_on_a_busy_moment_recovers_as_jobs_run_fast() {
    // The backend reports 10 prompt tokens/s at load (a busy moment), then reads every prompt
    // in about 20 ms: completions refine the measured speed and the window grows back.
    let spec = "test:checksum?prompt_us=100000&generation_us=100000&prompt_ms=20";
    let mut server = Server::builder().arg("--model").arg(spec).arg("--set").arg("completion.prewarm=false").spawn();
    server.initialize(json!({}), Value::Null);
    server.wait_ready();
    let text = long_file();
    let first = window_before_cursor(&mut server, "file:///w/s.py", &text);
    // Files whose every line differs: each completion reads its whole prompt.
    for n in 0..18 {
        let other = text.replace("return x", &format!("return x * {n}"));
        window_before_cursor(&mut server, &format!("file:///w/s{n}.py"), &other);
    }
    let speed = status(&mut server)["speed"]["promptTokensPerSecond"].as_f64().unwrap();
    let last = window_before_cursor(&mut server, "file:///w/t.py", &text.replace("return x", "return -x"));
    server.shutdown();
    assert!(speed > 100.0, "the measured speed followed the jobs: {speed} tokens/s");
    assert!(first <= 4 * 120 && last > 1500, "the window grew back: {first} -> {last} bytes before the cursor");
}
