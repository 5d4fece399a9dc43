//! Engine tests on real models (from `scripts/fetch-test-models`): FIM output, KV-cache reuse,
//! cancellation, priorities, budgets, trimming, chat templates, and every load error.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use mistral_lsp::config::{Options, Settings};
use mistral_lsp::engine::{
    Budget, CancelToken, Engine, EngineConfig, EngineError, Job, ModelSpec, Output, Priority, State, StopCheck,
    StopReason,
};
use mistral_lsp::prompt::{ChatMessage, Prompt, Segment};

mod errors;
mod gguf;

/// Where `scripts/fetch-test-models` puts the models.
pub fn model_path(file: &str) -> PathBuf {
    let dir = match std::env::var_os("MISTRAL_LSP_TEST_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("mistral-lsp/test-models")
        }
    };
    let path = dir.join(file);
    assert!(path.is_file(), "{} is missing: run scripts/fetch-test-models", path.display());
    path
}

pub const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";

pub fn settings(extra: serde_json::Value) -> Settings {
    let mut problems = Vec::new();
    let mut options =
        Options::from_json(&serde_json::json!({"threads": 2, "contextSize": 4096}), "test", &mut problems);
    options.merge(&Options::from_json(&extra, "test", &mut problems));
    assert!(problems.is_empty(), "{problems:?}");
    Settings::resolve(&options)
}

/// Tests take turns with the model: two at once on 2 cores slow each other down many times over.
pub fn turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

/// Starts an engine on a model file and waits for it to be ready or failed.
pub async fn start(path: &std::path::Path, settings: &Settings) -> (Engine, State) {
    let engine = Engine::start(ModelSpec::Path(path.to_owned()), EngineConfig::from_settings(settings));
    let state = tokio::time::timeout(Duration::from_secs(120), engine.ready()).await.expect("engine load timed out");
    (engine, state)
}

async fn qwen() -> Engine {
    let (engine, state) = start(&model_path(QWEN), &settings(serde_json::Value::Null)).await;
    assert!(matches!(state, State::Ready { .. }), "{state:?}");
    engine
}

/// Time budgets no machine runs out of: only the budget tests may depend on how fast this one is.
pub const PATIENT: Budget = Budget {
    prompt: Duration::from_secs(3600),
    generation: Duration::from_secs(3600),
    after_first_line: Duration::from_secs(3600),
};

fn infill(prefix: &str, suffix: &str, max_tokens: u32) -> Job {
    let mut job =
        Job::new(Priority::Interactive, Prompt::Infill { prefix: prefix.into(), suffix: suffix.into() }, max_tokens);
    job.budget = PATIENT;
    job
}

/// A job whose first generated token starts a new line, so that its `stop_check` (called at
/// every completed line) is certain to run, at the first token, with `hook`.
fn with_line_hook(mut job: Job, hook: impl Fn() + Send + Sync + 'static) -> Job {
    job.required_prefix = "\n".into();
    job.stop_check = Some(StopCheck(std::sync::Arc::new(move |_: &str| {
        hook();
        None
    })));
    job
}

/// Polls a future once, without a runtime: enough to run an engine job's synchronous part,
/// which queues the job.
fn poll_once<F: std::future::Future + ?Sized>(future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// About 1,000 tokens of real-looking Python.
fn long_python() -> String {
    (0..40)
        .map(|i| format!("def helper_{i}(values, scale={i}):\n    \"\"\"Scale and sum values.\"\"\"\n    return sum(v * scale for v in values)\n\n"))
        .collect()
}

#[test]
fn qwen_fills_a_small_python_function() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        let State::Ready { model, .. } = engine.state() else { panic!() };
        assert!(model.has_fim_tokens && model.has_repo_tokens, "{model:?}");
        assert_eq!(model.architecture, "qwen2");
        let job = infill(
            "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return ",
            "\n\n\nprint(add(2, 3))\n",
            16,
        );
        let output = engine.generate(job, CancelToken::new()).await.unwrap();
        let compact: String = output.text.split_whitespace().collect();
        assert!(compact.starts_with("a+b"), "a plausible middle: {:?}", output.text);
        assert!(output.stats.generated_tokens > 0);
    });
}

#[test]
fn an_alternative_begins_with_another_word_whatever_the_tokens() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        let prefix = "def count_sevens(s):\n    ans = 0\n";
        let suffix = "\n        ans += (c == '7')\n    return ans\n";
        let greedy = engine.generate(infill(prefix, suffix, 12), CancelToken::new()).await.unwrap().text;
        let word = mistral_lsp::postprocess::first_word(&greedy).expect("some output").to_owned();
        let mut job = infill(prefix, suffix, 12);
        job.avoid = vec![word.clone()];
        let other = engine.generate(job, CancelToken::new()).await.unwrap().text;
        let other_word = mistral_lsp::postprocess::first_word(&other).unwrap_or_default();
        assert!(!other_word.starts_with(&word) && !word.starts_with(other_word), "{greedy:?} then {other:?}");
        // Required indentation is kept, and the word after it still avoided.
        let mut job = infill(prefix, suffix, 12);
        job.required_prefix = "    ".into();
        job.avoid = vec![word.clone()];
        let indented = engine.generate(job, CancelToken::new()).await.unwrap().text;
        assert!(indented.starts_with("    "), "{indented:?}");
        let indented_word = mistral_lsp::postprocess::first_word(&indented).unwrap_or_default();
        assert!(!indented_word.starts_with(&word) && !word.starts_with(indented_word), "{indented:?}");
    });
}

#[test]
fn an_alternative_to_a_blank_answer_has_content_on_its_first_line() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        // Between two functions the likeliest middle is a blank line.
        let mut job = infill("def f():\n    return 1\n", "\n\ndef g():\n    return 2\n", 12);
        job.needs_content = true;
        let output = engine.generate(job, CancelToken::new()).await.unwrap().text;
        let first_line = output.split('\n').next().unwrap_or_default();
        assert!(!first_line.trim().is_empty(), "{output:?}");
    });
}

#[test]
fn required_indentation_is_followed_by_code_not_more_blanks() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        // Twelve spaces typed on an empty line of a deep block (HumanEval/56): a token of twelve
        // blanks would use them up, and the model then wrote nothing but blanks.
        let prefix = "def correct(brackets):\n    depth = 0\n    for b in brackets:\n        if b == '<':\n";
        let mut job = infill(prefix, "\n        else:\n            depth -= 1\n    return depth == 0\n", 12);
        job.required_prefix = " ".repeat(12);
        let output = engine.generate(job, CancelToken::new()).await.unwrap().text;
        let rest = output.strip_prefix(&" ".repeat(12)).unwrap_or_else(|| panic!("{output:?}"));
        assert!(rest.starts_with(|c: char| !c.is_whitespace()), "{output:?}");
    });
}

#[test]
fn required_indentation_is_tokenized_as_text_is() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        // HumanEval/81: the model would rather write `return` at the function's depth. With twelve
        // spaces required, taking its likeliest prefix of them (three spaces) and then more led
        // it to write `]`; eleven spaces and " letter" is how the tokenizer writes the text.
        let prefix = "def grade(gpas):\n    letters = []\n    for gpa in gpas:\n        if gpa == 4.0:\n            letters.append(\"A+\")\n        elif gpa > 3.7:\n            letters.append(\"A\")\n        elif gpa > 3.3:\n";
        let suffix = "\n        elif gpa > 3.0:\n            letters.append(\"B+\")\n        else:\n            letters.append(\"E\")\n    return letters\n";
        let mut job = infill(prefix, suffix, 12);
        job.required_prefix = " ".repeat(12);
        let output = engine.generate(job, CancelToken::new()).await.unwrap().text;
        let rest = output.strip_prefix(&" ".repeat(12)).unwrap_or_else(|| panic!("{output:?}"));
        // A statement at that depth, not a stray closer: it starts with a name or keyword.
        assert!(rest.starts_with(|c: char| c.is_alphabetic() || c == '_'), "{output:?}");
    });
}

#[test]
fn a_shared_prefix_is_not_evaluated_again() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        let prefix = long_python();
        let first = engine
            .generate(infill(&format!("{prefix}def main():\n    x = "), "\n", 4), CancelToken::new())
            .await
            .unwrap();
        assert!(first.stats.prompt_tokens > 900, "{:?}", first.stats);
        assert_eq!(first.stats.reused_tokens, 0);
        assert_eq!(first.stats.evaluated_tokens, first.stats.prompt_tokens);
        // The same file one keystroke later: only the tail after the common prefix is evaluated.
        let second = engine
            .generate(infill(&format!("{prefix}def main():\n    xy = "), "\n", 4), CancelToken::new())
            .await
            .unwrap();
        assert!(second.stats.reused_tokens > first.stats.prompt_tokens - 10, "{:?}", second.stats);
        assert!(second.stats.evaluated_tokens < 10, "{:?}", second.stats);
        assert_eq!(second.stats.reused_tokens + second.stats.evaluated_tokens, second.stats.prompt_tokens);
        let counters = engine.counters();
        assert!(counters.reused_tokens.load(std::sync::atomic::Ordering::Relaxed) >= second.stats.reused_tokens as u64);
    });
}

#[test]
fn cancellation_mid_generation_stops_and_leaves_the_cache_consistent() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        let prompt = "# A long list of the numbers from one to two hundred, one per line:\n";
        let cancel = CancelToken::new();
        let canceller = cancel.clone();
        // Cancelled at the first line it completes: mid-generation, whatever the machine's speed.
        let long = with_line_hook(infill(prompt, "", 400), move || canceller.cancel());
        let output = engine.generate(long, cancel).await.unwrap();
        assert_eq!(output.stop, StopReason::Cancelled);
        assert!((1..400).contains(&output.stats.generated_tokens), "{:?}", output.stats);
        // The next job works and matches a run on a clean cache.
        let short = || infill("def square(x):\n    return ", "\n", 8);
        let after = engine.generate(short(), CancelToken::new()).await.unwrap();
        assert_eq!(after.stats.reused_tokens + after.stats.evaluated_tokens, after.stats.prompt_tokens);
        let (fresh, _) = start(&model_path(QWEN), &settings(serde_json::Value::Null)).await;
        let clean = fresh.generate(short(), CancelToken::new()).await.unwrap();
        assert_eq!(after.text, clean.text);
    });
}

#[test]
fn a_superseded_job_stops_within_a_batch() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        let latest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
        let cancel = CancelToken::new().superseded_by(latest.clone(), 1);
        // Background work decodes its prompt a few tokens per step and lets a completion run
        // between steps; that completion supersedes it. Which comes first depends on the
        // scheduler: superseded while queued, the job is answered `Cancelled` without running;
        // superseded between two steps, it stops at the next one, its prompt unfinished.
        let mut job = infill(&long_python().repeat(2), "", 64);
        job.priority = Priority::Background;
        let background = {
            let engine = engine.clone();
            tokio::spawn(async move { engine.generate(job, cancel).await })
        };
        let bump = latest.clone();
        let newer = with_line_hook(infill("def square(x):\n    return ", "\n", 4), move || {
            bump.store(2, std::sync::atomic::Ordering::Release)
        });
        engine.generate(newer, CancelToken::new()).await.unwrap();
        let output = match background.await.unwrap() {
            Err(EngineError::Cancelled) => return,
            result => result.unwrap(),
        };
        assert_eq!(output.stop, StopReason::Cancelled);
        assert!(
            output.stats.evaluated_tokens < output.stats.prompt_tokens,
            "stopped during the prompt: {:?}",
            output.stats
        );
    });
}

#[test]
fn stop_strings_max_tokens_and_budgets() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        let mut job = infill("# Three lines of comments\n#", "", 64);
        job.stop = vec!["\n".into()];
        let output = engine.generate(job, CancelToken::new()).await.unwrap();
        assert_eq!(output.stop, StopReason::StopString);
        assert!(!output.text.contains('\n'), "{:?}", output.text);
        let output = engine.generate(infill("import ", "", 3), CancelToken::new()).await.unwrap();
        assert_eq!((output.stop, output.stats.generated_tokens), (StopReason::MaxTokens, 3));
        // No time at all for generating: it stops after the first token.
        let mut job = infill("# numbers\n1\n2\n", "", 200);
        job.budget.generation = Duration::ZERO;
        let output = engine.generate(job, CancelToken::new()).await.unwrap();
        assert_eq!((output.stop, output.stats.generated_tokens), (StopReason::TimeBudget, 1));
        let mut job = infill(&long_python(), "", 8);
        job.budget.prompt = Duration::ZERO;
        let output = engine.generate(job, CancelToken::new()).await.unwrap();
        assert_eq!((output.stop, output.text.as_str()), (StopReason::PromptBudget, ""));
    });
}

#[test]
fn prompts_longer_than_the_context_are_trimmed() {
    let _turn = turn();
    runtime().block_on(async {
        let settings = settings(serde_json::json!({"contextSize": 512}));
        let (engine, state) = start(&model_path(QWEN), &settings).await;
        assert!(matches!(state, State::Ready { .. }));
        let output = engine.generate(infill(&long_python(), &long_python(), 16), CancelToken::new()).await.unwrap();
        assert!(output.stats.trimmed_tokens > 1000, "{:?}", output.stats);
        assert!(output.stats.prompt_tokens <= 512);
        let chat = vec![ChatMessage { role: "user".into(), content: long_python() }];
        let output = engine
            .generate(
                Job::new(Priority::Background, Prompt::Chat { messages: chat, answer_prefix: String::new() }, 8),
                CancelToken::new(),
            )
            .await
            .unwrap();
        assert!(output.stats.trimmed_tokens > 0);
    });
}

/// A job that scores `text` after `before` (a review weighing a fix).
fn score(before: &str, text: &str) -> Job {
    let mut job = Job::new(Priority::Background, Prompt::Segments(vec![Segment::Text(before.into())]), 0);
    job.score = Some(text.into());
    job.budget = PATIENT;
    job
}

#[test]
fn a_scored_text_gets_its_log_probability_the_right_code_more_than_a_bug() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        let before = "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"";
        let right = engine.generate(score(before, "\n    return a + b\n"), CancelToken::new()).await.unwrap();
        let wrong = engine.generate(score(before, "\n    return a - b\n"), CancelToken::new()).await.unwrap();
        let (right_p, wrong_p) = (right.log_prob.unwrap(), wrong.log_prob.unwrap());
        assert!(right_p < 0.0 && wrong_p < right_p, "{right_p} {wrong_p}");
        assert!((right.text.as_str(), right.stop) == ("", StopReason::MaxTokens), "{right:?}");
        // The text before is read once: the second job decoded only what differs.
        assert!(
            wrong.stats.reused_tokens > 0 && wrong.stats.evaluated_tokens < right.stats.evaluated_tokens,
            "{:?}",
            wrong.stats
        );
        // The same text again, its prefix from the cache: the same score.
        let again = engine.generate(score(before, "\n    return a + b\n"), CancelToken::new()).await.unwrap();
        assert!((again.log_prob.unwrap() - right_p).abs() < 1e-3, "{again:?} {right_p}");
        // A text of many batches (the scored ones are small), read within its budget.
        let mut long = score(before, &format!("\n    return a + b\n\n\n{}", long_python()[..2000].trim_end()));
        long.budget = Budget::for_priority(Priority::Background);
        let long = engine.generate(long, CancelToken::new()).await.unwrap();
        assert!(long.stop == StopReason::MaxTokens && long.stats.prompt_tokens > 400, "{long:?}");
        assert!(long.log_prob.unwrap() < right_p, "{long:?}");
        // A text longer than half the context is refused, and the engine goes on.
        let long = long_python().repeat(3);
        let refused = engine.generate(score(before, &long), CancelToken::new()).await;
        assert!(matches!(refused, Err(EngineError::Unsupported(_))), "{refused:?}");
        let after = engine.generate(score(before, "\n    return a + b\n"), CancelToken::new()).await.unwrap();
        assert!(after.log_prob.is_some());
    });
}

#[test]
fn background_work_yields_to_a_completion_and_resumes_in_place() {
    type QuickJob = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Output, EngineError>> + Send>>;
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        // At the background job's first generated token, its hook queues a completion; the
        // worker runs that completion before the background job's next step.
        let quick: std::sync::Arc<parking_lot::Mutex<Option<QuickJob>>> = Default::default();
        let (slot, queuer) = (quick.clone(), engine.clone());
        let long = with_line_hook(
            Job::new(
                Priority::Background,
                Prompt::Infill { prefix: long_python().repeat(2), suffix: String::new() },
                4,
            ),
            move || {
                let mut slot = slot.lock();
                if slot.is_none() {
                    let engine = queuer.clone();
                    let job = infill("def square(x):\n    return ", "\n", 4);
                    let mut future: QuickJob = Box::pin(async move { engine.generate(job, CancelToken::new()).await });
                    assert!(poll_once(future.as_mut()).is_pending());
                    *slot = Some(future);
                }
            },
        );
        let background = engine.generate(long, CancelToken::new()).await.unwrap();
        let mut quick = quick.lock().take().expect("the background job generated a line");
        let std::task::Poll::Ready(quick) = poll_once(quick.as_mut()) else {
            panic!("the completion did not finish before the background job")
        };
        let quick = quick.unwrap();
        assert!(quick.stats.generated_tokens > 0);
        // Nothing of the background prompt was decoded twice, except its last token for logits.
        assert!(background.stats.evaluated_tokens <= background.stats.prompt_tokens + 1, "{:?}", background.stats);
        assert_eq!(background.stop, StopReason::MaxTokens);
    });
}

#[test]
fn smollm2_has_no_fim_tokens_and_its_chat_template_works() {
    let _turn = turn();
    runtime().block_on(async {
        let (engine, state) = start(&model_path(SMOLLM), &settings(serde_json::Value::Null)).await;
        let State::Ready { model, .. } = state else { panic!("{state:?}") };
        assert_eq!(model.architecture, "llama");
        assert!(!model.has_fim_tokens && model.has_chat_template, "{model:?}");
        let tokenizer = engine.tokenizer().unwrap();
        assert_eq!(tokenizer.fim_tokens(), None);
        assert!(tokenizer.count("def f(x): return x") > 3);
        let messages = vec![ChatMessage { role: "user".into(), content: "Say hello.".into() }];
        let rendered = tokenizer.apply_chat(&messages).unwrap();
        assert!(rendered.contains("<|im_start|>user") && rendered.contains("Say hello."), "{rendered}");
        let err = engine.generate(infill("a", "b", 4), CancelToken::new()).await.unwrap_err();
        assert!(matches!(err, EngineError::Unsupported(_)), "{err:?}");
        let mut chat = Job::new(Priority::Interactive, Prompt::Chat { messages, answer_prefix: String::new() }, 16);
        chat.budget = PATIENT;
        let output = engine.generate(chat, CancelToken::new()).await.unwrap();
        assert!(!output.text.trim().is_empty(), "{output:?}");
        assert!(!output.text.contains("<|im_start|>"));
    });
}

#[test]
fn qwen_tokenizer_exposes_fim_and_repo_tokens() {
    let _turn = turn();
    runtime().block_on(async {
        let engine = qwen().await;
        let tokenizer = engine.tokenizer().unwrap();
        assert_eq!(tokenizer.fim_tokens(), Some([151659, 151661, 151660]));
        assert_eq!(tokenizer.special(mistral_lsp::prompt::Special::FimRepo), Some(151663));
        assert_eq!(tokenizer.special(mistral_lsp::prompt::Special::FimSeparator), Some(151664));
        assert!(tokenizer.end_tokens().contains(&151645));
        let ids = tokenizer.tokenize("fn main() {}");
        assert_eq!(tokenizer.detokenize(&ids), "fn main() {}");
        assert_eq!(tokenizer.metadata("general.architecture").as_deref(), Some("qwen2"));
    });
}
