//! Prompt-lookup drafts, measured: the same fill-in-the-middle jobs on real files (a line cut out,
//! the cursor after its indentation) through engines that differ only in how many drafted tokens
//! they check per generated token, run in turn job by job; prints generation time, drafts
//! accepted and whether each answer is identical to the engine without drafts. A measurement,
//! not a test:
//!
//! `cargo run --release --example bench_draft -- --model M.gguf --files a.py,b.rs [--drafts 0,2,4,8]
//! [--holes 40] [--max-tokens 24] [--threads 2] [--seed 7]`

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, reason = "a benchmark prints its table")]

use std::path::PathBuf;

use mistral_lsp::config::{Options, Settings};
use mistral_lsp::engine::{CancelToken, Engine, EngineConfig, Job, ModelSpec, Priority, State};
use mistral_lsp::prompt::Prompt;

struct Args {
    model: PathBuf,
    files: Vec<PathBuf>,
    drafts: Vec<usize>,
    holes: usize,
    max_tokens: u32,
    threads: u32,
    seed: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: PathBuf::new(),
        files: Vec::new(),
        drafts: vec![0, 2, 4, 8],
        holes: 40,
        max_tokens: 24,
        threads: 2,
        seed: 7,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--model" => args.model = PathBuf::from(value()),
            "--files" => args.files = value().split(',').map(PathBuf::from).collect(),
            "--drafts" => args.drafts = value().split(',').map(|d| d.parse().unwrap()).collect(),
            "--holes" => args.holes = value().parse().unwrap(),
            "--max-tokens" => args.max_tokens = value().parse().unwrap(),
            "--threads" => args.threads = value().parse().unwrap(),
            "--seed" => args.seed = value().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(args.model.is_file(), "--model must name a .gguf file");
    assert!(!args.files.is_empty() && args.drafts.first() == Some(&0), "--files, and --drafts starting with 0");
    args
}

/// Holes: for lines picked at random (non-blank, not the file's first 20), the code before the
/// line's text (1,500 bytes at most) and the lines after it (400 bytes at most).
fn holes(files: &[PathBuf], count: usize, mut seed: u64) -> Vec<(String, String)> {
    let texts: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut out = Vec::new();
    while out.len() < count {
        let text = &texts[out.len() % texts.len()];
        let starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        let line = 20 + next() % (starts.len() - 22);
        let (start, end) = (starts[line], starts[line + 1]);
        let content = &text[start..end];
        if content.trim().len() < 4 {
            continue;
        }
        let cursor = start + (content.len() - content.trim_start().len());
        let boundary = |mut at: usize| {
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        let (from, to) = (boundary(cursor.saturating_sub(1500)), boundary((end + 400).min(text.len())));
        out.push((text[from..cursor].to_owned(), text[end..to].to_owned()));
    }
    out
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut problems = Vec::new();
        let options =
            Options::from_json(&serde_json::json!({"threads": args.threads, "contextSize": 4096}), "bench", &mut problems);
        let settings = Settings::resolve(&options);
        let mut engines = Vec::new();
        for &drafts in &args.drafts {
            // Read by the engine when its model loads.
            std::env::set_var("MISTRAL_LSP_DRAFT_TOKENS", drafts.to_string());
            let engine = Engine::start(ModelSpec::Path(args.model.clone()), EngineConfig::from_settings(&settings));
            let State::Ready { model, .. } = engine.ready().await else { panic!("model failed to load") };
            eprintln!("engine with {drafts} drafted tokens: {}", model.description);
            engines.push(engine);
        }
        let holes = holes(&args.files, args.holes, args.seed);
        // Per engine: generation ms, tokens, drafted, accepted, answers identical to the first.
        let mut totals = vec![[0u64; 5]; engines.len()];
        for (index, (prefix, suffix)) in holes.iter().enumerate() {
            let mut first = None;
            for (engine, total) in engines.iter().zip(&mut totals) {
                let prompt = Prompt::Infill { prefix: prefix.clone(), suffix: suffix.clone() };
                let job = Job::new(Priority::Interactive, prompt, args.max_tokens);
                let output = engine.generate(job, CancelToken::new()).await.unwrap();
                let stats = output.stats;
                let same = first.get_or_insert_with(|| output.generated.clone()) == &output.generated;
                for (sum, value) in total.iter_mut().zip([
                    stats.generation_ms,
                    stats.generated_tokens as u64,
                    stats.drafted_tokens as u64,
                    stats.accepted_tokens as u64,
                    u64::from(same),
                ]) {
                    *sum += value;
                }
            }
            eprintln!("hole {}/{}", index + 1, holes.len());
        }
        println!(
            "{} holes in {} files, max {} tokens, {} threads\n",
            holes.len(),
            args.files.len(),
            args.max_tokens,
            args.threads
        );
        println!("| drafted tokens per step | generated tokens | generation s | ms per token | accepted / drafted | identical answers |");
        println!("|---|---|---|---|---|---|");
        for (drafts, [ms, tokens, drafted, accepted, same]) in args.drafts.iter().zip(&totals) {
            println!(
                "| {drafts} | {tokens} | {:.1} | {:.1} | {accepted} / {drafted} | {same} / {} |",
                *ms as f64 / 1000.0,
                *ms as f64 / (*tokens).max(1) as f64,
                holes.len()
            );
        }
    });
}
