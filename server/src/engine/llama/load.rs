//! Loading a model file: checks with messages of their own before llama.cpp sees it, the probe
//! in a child process, and the load itself.

#![allow(clippy::disallowed_types, reason = "the llama.cpp backend touches llama.cpp")]

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use llama_cpp_2::gguf::GgufContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

use super::super::EngineConfig;
use super::backend;

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

pub(super) fn load_model(
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
    // On the CPU llama.cpp repacks most weights into its own layout for faster kernels. A mapped
    // file stays resident beside the repacked copy, which doubles resident memory (measured with
    // the 7B shape: 7.6 GB mapped against 4.35 GB read, same speed), so the file is read instead.
    // With layers on a GPU the mapping is only a staging area, as llama.cpp intends.
    let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers).with_use_mmap(gpu_layers > 0);
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
