//! Engine benchmark: prompt and generation rates next to llama-bench's, cold vs warm latency with
//! KV-cache reuse, and peak memory. Run it with `scripts/bench-engine`, which builds llama-bench
//! and passes its figures in; this is a measurement, not a test.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, reason = "a benchmark prints its table")]

use std::path::PathBuf;
use std::time::Instant;

use mistral_lsp::config::{Options, Settings};
use mistral_lsp::engine::{CancelToken, Engine, EngineConfig, Job, ModelSpec, Priority, State, Stats};
use mistral_lsp::prompt::{Prompt, Segment};

struct Args {
    model: PathBuf,
    threads: u32,
    runs: usize,
    llama_bench: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args { model: PathBuf::new(), threads: 2, runs: 5, llama_bench: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--model" => args.model = PathBuf::from(value()),
            "--threads" => args.threads = value().parse().unwrap(),
            "--runs" => args.runs = value().parse().unwrap(),
            "--llama-bench-json" => args.llama_bench = Some(PathBuf::from(value())),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(args.model.is_file(), "--model must name a .gguf file");
    args
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn run(engine: &Engine, prompt: Prompt, max_tokens: u32) -> Stats {
    let job = Job::new(Priority::Interactive, prompt, max_tokens);
    engine.generate(job, CancelToken::new()).await.unwrap().stats
}

fn text(s: String) -> Prompt {
    Prompt::Segments(vec![Segment::Text(s)])
}

/// llama-bench's JSON: one object per test, with n_prompt, n_gen and avg_ts.
fn llama_bench_rates(path: &PathBuf) -> (Option<f64>, Option<f64>) {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut pp = None;
    let mut tg = None;
    for test in json.as_array().into_iter().flatten() {
        let rate = test["avg_ts"].as_f64();
        if test["n_prompt"].as_u64().unwrap_or(0) > 0 && test["n_gen"].as_u64() == Some(0) {
            pp = rate;
        } else if test["n_gen"].as_u64().unwrap_or(0) > 0 && test["n_prompt"].as_u64() == Some(0) {
            tg = rate;
        }
    }
    (pp, tg)
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut problems = Vec::new();
        let options = Options::from_json(
            &serde_json::json!({"threads": args.threads, "contextSize": 4096}),
            "bench",
            &mut problems,
        );
        let settings = Settings::resolve(&options);
        let engine = Engine::start(ModelSpec::Path(args.model.clone()), EngineConfig::from_settings(&settings));
        let State::Ready { model, .. } = engine.ready().await else { panic!("model failed to load") };
        let tokenizer = engine.tokenizer().unwrap();
        eprintln!("model: {}", model.description);

        // A long, varied body of code-like text to cut prompts from.
        let corpus: String = (0..400)
            .map(|i| {
                format!(
                    "def function_{i}(alpha, beta={i}):\n    value = alpha * beta + {}\n    return value // {}\n\n",
                    i * 7,
                    i % 13 + 1
                )
            })
            .collect();
        let tokens = tokenizer.tokenize(&corpus);
        let cut = |from: usize, n: usize| tokenizer.detokenize(&tokens[from..from + n]);

        // Prompt processing: 512 tokens, each run a different text so nothing is reused.
        let mut pp = Vec::new();
        for run_index in 0..args.runs {
            let stats = run(&engine, text(cut(run_index * 600, 512)), 1).await;
            assert_eq!(stats.reused_tokens, 0);
            pp.push(stats.evaluated_tokens as f64 * 1000.0 / stats.prompt_ms.max(1) as f64);
        }
        // Generation: 128 tokens after a short prompt that invites a long answer.
        let mut tg = Vec::new();
        for run_index in 0..args.runs {
            let prompt = format!("# run {run_index}\n# the numbers from 1 to 500, comma separated:\n1, 2, 3,");
            let stats = run(&engine, text(prompt), 128).await;
            let decoded = stats.generated_tokens.saturating_sub(1).max(1);
            tg.push(decoded as f64 * 1000.0 / stats.generation_ms.max(1) as f64);
        }
        // Cold vs warm: 1,000 tokens, then 1,000 tokens sharing the first 950.
        let (mut cold, mut warm, mut warm_eval, mut warm_decode) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run_index in 0..args.runs {
            let base = 5_000 + run_index * 1_200;
            let a = tokenizer.detokenize(&tokens[base..base + 1000]);
            let b = format!("{}{}", tokenizer.detokenize(&tokens[base..base + 950]), cut(100 + run_index * 60, 50));
            let started = Instant::now();
            let first = run(&engine, text(a), 1).await;
            cold.push(started.elapsed().as_secs_f64());
            assert_eq!(first.reused_tokens, 0);
            let started = Instant::now();
            let second = run(&engine, text(b), 1).await;
            warm.push(started.elapsed().as_secs_f64());
            warm_eval.push(second.evaluated_tokens as f64);
            warm_decode.push(second.prompt_ms as f64 / 1000.0);
        }
        let pp_rate = median(pp.clone());
        let tg_rate = median(tg.clone());
        let new_tokens = median(warm_eval.clone());
        let new_alone = new_tokens / pp_rate;
        let (bench_pp, bench_tg) = args.llama_bench.as_ref().map(llama_bench_rates).unwrap_or((None, None));

        let meta = |key: &str| {
            tokenizer.metadata(&format!("{}.{key}", model.architecture)).and_then(|v| v.parse::<u64>().ok())
        };
        let kv_bytes = match (
            meta("block_count"),
            meta("attention.head_count_kv"),
            meta("embedding_length"),
            meta("attention.head_count"),
        ) {
            (Some(layers), Some(kv_heads), Some(embd), Some(heads)) => {
                2 * layers * kv_heads * (embd / heads) * 2 * u64::from(settings.context_size) * 2
            }
            _ => 0,
        };
        let file = std::fs::metadata(&args.model).unwrap().len();
        let rss = peak_rss_bytes();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let show = |v: Option<f64>| v.map_or("(not run)".to_owned(), |v| format!("{v:.1}"));
        let ratio = |ours: f64, theirs: Option<f64>| theirs.map_or("".to_owned(), |t| format!("{:.3}", ours / t));

        println!(
            "\nEngine benchmark: {} with {} threads, median of {} runs\n",
            model.description, args.threads, args.runs
        );
        println!("| measure | mistral-lsp engine | llama-bench | engine / llama-bench |");
        println!("|---|---|---|---|");
        println!(
            "| prompt tokens/s (512-token prompt) | {pp_rate:.1} | {} | {} |",
            show(bench_pp),
            ratio(pp_rate, bench_pp)
        );
        println!(
            "| generation tokens/s (128 tokens) | {tg_rate:.1} | {} | {} |",
            show(bench_tg),
            ratio(tg_rate, bench_tg)
        );
        println!();
        println!("| latency, 1,000-token prompt | seconds |");
        println!("|---|---|");
        println!("| cold (nothing cached) | {:.3} |", median(cold.clone()));
        println!("| warm (950 tokens shared with the previous prompt) | {:.3} |", median(warm.clone()));
        println!("| tokens evaluated when warm | {new_tokens:.0} |");
        println!("| time to decode those tokens alone at the prompt rate | {new_alone:.3} |");
        println!("| warm / decode-alone | {:.2} |", median(warm.clone()) / new_alone);
        let decode = median(warm_decode.clone());
        println!("| engine's own time decoding those tokens on the cached prefix | {decode:.3} |");
        println!("| warm / that decode time (the engine's overhead) | {:.2} |", median(warm.clone()) / decode);
        println!();
        println!("| memory | MiB |");
        println!("|---|---|");
        println!("| model file | {:.0} |", mib(file));
        println!("| KV cache (2 slots x {} tokens, f16) | {:.0} |", settings.context_size, mib(kv_bytes));
        println!("| peak RSS | {:.0} |", mib(rss));
        println!("| peak RSS - (model file + KV cache) | {:.0} |", mib(rss) - mib(file) - mib(kv_bytes));
        eprintln!("raw: pp {pp:?} tg {tg:?} cold {cold:?} warm {warm:?}");
    });
}
