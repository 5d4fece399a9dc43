//! The persistent llama.cpp context: KV slots that keep their tokens across jobs, prompts
//! tokenized and trimmed to fit, and jobs run one step (a batch or a token) at a time.

#![allow(clippy::disallowed_types, reason = "the llama.cpp backend touches llama.cpp")]

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use super::super::generation::Generation;
use super::super::worker::{Backend, Step};
use super::super::{constrain, lookup};
use super::super::{
    CancelToken, EngineConfig, EngineError, Job, ModelInfo, Output, Priority, Prompt, Segment, Special, Stats,
    StopReason,
};
use super::tokenizer::{describe, render_chat, special_token};
use crate::models::Rates;

/// Tokens decoded per batch: the granularity of cancellation and of yielding.
const BATCH: usize = 512;
/// Prompt tokens per step of background and idle work, at most: few, so that a completion that
/// arrives (or the cancellation of this work) waits for at most this many tokens...
const BACKGROUND_BATCH: usize = 64;
/// ...and no more than the model decodes in this time, by its measured rate (18 tokens for a 7B
/// on two cores, where 64 would hold a completion up for 3.5 s)...
const IDLE_STEP: Duration = Duration::from_secs(1);
/// ...or this for background work (explanations, reviews), which reads long prompts while the
/// user types: smaller steps cost it some speed, and keep a completion's wait short (a review
/// of a whole file with 1 s steps raised the completion p50 from 0.80 to 1.25 s, bench/busy_latency.py).
const BACKGROUND_STEP: Duration = Duration::from_millis(250);
/// Code whose tokens measure the model's speed when it is loaded.
const CALIBRATION_TEXT: &str = "def mean(values: list[float]) -> float:\n    \"\"\"The average of `values`.\"\"\"\n    total = 0.0\n    for value in values:\n        total += value\n    return total / len(values) if values else 0.0\n\n\nfn main() {\n    let args: Vec<String> = std::env::args().collect();\n    println!(\"{}\", args.len());\n}\n";
/// Prompt tokens timed by the calibration (one batch), and tokens "generated" one at a time.
const CALIBRATION_PROMPT: usize = 64;
const CALIBRATION_GENERATED: usize = 8;
/// Drafted tokens checked with each generated token, at most (see `lookup`); 0 turns drafts off.
/// Off by default: checking a draft in a batch runs llama.cpp's batched kernels, whose rounding
/// differs from one token at a time, so answers are not always those of plain greedy decoding
/// (measured: 6 of 24 and 8 of 48 real-file answers differed; bench/README.md, examples/bench_draft.rs).
const DRAFT_TOKENS: usize = 0;
/// Slots: interactive (and pre-warming), background. The context starts with the first only.
const SLOTS: usize = 2;
/// Positions whose logits one decode keeps while scoring a text (`Job::score`): each holds a
/// whole vocabulary of floats (600 KiB for a 150k-token vocabulary).
const SCORE_BATCH: usize = 32;

struct Slot {
    seq: i32,
    /// Tokens whose state is in this slot's KV cache, positions 0.. in order.
    cached: Vec<LlamaToken>,
}

/// The persistent context and what its cache holds.
pub(crate) struct Session<'m> {
    backend: &'m LlamaBackend,
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    /// Slots the context has room for: 1 until background work first needs the second.
    sequences: usize,
    threads: u32,
    batch: LlamaBatch<'static>,
    slots: Vec<Slot>,
    /// Tokens each slot can hold.
    slot_size: usize,
    /// The job whose logits the last decode left, and their index in that batch.
    logits: Option<(u64, i32)>,
    next_id: u64,
    /// The text of every token, for constrained (healed) first tokens.
    pieces: Vec<Vec<u8>>,
    /// Drafted tokens per generated token, at most.
    draft_tokens: usize,
    pub info: ModelInfo,
}

/// A job in progress.
pub(crate) struct Running {
    id: u64,
    job: Job,
    cancel: CancelToken,
    slot: usize,
    /// The prompt followed by the tokens generated so far.
    tokens: Vec<LlamaToken>,
    prompt_len: usize,
    sampler: LlamaSampler,
    /// The job's grammar (see `Session::sample_grammar`).
    grammar: Option<LlamaSampler>,
    /// What has been generated, with the stop rules applied.
    generation: Generation,
    stats: Stats,
    started: Instant,
    prompt_done: Option<Instant>,
    first_step: bool,
    /// What the job's first tokens must be, and how far they are.
    rules: constrain::Rules,
    progress: constrain::Progress,
    /// Drafted tokens decoded after the last generated token whose logits are not checked yet.
    draft: Vec<LlamaToken>,
    /// For a job that scores a text: where its tokens start in `tokens`, and the sum of their
    /// log-probabilities read so far.
    scored_from: Option<usize>,
    log_prob: f64,
}

impl<'m> Session<'m> {
    pub(super) fn new(
        backend: &'m LlamaBackend,
        model: &'m LlamaModel,
        config: &EngineConfig,
    ) -> Result<Session<'m>, String> {
        let threads = if config.threads == 0 { num_cpus::get_physical().max(1) as u32 } else { config.threads };
        let slot_size = config.context_size as usize;
        let ctx = new_context(backend, model, config.context_size, threads, 1)?;
        let info = describe(model, config.context_size, threads);
        let slots = (0..SLOTS).map(|seq| Slot { seq: seq as i32, cached: Vec::new() }).collect();
        let vocab = model.vocab();
        let pieces = (0..vocab.n_tokens()).map(|t| vocab.token_to_piece(LlamaToken(t), false, None)).collect();
        Ok(Session {
            backend,
            model,
            ctx,
            sequences: 1,
            threads,
            batch: LlamaBatch::new(BATCH, 1),
            slots,
            slot_size,
            logits: None,
            next_id: 0,
            pieces,
            draft_tokens: draft_tokens(),
            info,
        })
    }

    /// Gives the context room for `slot`: the background slot is allocated the first time
    /// background work needs it (it is off by default, and would double the KV memory). The
    /// context is made anew with both slots, so the first slot's cache starts empty once.
    fn make_room(&mut self, slot: usize) -> Result<(), EngineError> {
        if slot < self.sequences {
            return Ok(());
        }
        let size = self.slot_size as u32;
        let ctx = new_context(self.backend, self.model, size, self.threads, SLOTS).map_err(EngineError::Failed)?;
        tracing::info!("allocated the background slot ({size} tokens of KV cache)");
        self.ctx = ctx;
        self.sequences = SLOTS;
        self.logits = None;
        for slot in &mut self.slots {
            slot.cached.clear();
        }
        Ok(())
    }

    /// Measures how fast this model runs here: one batch of prompt tokens, then tokens decoded
    /// one at a time as generation does, after a small warm-up batch (the first decode also
    /// pages the weights in). Leaves the cache empty. Costs about 5 s for a 7B on two cores.
    pub(super) fn calibrate(&mut self) -> Result<Rates, EngineError> {
        let vocab = self.model.vocab();
        let mut tokens = Vec::new();
        while tokens.len() < CALIBRATION_PROMPT + CALIBRATION_GENERATED {
            tokens.extend(vocab.tokenize(CALIBRATION_TEXT.as_bytes(), false, false));
        }
        let failed = |err: String| EngineError::Failed(format!("measuring the model's speed failed: {err}"));
        let seq = self.slots[0].seq;
        let decode = |session: &mut Self, range: std::ops::Range<usize>| -> Result<Duration, EngineError> {
            session.batch.clear();
            for pos in range.clone() {
                session
                    .batch
                    .add(tokens[pos], pos as i32, &[seq], pos + 1 == range.end)
                    .map_err(|e| failed(e.to_string()))?;
            }
            let started = Instant::now();
            session.ctx.decode(&mut session.batch).map_err(|e| failed(e.to_string()))?;
            Ok(started.elapsed())
        };
        self.logits = None;
        self.slots[0].cached.clear();
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        decode(self, 0..8)?;
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        let prompt = decode(self, 0..CALIBRATION_PROMPT)?;
        let mut generation = Duration::ZERO;
        for pos in CALIBRATION_PROMPT..CALIBRATION_PROMPT + CALIBRATION_GENERATED {
            generation += decode(self, pos..pos + 1)?;
        }
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        let per_token =
            |time: Duration, count: usize| (time.as_micros() / count as u128).clamp(1, u32::MAX as u128) as u32;
        let rates = Rates {
            prompt_us_per_token: per_token(prompt, CALIBRATION_PROMPT),
            generation_us_per_token: per_token(generation, CALIBRATION_GENERATED),
        };
        tracing::info!(
            "measured speed: {:.1} prompt tokens/s, {:.1} generated tokens/s ({} threads)",
            rates.prompt_per_second(),
            rates.generation_per_second(),
            self.threads
        );
        self.info.rates = Some(rates);
        Ok(rates)
    }

    /// Prompt tokens per step of background or idle work (see [`IDLE_STEP`], [`BACKGROUND_STEP`]).
    fn background_batch(&self, priority: Priority) -> usize {
        let step = if priority == Priority::Background { BACKGROUND_STEP } else { IDLE_STEP };
        match self.info.rates {
            Some(rates) => {
                let tokens = step.as_micros() / u128::from(rates.prompt_us_per_token.max(1));
                (tokens as usize).clamp(8, BACKGROUND_BATCH)
            }
            None => BACKGROUND_BATCH,
        }
    }

    /// Tokenizes and trims a prompt so that it and `max_tokens` fit one slot.
    fn prompt_tokens(&self, job: &Job) -> Result<(Vec<LlamaToken>, usize), EngineError> {
        let vocab = self.model.vocab();
        let text = |s: &str| vocab.tokenize(s.as_bytes(), false, false);
        let reserve = (job.max_tokens as usize).min(self.slot_size / 2);
        let limit = self.slot_size.saturating_sub(reserve + 1).max(16);
        let bos = if vocab.should_add_bos() { special_token(self.model, Special::Bos) } else { None };
        match &job.prompt {
            Prompt::Infill { prefix, suffix } => {
                let (Some(pre), Some(suf), Some(mid)) = (
                    special_token(self.model, Special::FimPrefix),
                    special_token(self.model, Special::FimSuffix),
                    special_token(self.model, Special::FimMiddle),
                ) else {
                    return Err(EngineError::Unsupported("the model has no fill-in-the-middle tokens".into()));
                };
                let (mut prefix, mut suffix) = (text(prefix), text(suffix));
                let available = limit.saturating_sub(3 + usize::from(bos.is_some()));
                let total = prefix.len() + suffix.len();
                let trimmed = total.saturating_sub(available);
                if trimmed > 0 {
                    // Prefix and suffix share the room 3:1; either gets what the other leaves.
                    let suffix_room = suffix.len().min((available / 4).max(available.saturating_sub(prefix.len())));
                    let prefix_room = prefix.len().min(available - suffix_room);
                    prefix.drain(..prefix.len() - prefix_room);
                    suffix.truncate(suffix_room);
                }
                let mut tokens: Vec<LlamaToken> = bos.into_iter().collect();
                tokens.push(pre);
                tokens.extend(prefix);
                tokens.push(suf);
                tokens.extend(suffix);
                tokens.push(mid);
                Ok((tokens, trimmed))
            }
            Prompt::Segments(segments) => {
                let mut tokens = Vec::new();
                for segment in segments {
                    match segment {
                        Segment::Text(s) => tokens.extend(text(s)),
                        Segment::Special(special) => {
                            tokens.push(special_token(self.model, *special).ok_or_else(|| {
                                EngineError::Unsupported(format!("the model has no {special:?} token"))
                            })?)
                        }
                    }
                }
                Ok(trim_front(tokens, limit, 0))
            }
            Prompt::Chat { messages, answer_prefix } => {
                let mut rendered = render_chat(self.model, messages).map_err(EngineError::Unsupported)?;
                rendered.push_str(answer_prefix);
                let mut tokens = vocab.tokenize(rendered.as_bytes(), false, true);
                let keep = match bos {
                    Some(bos) if tokens.first() != Some(&bos) => {
                        tokens.insert(0, bos);
                        1
                    }
                    Some(_) => 1,
                    None => 0,
                };
                Ok(trim_front(tokens, limit, keep))
            }
        }
    }

    fn finish(&mut self, running: &mut Running, stop: StopReason) -> Step {
        let now = Instant::now();
        match running.prompt_done {
            Some(done) => running.stats.generation_ms = now.duration_since(done).as_millis() as u64,
            None => running.stats.prompt_ms = now.duration_since(running.started).as_millis() as u64,
        }
        running.stats.generated_tokens = running.generation.tokens;
        let (text, generated) = running.generation.finish(&running.job, stop);
        let stats = running.stats;
        let log_prob = running.scored_from.filter(|_| stop == StopReason::MaxTokens).map(|_| running.log_prob);
        tracing::debug!(
            "job {} {:?}: {} prompt tokens, {} reused, {} evaluated, {} trimmed, {} generated ({} of {} drafted accepted), prompt {} ms, generation {} ms",
            running.id,
            stop,
            stats.prompt_tokens,
            stats.reused_tokens,
            stats.evaluated_tokens,
            stats.trimmed_tokens,
            stats.generated_tokens,
            stats.accepted_tokens,
            stats.drafted_tokens,
            stats.prompt_ms,
            stats.generation_ms
        );
        Step::Done(Ok(Output { text, generated, stop, stats, log_prob }))
    }

    /// Decodes the next batch of tokens the slot's cache lacks, reusing the longest common prefix.
    fn decode_next(&mut self, running: &mut Running) -> Result<(), EngineError> {
        let step = match running.job.priority {
            Priority::Interactive => BATCH,
            other => self.background_batch(other),
        };
        let slot = &mut self.slots[running.slot];
        let common = slot.cached.iter().zip(&running.tokens).take_while(|(a, b)| a == b).count();
        // At least the last token is decoded again, to have its logits; a scored text whole, from
        // the token before it (its later steps keep what the earlier ones decoded).
        let mut keep = common.min(running.tokens.len() - 1);
        if let Some(from) = running.scored_from.filter(|_| running.first_step) {
            keep = keep.min(from - 1);
        }
        if running.first_step {
            running.first_step = false;
            running.stats.reused_tokens = keep.min(running.prompt_len);
        }
        if keep < slot.cached.len() {
            let removed = self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), Some(keep as u32), None);
            if !matches!(removed, Ok(true)) {
                // A partial removal failed: start this slot afresh.
                let _ = self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
                slot.cached.clear();
                return Ok(());
            }
            slot.cached.truncate(keep);
        }
        let start = slot.cached.len();
        let mut end = (start + step).min(running.tokens.len());
        // A scored text is decoded in batches of its own, from the token before it: the same
        // batches whether the text before it was in the cache or not, so that two texts after
        // the same prompt are scored alike (batched kernels round differently by batch).
        let scored = running.scored_from.map(|from| from - 1);
        if let Some(first) = scored {
            end = if start < first { end.min(first) } else { end.min(start + SCORE_BATCH) };
        }
        let scored = scored.map(|first| first.max(start)).filter(|&first| first < end);
        // While generating greedily, tokens guessed from the context follow the new token in
        // the same batch; their logits check them (see `step`).
        running.draft.clear();
        if end == running.tokens.len()
            && running.tokens.len() > running.prompt_len
            && running.job.sampling.temperature <= 0.0
        {
            let generated = running.tokens.len() - running.prompt_len;
            let limit = self
                .draft_tokens
                .min((running.job.max_tokens as usize).saturating_sub(generated + 1))
                .min(self.slot_size.saturating_sub(end))
                .min(BATCH - (end - start));
            running.draft = lookup::draft(&running.tokens, limit);
        }
        self.batch.clear();
        let all = running.tokens[start..end].iter().chain(&running.draft);
        for (pos, &token) in all.enumerate().map(|(i, t)| (start + i, t)) {
            let logits = pos + 1 >= running.tokens.len() || scored.is_some_and(|first| pos >= first);
            self.batch
                .add(token, pos as i32, &[slot.seq], logits)
                .map_err(|err| EngineError::Failed(err.to_string()))?;
        }
        self.logits = None;
        if let Err(err) = self.ctx.decode(&mut self.batch) {
            // The cache may hold part of the batch now; forget this slot rather than guess.
            let _ = self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            slot.cached.clear();
            running.draft.clear();
            return Err(EngineError::Failed(format!("llama.cpp decode failed: {err}")));
        }
        if let Some(first) = scored {
            for pos in first..end.min(running.tokens.len() - 1) {
                let next = running.tokens[pos + 1].0 as usize;
                running.log_prob += log_softmax_at(self.ctx.get_logits_ith((pos - start) as i32), next);
            }
        }
        // The cache holds the drafted tokens too; the next decode drops those that were wrong.
        slot.cached.extend_from_slice(&running.tokens[start..end]);
        slot.cached.extend_from_slice(&running.draft);
        running.stats.evaluated_tokens += end.min(running.prompt_len).saturating_sub(start.min(running.prompt_len));
        running.stats.drafted_tokens += running.draft.len();
        if end == running.tokens.len() {
            self.logits = Some((running.id, (end - start - 1) as i32));
        }
        Ok(())
    }
}

impl Session<'_> {
    /// The token the job's requirements decide, if they do (see `constrain`).
    fn constrained(&self, running: &mut Running, index: i32) -> Option<LlamaToken> {
        let vocab = self.model.vocab();
        let eog = |t: usize| vocab.is_eog(LlamaToken(t as i32));
        let vocabulary = constrain::Vocabulary { pieces: &self.pieces, eog: &eog };
        let blank_so_far = running.generation.text().bytes().all(|b| b.is_ascii_whitespace());
        let logits = self.ctx.get_logits_ith(index);
        constrain::next_token(&vocabulary, logits, &running.rules, &mut running.progress, blank_so_far)
            .map(|t| LlamaToken(t as i32))
    }
}

impl Session<'_> {
    /// The next token of a job with a grammar. The model's own choice usually fits: that one
    /// token is checked against the grammar, and only when it does not fit is the whole
    /// vocabulary filtered and the most likely token that fits taken (as llama.cpp's common
    /// sampler does; filtering every step cost a third of the generation speed or more). The
    /// token is accepted into the grammar exactly once; when the grammar is complete only the
    /// end of text fits, so generation never runs past it.
    fn sample_grammar(&mut self, running: &mut Running, index: i32) -> LlamaToken {
        let chosen = running.sampler.sample(&self.ctx, index);
        let Some(grammar) = running.grammar.as_mut() else { return chosen };
        let logits = self.ctx.get_logits_ith(index);
        let logit = logits.get(chosen.0 as usize).copied().unwrap_or(f32::NEG_INFINITY);
        let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(chosen, logit, 0.0)], false);
        single.apply_sampler(grammar);
        if single.data.first().is_some_and(|d| d.logit().is_finite()) {
            grammar.accept(chosen);
            return chosen;
        }
        let all = logits.iter().enumerate().map(|(id, &logit)| LlamaTokenData::new(LlamaToken(id as i32), logit, 0.0));
        let mut all = LlamaTokenDataArray::from_iter(all, false);
        all.apply_sampler(grammar);
        let best = all.data.iter().filter(|d| d.logit().is_finite()).max_by(|a, b| a.logit().total_cmp(&b.logit()));
        match best.map(LlamaTokenData::id) {
            Some(token) => {
                grammar.accept(token);
                token
            }
            // Nothing fits (it cannot happen with a complete grammar): end the text.
            None => self.model.vocab().eos(),
        }
    }
}

/// Drafted tokens per generated token: [`DRAFT_TOKENS`], or `MISTRAL_LSP_DRAFT_TOKENS` for
/// measurements.
fn draft_tokens() -> usize {
    std::env::var("MISTRAL_LSP_DRAFT_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(DRAFT_TOKENS)
}

/// A context with `sequences` slots of `size` tokens each.
fn new_context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    size: u32,
    threads: u32,
    sequences: usize,
) -> Result<LlamaContext<'m>, String> {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(size.saturating_mul(sequences as u32)))
        .with_n_batch(BATCH as u32)
        .with_n_ubatch(BATCH as u32)
        .with_n_seq_max(sequences as u32)
        .with_kv_unified(false)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32)
        .with_no_perf(false);
    model.new_context(backend, params).map_err(|_| {
        format!("cannot allocate a context of {size} tokens for this model (not enough memory?); lower `contextSize`")
    })
}

/// The natural log of the probability of `token` under `logits` (a log-softmax at one index).
fn log_softmax_at(logits: &[f32], token: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits.get(token).map_or(f64::NEG_INFINITY, |&l| l as f64 - max - sum.ln())
}

fn trim_front(mut tokens: Vec<LlamaToken>, limit: usize, keep: usize) -> (Vec<LlamaToken>, usize) {
    let excess = tokens.len().saturating_sub(limit);
    if excess > 0 {
        tokens.drain(keep..keep + excess);
    }
    (tokens, excess)
}

/// The job's sampler: greedy or its sampling chain.
fn sampler(job: &Job) -> LlamaSampler {
    let s = job.sampling;
    if s.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    LlamaSampler::chain_simple([
        LlamaSampler::top_k(s.top_k.max(1)),
        LlamaSampler::top_p(s.top_p.clamp(0.01, 1.0), 1),
        LlamaSampler::temp(s.temperature),
        LlamaSampler::dist(s.seed),
    ])
}

/// The job's grammar as a sampler, if it has one.
fn grammar(model: &LlamaModel, job: &Job) -> Result<Option<LlamaSampler>, EngineError> {
    let Some(grammar) = &job.grammar else { return Ok(None) };
    LlamaSampler::grammar(model, grammar, "root")
        .map(Some)
        .map_err(|err| EngineError::Failed(format!("the job's grammar does not parse: {err}")))
}

impl Backend for Session<'_> {
    type Running = Running;

    fn start(&mut self, job: Job, cancel: CancelToken) -> Result<Running, EngineError> {
        let (mut tokens, mut trimmed) = self.prompt_tokens(&job)?;
        if tokens.is_empty() {
            return Err(EngineError::Failed("the prompt is empty".into()));
        }
        let scored_from = match &job.score {
            Some(text) => {
                let scored = self.model.vocab().tokenize(text.as_bytes(), false, false);
                if scored.len() >= self.slot_size / 2 {
                    return Err(EngineError::Unsupported("the text to score is longer than half the context".into()));
                }
                // Read as a document from its start, as the model was trained to.
                let bos = special_token(self.model, Special::Bos).filter(|_| self.model.vocab().should_add_bos());
                if let Some(bos) = bos.filter(|&bos| tokens.first() != Some(&bos)) {
                    tokens.insert(0, bos);
                }
                let (kept, more) = trim_front(tokens, self.slot_size - scored.len() - 1, usize::from(bos.is_some()));
                (tokens, trimmed) = (kept, trimmed + more);
                let from = tokens.len();
                tokens.extend(scored);
                Some(from)
            }
            None => None,
        };
        if tracing::enabled!(tracing::Level::TRACE) {
            let vocab = self.model.vocab();
            let shown: Vec<u8> = tokens.iter().flat_map(|&t| vocab.token_to_piece(t, true, None)).collect();
            tracing::trace!("prompt: {:?}", String::from_utf8_lossy(&shown));
        }
        self.next_id += 1;
        let job_required = job.required_prefix.as_bytes().to_vec();
        let rules = constrain::Rules { avoid: job.avoid.clone(), needs_content: job.needs_content };
        let slot = if job.priority == Priority::Background { 1 } else { 0 };
        self.make_room(slot)?;
        let stats = Stats { prompt_tokens: tokens.len(), trimmed_tokens: trimmed, ..Stats::default() };
        if trimmed > 0 {
            tracing::info!("prompt trimmed by {trimmed} tokens to fit the context");
        }
        Ok(Running {
            id: self.next_id,
            sampler: sampler(&job),
            grammar: grammar(self.model, &job)?,
            job,
            cancel,
            slot,
            prompt_len: tokens.len(),
            tokens,
            generation: Generation::default(),
            stats,
            started: Instant::now(),
            prompt_done: None,
            first_step: true,
            rules,
            progress: constrain::Progress { required: job_required, content_next: false },
            draft: Vec::new(),
            scored_from,
            log_prob: 0.0,
        })
    }

    fn step(&mut self, running: &mut Running) -> Step {
        if running.cancel.is_cancelled() {
            return self.finish(running, StopReason::Cancelled);
        }
        let have_logits = matches!(self.logits, Some((id, _)) if id == running.id);
        if !have_logits {
            if running.prompt_done.is_none() && running.started.elapsed() > running.job.budget.prompt {
                return self.finish(running, StopReason::PromptBudget);
            }
            if let Err(err) = self.decode_next(running) {
                return Step::Done(Err(err));
            }
            if running.prompt_done.is_none() && matches!(self.logits, Some((id, _)) if id == running.id) {
                let now = Instant::now();
                running.stats.prompt_ms = now.duration_since(running.started).as_millis() as u64;
                running.prompt_done = Some(now);
            }
            return Step::Continue;
        }
        if running.job.max_tokens == 0 || running.scored_from.is_some() {
            // Only the prompt was wanted (pre-warming the cache, or a scored text).
            return self.finish(running, StopReason::MaxTokens);
        }
        if let Some(done) = running.prompt_done {
            if let Some(stop) = running.generation.over_time(&running.job, done, Instant::now()) {
                return self.finish(running, stop);
            }
        }
        let Some((_, index)) = self.logits.take() else { return Step::Continue };
        let token = if running.grammar.is_some() {
            self.sample_grammar(running, index)
        } else {
            match self.constrained(running, index) {
                Some(token) => token,
                None => running.sampler.sample(&self.ctx, index),
            }
        };
        // A drafted token that the model chose: the batch holds the logits after it too.
        if !running.draft.is_empty() && running.draft.remove(0) == token {
            running.stats.accepted_tokens += 1;
            self.logits = Some((running.id, index + 1));
        } else {
            running.draft.clear();
        }
        let vocab = self.model.vocab();
        if vocab.is_eog(token) {
            return self.finish(running, StopReason::EndOfText);
        }
        let piece = vocab.token_to_piece(token, false, None);
        running.tokens.push(token);
        if let Some(stop) = running.generation.push(&running.job, &piece, Instant::now()) {
            return self.finish(running, stop);
        }
        Step::Continue
    }
}
