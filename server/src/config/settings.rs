//! The settings table (the single source of truth for keys, defaults and editor schemas) and the
//! resolved [`Settings`] the rest of the server reads.

use super::{Kind, Options, SettingDef};
use crate::prompt::FimMode;

/// Mistral 7B Instruct v0.3, Q4_K_M (4,372,812,000 bytes), from bartowski's GGUF repository on
/// Hugging Face, pinned to the commit that added it and to the file's LFS sha256.
pub const DEFAULT_MODEL: &str = "hf:bartowski/Mistral-7B-Instruct-v0.3-GGUF@61fd4167fff3ab01ee1cfe0da183fa27a944db48/Mistral-7B-Instruct-v0.3-Q4_K_M.gguf#sha256=1270d22c0fbb3d092fb725d4d96c457b7b687a5f5a715abe1e818da303e562b6";

/// Every setting the server reads. Editors' schemas are generated from this table.
pub const SETTINGS: &[SettingDef] = &[
    SettingDef {
        key: "model",
        kind: Kind::String,
        default: "\"hf:bartowski/Mistral-7B-Instruct-v0.3-GGUF@61fd4167fff3ab01ee1cfe0da183fa27a944db48/Mistral-7B-Instruct-v0.3-Q4_K_M.gguf#sha256=1270d22c0fbb3d092fb725d4d96c457b7b687a5f5a715abe1e818da303e562b6\"",
        description: "The model: a path to a .gguf file, or hf:OWNER/REPO[@REVISION]/FILE.gguf[#sha256=HEX] to download it once into the cache. The default is Mistral 7B Instruct v0.3 Q4_K_M (4.4 GB).",
        env: Some("MISTRAL_LSP_MODEL"),
    },
    SettingDef {
        key: "threads",
        kind: Kind::Integer { min: 0, max: 512 },
        default: "0",
        description: "CPU threads for the model; 0 means one per physical core.",
        env: Some("MISTRAL_LSP_THREADS"),
    },
    SettingDef {
        key: "gpuLayers",
        kind: Kind::Integer { min: 0, max: 1000 },
        default: "0",
        description: "Model layers to offload to the GPU (needs a GPU build); 0 runs on the CPU.",
        env: Some("MISTRAL_LSP_GPU_LAYERS"),
    },
    SettingDef {
        key: "contextSize",
        kind: Kind::Integer { min: 256, max: 1_048_576 },
        default: "8192",
        description: "Context window of the model in tokens.",
        env: Some("MISTRAL_LSP_CONTEXT_SIZE"),
    },
    SettingDef {
        key: "download.cacheDir",
        kind: Kind::String,
        default: "\"\"",
        description: "Where hf: models are downloaded to; empty means ${XDG_CACHE_HOME:-~/.cache}/mistral-lsp/models.",
        env: Some("MISTRAL_LSP_CACHE_DIR"),
    },
    SettingDef {
        key: "download.endpoint",
        kind: Kind::String,
        default: "\"\"",
        description: "The Hugging Face hub (or a mirror) that hf: models come from; empty means $HF_ENDPOINT, else https://huggingface.co. The access token for gated repositories comes from the environment variable HF_TOKEN.",
        env: Some("MISTRAL_LSP_HF_ENDPOINT"),
    },
    SettingDef {
        key: "download.timeoutSecs",
        kind: Kind::Integer { min: 1, max: 3600 },
        default: "30",
        description: "Most seconds a download waits to connect or for the next bytes (not for the whole file).",
        env: Some("MISTRAL_LSP_DOWNLOAD_TIMEOUT_SECS"),
    },
    SettingDef {
        key: "remote.url",
        kind: Kind::String,
        default: "\"\"",
        description: "An inference server to use instead of a local model, such as http://gpu-box:8080 (llama-server, vLLM, Ollama or any OpenAI-compatible server). When set, no model is loaded here. The API key, if the server wants one, comes from the environment variable MISTRAL_LSP_API_KEY.",
        env: Some("MISTRAL_LSP_REMOTE_URL"),
    },
    SettingDef {
        key: "remote.api",
        kind: Kind::Enum(&["auto", "llama-server", "openai"]),
        default: "\"auto\"",
        description: "The remote server's API: llama-server's own (completions reuse the server's KV cache per document), openai (/v1/completions and /v1/chat/completions), or auto to ask the server.",
        env: Some("MISTRAL_LSP_REMOTE_API"),
    },
    SettingDef {
        key: "remote.model",
        kind: Kind::String,
        default: "\"\"",
        description: "The model name to ask an OpenAI-compatible server for; empty means the first model it lists.",
        env: Some("MISTRAL_LSP_REMOTE_MODEL"),
    },
    SettingDef {
        key: "remote.timeoutMs",
        kind: Kind::Integer { min: 100, max: 600_000 },
        default: "30000",
        description: "Most time to wait for a remote server: to connect, and between two pieces of an answer.",
        env: Some("MISTRAL_LSP_REMOTE_TIMEOUT_MS"),
    },
    SettingDef {
        key: "fim.mode",
        kind: Kind::Enum(&["auto", "native", "instruct", "prefix"]),
        default: "\"auto\"",
        description: "How to ask for a completion: native fill-in-the-middle tokens, an instruct prompt for chat models, plain prefix continuation, or auto to pick from the model.",
        env: Some("MISTRAL_LSP_FIM_MODE"),
    },
    SettingDef {
        key: "completion.enabled",
        kind: Kind::Bool,
        default: "true",
        description: "Offer inline completions.",
        env: None,
    },
    SettingDef {
        key: "completion.maxTokens",
        kind: Kind::Integer { min: 1, max: 2048 },
        default: "128",
        description: "Most tokens generated for one completion.",
        env: None,
    },
    SettingDef {
        key: "completion.precompute",
        kind: Kind::Bool,
        default: "false",
        description: "Experimental, off: after a suggestion is shown, work out the next line's suggestion in the background. The typing replay measured no gain (p50 0.40 s with it, 0.16 s without).",
        env: None,
    },
    SettingDef {
        key: "completion.adaptiveBudgets",
        kind: Kind::Bool,
        default: "true",
        description: "Fit the prompt and answer to the model's speed on this machine, measured when it loads and refined by every finished job: the context.*Tokens budgets shrink (never grow) so that a new prompt is read within about 12 s, and completion.maxTokens so that an answer takes at most about 4 s. Fast machines keep the settings as they are; off uses them as they are everywhere. The chosen budgets are logged. (Either way, context budget that other files leave unused shows more of the current file.)",
        env: Some("MISTRAL_LSP_ADAPTIVE_BUDGETS"),
    },
    SettingDef {
        key: "completion.prewarm",
        kind: Kind::Bool,
        default: "true",
        description: "While the user reads (after a file is opened, the cursor moves, a pause in typing, a save), read the prompt of the next completion at idle priority, so that the completion itself only reads what changed.",
        env: Some("MISTRAL_LSP_PREWARM"),
    },
    SettingDef {
        key: "completion.timeLimitScale",
        kind: Kind::Number { min: 0.1, max: 100.0 },
        default: "1",
        description: "Multiplies a completion's time limits (prompt 30 s, generation 10 s, 1.5 s after the first line, 4 s when invoked). Raise it where a slow or busy machine cuts blocks short.",
        env: Some("MISTRAL_LSP_TIME_LIMIT_SCALE"),
    },
    SettingDef {
        key: "completion.disabledLanguages",
        kind: Kind::StringList,
        default: "[]",
        description: "Language ids (for example \"markdown\") that get no completions.",
        env: None,
    },
    SettingDef {
        key: "context.prefixTokens",
        kind: Kind::Integer { min: 16, max: 32_768 },
        default: "1024",
        description: "Tokens of the current file above the cursor's line in a completion prompt.",
        env: None,
    },
    SettingDef {
        key: "context.suffixTokens",
        kind: Kind::Integer { min: 0, max: 16_384 },
        default: "256",
        description: "Tokens of the current file after the cursor in a completion prompt.",
        env: None,
    },
    SettingDef {
        key: "context.extraTokens",
        kind: Kind::Integer { min: 0, max: 16_384 },
        default: "512",
        description: "Tokens of context from other files (definitions of nearby names, recent edits) in a completion prompt.",
        env: None,
    },
    SettingDef {
        key: "sampling.temperature",
        kind: Kind::Number { min: 0.0, max: 2.0 },
        default: "0",
        description: "Sampling temperature for completions; 0 is greedy, which makes completions deterministic.",
        env: None,
    },
    SettingDef {
        key: "sampling.topK",
        kind: Kind::Integer { min: 1, max: 1000 },
        default: "40",
        description: "Top-k sampling, when the temperature is above 0.",
        env: None,
    },
    SettingDef {
        key: "sampling.topP",
        kind: Kind::Number { min: 0.0, max: 1.0 },
        default: "0.95",
        description: "Top-p (nucleus) sampling, when the temperature is above 0.",
        env: None,
    },
    SettingDef {
        key: "review.onSave",
        kind: Kind::Bool,
        default: "false",
        description: "Review a document when it is saved (after a second without another save; a newer save stops the older review) and show the findings as diagnostics.",
        env: None,
    },
    SettingDef {
        key: "log.level",
        kind: Kind::Enum(&["error", "warn", "info", "debug", "trace"]),
        default: "\"info\"",
        description: "How much the server logs (to stderr or the log file).",
        env: Some("MISTRAL_LSP_LOG"),
    },
];

/// Resolved settings: every value present and valid.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub model: String,
    pub threads: u32,
    pub gpu_layers: u32,
    pub context_size: u32,
    pub download: Download,
    pub remote: Remote,
    pub fim_mode: FimMode,
    pub completion_enabled: bool,
    pub max_tokens: u32,
    pub precompute: bool,
    pub adaptive_budgets: bool,
    pub prewarm: bool,
    pub review_on_save: bool,
    pub time_limit_scale: f64,
    pub disabled_languages: Vec<String>,
    pub prefix_tokens: u32,
    pub suffix_tokens: u32,
    pub extra_tokens: u32,
    pub sampling: Sampling,
    pub log_level: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::resolve(&Options::default())
    }
}

impl Settings {
    /// Fills every key from `options`, else from the table's default.
    pub fn resolve(options: &Options) -> Settings {
        let value = |key: &str| -> serde_json::Value {
            options.get(key).cloned().unwrap_or_else(|| {
                let def = super::find(key).unwrap_or_else(|| panic!("setting `{key}` is not in the table"));
                serde_json::from_str(def.default).unwrap_or_else(|_| panic!("default of `{key}` is not JSON"))
            })
        };
        let string = |key: &str| value(key).as_str().unwrap_or_default().to_owned();
        let integer = |key: &str| value(key).as_u64().unwrap_or_default() as u32;
        Settings {
            model: string("model"),
            threads: integer("threads"),
            gpu_layers: integer("gpuLayers"),
            context_size: integer("contextSize"),
            download: Download {
                cache_dir: string("download.cacheDir"),
                endpoint: string("download.endpoint"),
                timeout_secs: integer("download.timeoutSecs"),
            },
            remote: Remote {
                url: string("remote.url").trim().trim_end_matches('/').to_owned(),
                api: match string("remote.api").as_str() {
                    "llama-server" => RemoteApi::LlamaServer,
                    "openai" => RemoteApi::OpenAi,
                    _ => RemoteApi::Auto,
                },
                model: string("remote.model"),
                timeout_ms: integer("remote.timeoutMs"),
            },
            fim_mode: match string("fim.mode").as_str() {
                "native" => FimMode::Native,
                "instruct" => FimMode::Instruct,
                "prefix" => FimMode::Prefix,
                _ => FimMode::Auto,
            },
            completion_enabled: value("completion.enabled").as_bool().unwrap_or(true),
            max_tokens: integer("completion.maxTokens"),
            precompute: value("completion.precompute").as_bool().unwrap_or(false),
            adaptive_budgets: value("completion.adaptiveBudgets").as_bool().unwrap_or(true),
            prewarm: value("completion.prewarm").as_bool().unwrap_or(true),
            review_on_save: value("review.onSave").as_bool().unwrap_or(false),
            time_limit_scale: value("completion.timeLimitScale").as_f64().unwrap_or(1.0),
            disabled_languages: value("completion.disabledLanguages")
                .as_array()
                .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            prefix_tokens: integer("context.prefixTokens"),
            suffix_tokens: integer("context.suffixTokens"),
            extra_tokens: integer("context.extraTokens"),
            sampling: Sampling {
                temperature: value("sampling.temperature").as_f64().unwrap_or(0.0) as f32,
                top_k: value("sampling.topK").as_i64().unwrap_or(40) as i32,
                top_p: value("sampling.topP").as_f64().unwrap_or(0.95) as f32,
                ..Sampling::default()
            },
            log_level: string("log.level"),
        }
    }

    /// Whether completions are offered for this language id.
    pub fn completes(&self, language_id: &str) -> bool {
        self.completion_enabled && !self.disabled_languages.iter().any(|l| l == language_id)
    }
}

/// Where and how `hf:` models are downloaded (the `download.*` settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// Empty means the default cache folder.
    pub cache_dir: String,
    /// Empty means `$HF_ENDPOINT`, else the public hub.
    pub endpoint: String,
    pub timeout_secs: u32,
}

/// Where jobs go instead of a local model (the `remote.*` settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// The server's base URL without a trailing `/`; empty means a local model.
    pub url: String,
    pub api: RemoteApi,
    /// For OpenAI-compatible servers; empty means the first listed.
    pub model: String,
    pub timeout_ms: u32,
}

/// A remote server's API (`remote.api`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteApi {
    Auto,
    LlamaServer,
    OpenAi,
}

/// How to pick tokens. `temperature <= 0` is greedy (deterministic).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub seed: u32,
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling { temperature: 0.0, top_k: 40, top_p: 0.95, seed: 0x5eed }
    }
}
