//! The llama.cpp backend: loading a GGUF model, one persistent context, KV-cache reuse across
//! jobs, cancellation and time budgets between steps. The only file that touches llama.cpp.
//!
//! The context holds two sequences ("slots"), each with the full context size: slot 0 for
//! interactive work and cache pre-warming, slot 1 for background work. A background job that
//! yields to a completion therefore keeps its cache and resumes where it was.

#![allow(clippy::disallowed_types, reason = "this is the one file that touches llama.cpp")]

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::gguf::GgufContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::constrain;
use super::generation::Generation;
use super::worker::{self, Backend, Shared, Step};
use super::{
    CancelToken, ChatMessage, EngineConfig, EngineError, Job, ModelInfo, ModelSpec, Output, Priority, Prompt, Segment,
    Special, Stats, StopReason,
};
use crate::models;

/// Tokens decoded per batch: the granularity of cancellation and of yielding.
const BATCH: usize = 512;
/// Prompt tokens per step of background work: few, so that a completion that arrives (or the
/// cancellation of this work) waits for at most this many tokens.
const BACKGROUND_BATCH: usize = 64;
/// Slots: interactive (and pre-warming), background.
const SLOTS: usize = 2;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend, String> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|err| format!("cannot initialise llama.cpp: {err}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Resolves, loads and serves `spec` on this (the worker) thread until the engine is dropped.
pub(crate) fn run(spec: &ModelSpec, config: &EngineConfig, shared: &Shared) {
    let path = match resolve(spec, config, shared) {
        Ok(path) => path,
        Err(message) => return shared.failed(message),
    };
    let backend = match backend() {
        Ok(backend) => backend,
        Err(message) => return shared.failed(message),
    };
    shared.loading(format!("loading {}", path.display()), None);
    let (model, notice) = match load_model(backend, &path, config) {
        Ok(loaded) => loaded,
        Err(message) => return shared.failed(message),
    };
    let model = Arc::new(model);
    let mut session = match Session::new(backend, &model, config) {
        Ok(session) => session,
        Err(message) => return shared.failed(message),
    };
    *shared.tokenizer.write() = Some(Tokenizer { model: model.clone() });
    shared.ready(session.info.clone(), notice);
    worker::serve(&mut session, shared);
}

fn resolve(spec: &ModelSpec, config: &EngineConfig, shared: &Shared) -> Result<PathBuf, String> {
    let mut last_percent = None;
    let mut on_progress = |progress: models::Progress| {
        let percent = progress.total.filter(|&t| t > 0).map(|t| (progress.downloaded * 100 / t) as u32);
        if percent != last_percent {
            last_percent = percent;
            let mib = progress.downloaded / (1024 * 1024);
            shared.loading(format!("downloading {spec}: {mib} MiB"), percent);
        }
        !shared.queue.is_closed()
    };
    models::resolve(spec, &config.fetch, &mut on_progress).map_err(|err| err.to_string())
}

/// Checks the file before llama.cpp sees it, so that each failure gets a message of its own.
fn check_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    if !path.is_file() {
        return Err(format!("model file not found: {shown}"));
    }
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut magic));
    if let Err(err) = read {
        return Err(format!("cannot read the model file {shown}: {err}"));
    }
    if &magic != b"GGUF" {
        return Err(format!("{shown} is not a GGUF model file (it does not start with the GGUF magic bytes)"));
    }
    let Some(gguf) = GgufContext::from_file(path) else {
        return Err(format!("{shown} is truncated or corrupt: its GGUF header cannot be read"));
    };
    let metadata = Metadata(&gguf);
    let checked = metadata.string("general.architecture").and_then(|architecture| {
        let architecture = architecture.ok_or("it has no `general.architecture`")?;
        check_hparams(&metadata, architecture)?;
        Ok(architecture.to_owned())
    });
    checked.map_err(|why| format!("{shown} is malformed: {why}"))
}

/// The most layers llama.cpp accepts (`LLAMA_MAX_LAYERS`).
const MAX_LAYERS: u32 = 512;
/// The most experts llama.cpp accepts (`LLAMA_MAX_EXPERTS`).
const MAX_EXPERTS: u32 = 1024;
/// The RoPE scaling types llama.cpp knows (`LLAMA_ROPE_SCALING_TYPES`).
const ROPE_SCALING_TYPES: [&str; 4] = ["none", "linear", "yarn", "longrope"];

/// Checks the hyperparameters that llama.cpp asserts on while loading (`load_hparams`): an
/// assertion there aborts the whole process instead of failing the load. Values llama.cpp
/// rejects with an error of its own (a missing key, a wrong type) are left to it, except where
/// reading them here would itself assert. Per-layer arrays are not read here; the probe in a
/// child process catches what they break.
fn check_hparams(metadata: &Metadata, architecture: &str) -> Result<(), String> {
    let key = |name: &str| format!("{architecture}.{name}");
    let block_count = key("block_count");
    let Some(layers) = metadata.u32(&block_count)? else {
        return Err(format!(
            "it has no `{block_count}`: either this llama.cpp does not support the architecture `{architecture}` \
             or the file's metadata is incomplete"
        ));
    };
    if !(1..=MAX_LAYERS).contains(&layers) {
        return Err(format!("`{block_count}` is {layers}; llama.cpp needs 1 to {MAX_LAYERS} layers"));
    }
    let nextn = key("nextn_predict_layers");
    if let Some(n) = metadata.u32(&nextn)?.filter(|&n| n > layers) {
        return Err(format!("`{nextn}` is {n}, more than the {layers} layers of `{block_count}`"));
    }
    let (expert_count, used_count) = (key("expert_count"), key("expert_used_count"));
    let (group_count, group_used_count) = (key("expert_group_count"), key("expert_group_used_count"));
    let mut experts = metadata.u32(&expert_count)?.unwrap_or(0);
    // An array gives a count per layer; only the probe reads those.
    let mut used = if metadata.is_array(&used_count) { None } else { metadata.u32(&used_count)? };
    // These architectures read one expert as none (llama.cpp's own special case).
    if matches!(architecture, "hunyuan-vl" | "hunyuan-dense") && experts <= 1 {
        (experts, used) = (0, Some(0));
    }
    let groups = metadata.u32(&group_count)?.unwrap_or(0);
    if experts > MAX_EXPERTS {
        return Err(format!("`{expert_count}` is {experts}; llama.cpp supports at most {MAX_EXPERTS} experts"));
    }
    if experts == 0 {
        if let Some(used) = used.filter(|&u| u > 0) {
            return Err(format!("`{used_count}` is {used}, but the model has no experts (`{expert_count}`)"));
        }
        if groups > 0 {
            return Err(format!("`{group_count}` is {groups}, but the model has no experts (`{expert_count}`)"));
        }
        return check_rope_scaling(metadata, &key("rope.scaling.type"));
    }
    match used {
        Some(0) => return Err(format!("`{used_count}` is 0, but `{expert_count}` is {experts}")),
        Some(used) if used > experts => {
            return Err(format!("`{used_count}` is {used}, more than the {experts} experts of `{expert_count}`"))
        }
        None if !metadata.is_array(&used_count) => {
            return Err(format!("it has `{expert_count}` ({experts}) but no `{used_count}`"))
        }
        _ => {}
    }
    if groups >= experts {
        return Err(format!("`{group_count}` is {groups}; it must be less than `{expert_count}` ({experts})"));
    }
    if groups > 1 {
        let group_used = metadata.u32(&group_used_count)?.unwrap_or(0);
        if experts % groups != 0 {
            return Err(format!("`{expert_count}` ({experts}) is not a multiple of `{group_count}` ({groups})"));
        }
        if group_used == 0 || group_used >= groups {
            return Err(format!(
                "`{group_used_count}` is {group_used}; it must be between 1 and `{group_count}` ({groups}) less one"
            ));
        }
    }
    check_rope_scaling(metadata, &key("rope.scaling.type"))
}

fn check_rope_scaling(metadata: &Metadata, key: &str) -> Result<(), String> {
    match metadata.string(key)? {
        Some(kind) if !ROPE_SCALING_TYPES.contains(&kind) => {
            Err(format!("`{key}` is `{kind}`; llama.cpp knows {}", ROPE_SCALING_TYPES.join(", ")))
        }
        _ => Ok(()),
    }
}

/// GGUF metadata read without ever tripping llama.cpp's own type assertions: each getter
/// checks the stored type first.
struct Metadata<'g>(&'g GgufContext);

/// GGUF value types (the GGUF specification's numbering).
const GGUF_UINT32: u32 = 4;
const GGUF_STRING: u32 = 8;
const GGUF_ARRAY: u32 = 9;

impl Metadata<'_> {
    fn find(&self, key: &str, kind: u32, kind_name: &str) -> Result<Option<i64>, String> {
        let index = self.0.find_key(key);
        if index < 0 {
            return Ok(None);
        }
        if self.0.kv_type(index) != kind {
            return Err(format!("`{key}` is not {kind_name}"));
        }
        Ok(Some(index))
    }

    fn u32(&self, key: &str) -> Result<Option<u32>, String> {
        Ok(self.find(key, GGUF_UINT32, "an unsigned 32-bit integer")?.map(|index| self.0.val_u32(index)))
    }

    fn string(&self, key: &str) -> Result<Option<&str>, String> {
        Ok(self.find(key, GGUF_STRING, "a string")?.and_then(|index| self.0.val_str(index)))
    }

    fn is_array(&self, key: &str) -> bool {
        let index = self.0.find_key(key);
        index >= 0 && self.0.kv_type(index) == GGUF_ARRAY
    }
}

fn load_model(
    backend: &LlamaBackend,
    path: &Path,
    config: &EngineConfig,
) -> Result<(LlamaModel, Option<String>), String> {
    let architecture = check_file(path)?;
    let mut notice = None;
    let mut gpu_layers = config.gpu_layers;
    if gpu_layers > 0 && !backend.supports_gpu_offload() {
        notice = Some(format!(
            "gpuLayers is {gpu_layers}, but this build of mistral-lsp has no GPU backend or no GPU was found \
             (build with --features cuda, vulkan or metal); running on the CPU"
        ));
        gpu_layers = 0;
    }
    probe(path)?;
    let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
    let started = Instant::now();
    let model = LlamaModel::load_from_file(backend, path, &params)
        .map_err(|err| load_error(path, &architecture, &format!("{err}; the log has llama.cpp's own message")))?;
    tracing::info!("loaded {} in {} ms", path.display(), started.elapsed().as_millis());
    Ok((model, notice))
}

fn load_error(path: &Path, architecture: &str, detail: &str) -> String {
    format!(
        "llama.cpp could not load {} (architecture `{architecture}`): the file may be truncated or corrupt, \
         or this llama.cpp does not support that architecture ({detail})",
        path.display()
    )
}

/// The program that reads model files in a child process (`PROGRAM probe-model PATH`) before
/// they are loaded here, so that an abort inside llama.cpp ends the child, not the server.
/// `main` sets it to its own executable; without it (library users, tests) files are loaded
/// after the metadata checks alone.
static PROBE_PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Verdicts of earlier probes, by path, size and modification time: an engine restarted on the
/// same file does not probe it again.
static VERDICTS: LazyLock<Mutex<HashMap<FileVersion, Result<(), String>>>> = LazyLock::new(Mutex::default);

/// A file as it is now: its path, size and modification time.
type FileVersion = (PathBuf, u64, SystemTime);

/// The longest a probe may take; it reads metadata and the vocabulary, never the weights.
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// Makes the engine probe every model file with `program probe-model PATH` before loading it.
pub fn set_probe_program(program: PathBuf) {
    let _ = PROBE_PROGRAM.set(program);
}

/// What `probe-model` does in the child: reads a model file as loading does (hyperparameters,
/// vocabulary, tensor shapes) without allocating or reading its weights.
pub fn probe_model(path: &Path) -> Result<(), String> {
    let params = LlamaModelParams::default().with_no_alloc(true);
    LlamaModel::load_from_file(backend()?, path, &params).map(drop).map_err(|err| err.to_string())
}

/// Runs `program probe-model PATH` and reads its verdict: a child killed by a signal means
/// llama.cpp aborted on the file.
pub fn probe_in_child(program: &Path, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let mut child = std::process::Command::new(program)
        .arg("probe-model")
        .arg(path)
        .env("GGML_NO_BACKTRACE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run {} to check {shown}: {err}", program.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("llama.cpp took over {} s to read {shown}", PROBE_TIMEOUT.as_secs()));
            }
            Err(err) => return Err(format!("cannot wait for the check of {shown}: {err}")),
        }
    };
    // The child writes a few lines at most (its error, llama.cpp's errors), well within a pipe.
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut log);
    }
    tracing::debug!("probe of {shown}: {status}; {}", log.trim());
    if status.success() {
        return Ok(());
    }
    if killed_by_signal(&status) {
        let assertion = log.lines().find(|line| line.contains("GGML_ASSERT") || line.contains("GGML_ABORT"));
        let because = assertion.map(|line| format!(" ({})", line.trim())).unwrap_or_default();
        return Err(format!(
            "llama.cpp aborted while reading {shown}: the file is malformed{because}; it was read in a \
             separate process, so the server keeps running without a model"
        ));
    }
    let architecture = GgufContext::from_file(path)
        .and_then(|gguf| Metadata(&gguf).string("general.architecture").ok().flatten().map(str::to_owned))
        .unwrap_or_default();
    // The child logs llama.cpp's reason as "... error loading model: REASON module=...".
    let reason = log
        .lines()
        .find_map(|line| line.split_once("error loading model: "))
        .map(|(_, reason)| reason.split(" module=").next().unwrap_or(reason));
    let said = reason.or_else(|| log.lines().rev().find(|line| !line.trim().is_empty())).unwrap_or("no message");
    Err(load_error(path, &architecture, &format!("llama.cpp said: {}", said.trim())))
}

#[cfg(unix)]
fn killed_by_signal(status: &std::process::ExitStatus) -> bool {
    std::os::unix::process::ExitStatusExt::signal(status).is_some()
}

#[cfg(not(unix))]
fn killed_by_signal(status: &std::process::ExitStatus) -> bool {
    // abort() ends a Windows process with exit code 3.
    status.code() == Some(3)
}

/// Probes `path` in a child process, once per version of the file, when a probe program is set.
fn probe(path: &Path) -> Result<(), String> {
    let Some(program) = PROBE_PROGRAM.get() else { return Ok(()) };
    let metadata = std::fs::metadata(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let key = (path.to_owned(), metadata.len(), metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH));
    if let Some(verdict) = VERDICTS.lock().get(&key) {
        return verdict.clone();
    }
    let started = Instant::now();
    let verdict = probe_in_child(program, path);
    tracing::info!("checked {} in a child process in {} ms", path.display(), started.elapsed().as_millis());
    VERDICTS.lock().insert(key, verdict.clone());
    verdict
}

/// The model's vocabulary and metadata, usable from any thread (tokenizing only reads the model).
#[derive(Clone)]
pub struct Tokenizer {
    model: Arc<LlamaModel>,
}

impl Tokenizer {
    /// Number of tokens `text` takes, as plain text.
    pub fn count(&self, text: &str) -> usize {
        self.model.vocab().tokenize(text.as_bytes(), false, false).len()
    }

    /// Token ids of `text`, as plain text.
    pub fn tokenize(&self, text: &str) -> Vec<i32> {
        self.model.vocab().tokenize(text.as_bytes(), false, false).into_iter().map(|t| t.0).collect()
    }

    /// The text of token ids.
    pub fn detokenize(&self, tokens: &[i32]) -> String {
        let vocab = self.model.vocab();
        let bytes: Vec<u8> = tokens.iter().flat_map(|&t| vocab.token_to_piece(LlamaToken(t), false, None)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The id of a special token, if the vocabulary has it.
    pub fn special(&self, special: Special) -> Option<i32> {
        special_token(&self.model, special).map(|t| t.0)
    }

    /// FIM prefix, suffix and middle, only if all three exist.
    pub fn fim_tokens(&self) -> Option<[i32; 3]> {
        let vocab = self.model.vocab();
        let ids = [vocab.fim_pre().0, vocab.fim_suf().0, vocab.fim_mid().0];
        ids.iter().all(|&id| id >= 0).then_some(ids)
    }

    /// End-of-generation tokens: EOS and EOT where present.
    pub fn end_tokens(&self) -> Vec<i32> {
        let vocab = self.model.vocab();
        [vocab.eos().0, vocab.eot().0].into_iter().filter(|&id| id >= 0).collect()
    }

    /// A GGUF metadata value, such as `general.architecture`.
    pub fn metadata(&self, key: &str) -> Option<String> {
        self.model.meta_val_str(key).ok()
    }

    /// Renders chat messages with the GGUF's chat template, ready for the answer.
    pub fn apply_chat(&self, messages: &[ChatMessage]) -> Result<String, String> {
        render_chat(&self.model, messages)
    }
}

fn special_token(model: &LlamaModel, special: Special) -> Option<LlamaToken> {
    let vocab = model.vocab();
    let token = match special {
        Special::Bos => vocab.bos(),
        Special::FimPrefix => vocab.fim_pre(),
        Special::FimSuffix => vocab.fim_suf(),
        Special::FimMiddle => vocab.fim_mid(),
        Special::FimRepo => vocab.fim_rep(),
        Special::FimSeparator => vocab.fim_sep(),
    };
    (token.0 >= 0).then_some(token)
}

fn render_chat(model: &LlamaModel, messages: &[ChatMessage]) -> Result<String, String> {
    let chat = messages
        .iter()
        .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("bad chat message: {err}"))?;
    let template = match model.chat_template(None) {
        Ok(template) => template,
        // Models without a template get the widely understood ChatML.
        Err(_) => LlamaChatTemplate::new("chatml").map_err(|err| err.to_string())?,
    };
    model.apply_chat_template(&template, &chat, true).map_err(|err| format!("cannot apply the chat template: {err}"))
}

struct Slot {
    seq: i32,
    /// Tokens whose state is in this slot's KV cache, positions 0.. in order.
    cached: Vec<LlamaToken>,
}

/// The persistent context and what its cache holds.
pub(crate) struct Session<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    slots: Vec<Slot>,
    /// Tokens each slot can hold.
    slot_size: usize,
    /// The job whose logits the last decode left, and their index in that batch.
    logits: Option<(u64, i32)>,
    next_id: u64,
    /// The text of every token, for constrained (healed) first tokens.
    pieces: Vec<Vec<u8>>,
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
    /// What has been generated, with the stop rules applied.
    generation: Generation,
    stats: Stats,
    started: Instant,
    prompt_done: Option<Instant>,
    first_step: bool,
    /// What the job's first tokens must be, and how far they are.
    rules: constrain::Rules,
    progress: constrain::Progress,
}

impl<'m> Session<'m> {
    fn new(backend: &LlamaBackend, model: &'m LlamaModel, config: &EngineConfig) -> Result<Session<'m>, String> {
        let threads = if config.threads == 0 { num_cpus::get_physical().max(1) as u32 } else { config.threads };
        let slot_size = config.context_size as usize;
        let total = NonZeroU32::new(config.context_size.saturating_mul(SLOTS as u32));
        let params = LlamaContextParams::default()
            .with_n_ctx(total)
            .with_n_batch(BATCH as u32)
            .with_n_ubatch(BATCH as u32)
            .with_n_seq_max(SLOTS as u32)
            .with_kv_unified(false)
            .with_n_threads(threads as i32)
            .with_n_threads_batch(threads as i32)
            .with_no_perf(false);
        let ctx = model.new_context(backend, params).map_err(|_| {
            format!(
                "cannot allocate a context of {} tokens for this model (not enough memory?); lower `contextSize`",
                config.context_size
            )
        })?;
        let info = describe(model, config.context_size, threads);
        let slots = (0..SLOTS).map(|seq| Slot { seq: seq as i32, cached: Vec::new() }).collect();
        let vocab = model.vocab();
        let pieces = (0..vocab.n_tokens()).map(|t| vocab.token_to_piece(LlamaToken(t), false, None)).collect();
        Ok(Session {
            model,
            ctx,
            batch: LlamaBatch::new(BATCH, 1),
            slots,
            slot_size,
            logits: None,
            next_id: 0,
            pieces,
            info,
        })
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
        tracing::debug!(
            "job {} {:?}: {} prompt tokens, {} reused, {} evaluated, {} trimmed, {} generated, prompt {} ms, generation {} ms",
            running.id,
            stop,
            stats.prompt_tokens,
            stats.reused_tokens,
            stats.evaluated_tokens,
            stats.trimmed_tokens,
            stats.generated_tokens,
            stats.prompt_ms,
            stats.generation_ms
        );
        Step::Done(Ok(Output { text, generated, stop, stats }))
    }

    /// Decodes the next batch of tokens the slot's cache lacks, reusing the longest common prefix.
    fn decode_next(&mut self, running: &mut Running) -> Result<(), EngineError> {
        let slot = &mut self.slots[running.slot];
        let common = slot.cached.iter().zip(&running.tokens).take_while(|(a, b)| a == b).count();
        // At least the last token is decoded again, to have its logits.
        let keep = common.min(running.tokens.len() - 1);
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
        let step = if running.job.priority == Priority::Interactive { BATCH } else { BACKGROUND_BATCH };
        let end = (start + step).min(running.tokens.len());
        self.batch.clear();
        for (pos, &token) in running.tokens[start..end].iter().enumerate().map(|(i, t)| (start + i, t)) {
            let last = pos + 1 == running.tokens.len();
            self.batch.add(token, pos as i32, &[slot.seq], last).map_err(|err| EngineError::Failed(err.to_string()))?;
        }
        self.logits = None;
        if let Err(err) = self.ctx.decode(&mut self.batch) {
            // The cache may hold part of the batch now; forget this slot rather than guess.
            let _ = self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            slot.cached.clear();
            return Err(EngineError::Failed(format!("llama.cpp decode failed: {err}")));
        }
        slot.cached.extend_from_slice(&running.tokens[start..end]);
        running.stats.evaluated_tokens += end.min(running.prompt_len).saturating_sub(start.min(running.prompt_len));
        if end == running.tokens.len() {
            self.logits = Some((running.id, self.batch.n_tokens() - 1));
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

fn trim_front(mut tokens: Vec<LlamaToken>, limit: usize, keep: usize) -> (Vec<LlamaToken>, usize) {
    let excess = tokens.len().saturating_sub(limit);
    if excess > 0 {
        tokens.drain(keep..keep + excess);
    }
    (tokens, excess)
}

fn describe(model: &LlamaModel, context_size: u32, threads: u32) -> ModelInfo {
    let meta = |key: &str| model.meta_val_str(key).unwrap_or_default();
    let vocab = model.vocab();
    let has = |t: LlamaToken| t.0 >= 0;
    let architecture = meta("general.architecture");
    let name = meta("general.name");
    let size_mib = model.size() / (1024 * 1024);
    let params_m = model.n_params() / 1_000_000;
    ModelInfo {
        description: format!(
            "{} ({architecture}, {params_m}M parameters, {size_mib} MiB)",
            if name.is_empty() { "model" } else { &name }
        ),
        architecture,
        name,
        has_fim_tokens: has(vocab.fim_pre()) && has(vocab.fim_suf()) && has(vocab.fim_mid()),
        has_repo_tokens: has(vocab.fim_rep()) && has(vocab.fim_sep()),
        has_chat_template: model.chat_template(None).is_ok(),
        context_size,
        threads,
    }
}

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

impl Backend for Session<'_> {
    type Running = Running;

    fn start(&mut self, job: Job, cancel: CancelToken) -> Result<Running, EngineError> {
        let (tokens, trimmed) = self.prompt_tokens(&job)?;
        if tokens.is_empty() {
            return Err(EngineError::Failed("the prompt is empty".into()));
        }
        if tracing::enabled!(tracing::Level::TRACE) {
            let vocab = self.model.vocab();
            let shown: Vec<u8> = tokens.iter().flat_map(|&t| vocab.token_to_piece(t, true, None)).collect();
            tracing::trace!("prompt: {:?}", String::from_utf8_lossy(&shown));
        }
        self.next_id += 1;
        let job_required = job.required_prefix.as_bytes().to_vec();
        let rules = constrain::Rules { avoid: job.avoid.clone(), needs_content: job.needs_content };
        let slot = if job.priority == Priority::Background { 1 } else { 0 };
        let stats = Stats { prompt_tokens: tokens.len(), trimmed_tokens: trimmed, ..Stats::default() };
        if trimmed > 0 {
            tracing::info!("prompt trimmed by {trimmed} tokens to fit the context");
        }
        Ok(Running {
            id: self.next_id,
            sampler: sampler(&job),
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
        if let Some(done) = running.prompt_done {
            if let Some(stop) = running.generation.over_time(&running.job, done, Instant::now()) {
                return self.finish(running, stop);
            }
        }
        let Some((_, index)) = self.logits.take() else { return Step::Continue };
        let token = match self.constrained(running, index) {
            Some(token) => token,
            None => running.sampler.sample(&self.ctx, index),
        };
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
