//! Every way loading can fail gives a clear message and a failed state, never a crash.

use std::io::Write;

use super::*;
use crate::gguf::{llama_with_layers, per_layer_experts, tiny_gguf, Meta};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mistral-lsp-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn failure(path: &std::path::Path, settings: &Settings) -> String {
    let (engine, state) = start(path, settings).await;
    let State::Failed { message } = state else { panic!("expected a failure, got {state:?}") };
    let err = engine.generate(infill("a", "b", 1), CancelToken::new()).await.unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)));
    message
}

#[test]
fn missing_not_gguf_truncated_and_unknown_architecture() {
    let _turn = turn();
    runtime().block_on(async {
        let settings = settings(serde_json::Value::Null);
        let message = failure(&scratch("does-not-exist.gguf"), &settings).await;
        assert!(message.contains("does not exist"), "{message}");

        let text = scratch("notes.gguf");
        std::fs::write(&text, "these are not weights\n").unwrap();
        let message = failure(&text, &settings).await;
        assert!(message.contains("not a GGUF"), "{message}");

        let real = std::fs::read(model_path(SMOLLM)).unwrap();
        let truncated = scratch("truncated.gguf");
        std::fs::File::create(&truncated).unwrap().write_all(&real[..real.len() / 3]).unwrap();
        let message = failure(&truncated, &settings).await;
        assert!(message.contains("truncated or corrupt"), "{message}");

        // Same file, architecture renamed to one llama.cpp does not know.
        let mut renamed = real.clone();
        let key = b"general.architecture";
        let at = renamed.windows(key.len()).position(|w| w == key).unwrap();
        let value = at + key.len() + 4 + 8; // type (u32), then string length (u64)
        assert_eq!(&renamed[value..value + 5], b"llama");
        renamed[value..value + 5].copy_from_slice(b"zorbo");
        let alien = scratch("alien.gguf");
        std::fs::write(&alien, renamed).unwrap();
        let message = failure(&alien, &settings).await;
        assert!(message.contains("`zorbo`") && message.contains("does not support"), "{message}");
    });
}

#[test]
fn a_context_too_large_for_memory_is_an_error() {
    let _turn = turn();
    runtime().block_on(async {
        // About 94 GB of KV cache for SmolLM2 (one slot; the background slot comes later): more
        // than this machine (or any CI runner) has. Beyond the setting's range, so set directly.
        let config =
            EngineConfig { context_size: 4_194_304, ..EngineConfig::from_settings(&settings(serde_json::Value::Null)) };
        let engine = Engine::start(ModelSpec::Path(model_path(SMOLLM)), config);
        let state = tokio::time::timeout(Duration::from_secs(120), engine.ready()).await.expect("load timed out");
        let State::Failed { message } = state else { panic!("expected a failure, got {state:?}") };
        assert!(message.contains("cannot allocate a context of 4194304 tokens"), "{message}");
    });
}

#[test]
fn gpu_layers_without_a_gpu_is_reported_and_the_cpu_is_used() {
    let _turn = turn();
    runtime().block_on(async {
        let (engine, state) = start(&model_path(SMOLLM), &settings(serde_json::json!({"gpuLayers": 99}))).await;
        let State::Ready { notice, .. } = state else { panic!("{state:?}") };
        let notice = notice.expect("a notice about the GPU");
        assert!(notice.contains("gpuLayers is 99") && notice.contains("CPU"), "{notice}");
        let messages = vec![ChatMessage { role: "user".into(), content: "Hi".into() }];
        assert!(engine
            .generate(
                Job::new(Priority::Interactive, Prompt::Chat { messages, answer_prefix: String::new() }, 4),
                CancelToken::new()
            )
            .await
            .is_ok());
    });
}

#[test]
fn hyperparameters_llama_cpp_asserts_on_are_an_error_not_an_abort() {
    let _turn = turn();
    runtime().block_on(async {
        let settings = settings(serde_json::Value::Null);
        let zero = llama_with_layers(0);
        assert_eq!(zero.len(), 176, "the file of the report");
        for (layers, bytes) in [(0, zero), (600, llama_with_layers(600))] {
            let path = scratch(&format!("layers-{layers}.gguf"));
            std::fs::write(&path, bytes).unwrap();
            // Loading this in llama.cpp fails an assertion, which aborts the process: this test
            // would not get to its next line.
            let message = failure(&path, &settings).await;
            assert!(message.contains(&format!("`llama.block_count` is {layers}")), "{message}");
        }
        let experts = tiny_gguf(&[
            ("general.architecture", Meta::Str("llama")),
            ("llama.block_count", Meta::U32(2)),
            ("llama.expert_count", Meta::U32(4)),
            ("llama.expert_used_count", Meta::U32(8)),
        ]);
        let path = scratch("experts.gguf");
        std::fs::write(&path, experts).unwrap();
        let message = failure(&path, &settings).await;
        assert!(message.contains("`llama.expert_used_count` is 8"), "{message}");
        let rope = tiny_gguf(&[
            ("general.architecture", Meta::Str("llama")),
            ("llama.block_count", Meta::U32(2)),
            ("llama.rope.scaling.type", Meta::Str("sideways")),
        ]);
        let path = scratch("rope.gguf");
        std::fs::write(&path, rope).unwrap();
        let message = failure(&path, &settings).await;
        assert!(message.contains("`llama.rope.scaling.type` is `sideways`"), "{message}");
    });
}

#[test]
fn the_probe_reads_a_file_in_a_child_process_and_reports_an_abort() {
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_mistral-lsp"));
    let aborts = scratch("per-layer-experts.gguf");
    std::fs::write(&aborts, per_layer_experts()).unwrap();
    let message = mistral_lsp::engine::probe_in_child(program, &aborts).unwrap_err();
    assert!(message.contains("llama.cpp aborted while reading") && message.contains("GGML_ASSERT"), "{message}");
    // A file llama.cpp rejects with an error of its own: its reason is passed on.
    let incomplete = scratch("one-layer.gguf");
    std::fs::write(&incomplete, llama_with_layers(1)).unwrap();
    let message = mistral_lsp::engine::probe_in_child(program, &incomplete).unwrap_err();
    assert!(message.contains("could not load") && message.contains("key not found"), "{message}");
    // A real model passes, without its weights being read.
    let _turn = turn();
    assert_eq!(mistral_lsp::engine::probe_in_child(program, &model_path(SMOLLM)), Ok(()));
}
