//! Table tests for reading and resolving options.

use serde_json::json;

use super::*;

fn read(value: serde_json::Value) -> (Settings, Vec<String>) {
    let mut problems = Vec::new();
    let options = Options::from_json(&value, "test", &mut problems);
    (Settings::resolve(&options), problems.iter().map(|p| p.message.clone()).collect())
}

#[test]
fn defaults_come_from_the_table() {
    let settings = Settings::default();
    assert_eq!(settings.model, DEFAULT_MODEL);
    assert_eq!(settings.context_size, 8192);
    assert_eq!(settings.fim_mode, FimMode::Auto);
    assert!(settings.completion_enabled);
}

#[test]
fn nested_dotted_and_sectioned_keys_all_work() {
    let (a, p) = read(json!({"fim": {"mode": "instruct"}, "contextSize": 4096}));
    let (b, q) = read(json!({"fim.mode": "instruct", "contextSize": 4096}));
    let (c, r) = read(json!({"mistral-lsp": {"fim": {"mode": "instruct"}, "contextSize": 4096}}));
    assert!(p.is_empty() && q.is_empty() && r.is_empty(), "{p:?} {q:?} {r:?}");
    assert_eq!(a, b);
    assert_eq!(b, c);
    assert_eq!(a.fim_mode, FimMode::Instruct);
}

#[test]
fn unknown_keys_and_bad_values_fall_back_with_a_problem() {
    let (settings, problems) = read(json!({"bogus": 1, "threads": -3, "fim": {"mode": "magic"}}));
    assert_eq!(settings, Settings::default());
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("unknown setting `bogus`"), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("`fim.mode` must be one of auto, native, instruct, prefix")));
}

#[test]
fn a_bad_model_is_kept_as_no_model_not_replaced_by_the_default_download() {
    for bad in [json!(5), json!(true), json!(["a.gguf"]), json!({"path": "a.gguf"})] {
        let (settings, problems) = read(json!({ "model": bad }));
        assert_eq!(settings.model, "", "{bad}");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`model` must be a string") && !problems[0].contains("default"), "{problems:?}");
    }
    // An empty model stays empty, and a later source's good model still wins over a bad one.
    assert_eq!(read(json!({"model": ""})).0.model, "");
    let mut problems = Vec::new();
    let mut options = Options::from_json(&json!({"model": 5}), "initializationOptions", &mut problems);
    options.merge(&Options::from_json(&json!({"model": "/m.gguf"}), "didChangeConfiguration", &mut problems));
    assert_eq!(Settings::resolve(&options).model, "/m.gguf");
}

#[test]
fn non_objects_are_a_problem_not_a_failure() {
    let (settings, problems) = read(json!([1, 2]));
    assert_eq!(settings, Settings::default());
    assert_eq!(problems.len(), 1);
    let (_, none) = read(serde_json::Value::Null);
    assert!(none.is_empty());
}

#[test]
fn environment_then_flags_then_editor() {
    let mut problems = Vec::new();
    let env = |name: &str| match name {
        "MISTRAL_LSP_MODEL" => Some("/env.gguf".to_owned()),
        "MISTRAL_LSP_GPU_LAYERS" => Some("3".to_owned()),
        "MISTRAL_LSP_LOG" => Some("debug".to_owned()),
        "MISTRAL_LSP_CACHE_DIR" => Some("/env-cache".to_owned()),
        "MISTRAL_LSP_DOWNLOAD_TIMEOUT_SECS" => Some("7".to_owned()),
        _ => None,
    };
    let mut options = Options::from_env(env, &mut problems);
    let mut flags = Options::default();
    flags.set_text("--gpu-layers", "gpuLayers", "5", &mut problems);
    options.merge(&flags);
    let editor = json!({"model": "/editor.gguf", "download": {"endpoint": "http://mirror"}});
    options.merge(&Options::from_json(&editor, "editor", &mut problems));
    let settings = Settings::resolve(&options);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        (settings.model.as_str(), settings.gpu_layers, settings.log_level.as_str()),
        ("/editor.gguf", 5, "debug")
    );
    let download = Download { cache_dir: "/env-cache".into(), endpoint: "http://mirror".into(), timeout_secs: 7 };
    assert_eq!(settings.download, download);
}

#[test]
fn bad_environment_values_are_reported() {
    let mut problems = Vec::new();
    let env = |name: &str| (name == "MISTRAL_LSP_THREADS").then(|| "many".to_owned());
    let options = Options::from_env(env, &mut problems);
    assert!(options.is_empty());
    assert_eq!(problems.len(), 1);
    assert!(problems[0].source.contains("MISTRAL_LSP_THREADS"));
}

#[test]
fn threads_are_clamped_to_the_machine() {
    // (asked, the machine's limit, used, clamped)
    let table = [
        (json!(512), Some(8), json!(8), true),
        (json!(9), Some(8), json!(8), true),
        (json!(8), Some(8), json!(8), false),
        (json!(0), Some(8), json!(0), false),
        (json!(512), None, json!(512), false),
    ];
    for (asked, limit, used, clamped) in table {
        let (value, message) = cap_threads(asked.clone(), limit);
        assert_eq!((&value, message.is_some()), (&used, clamped), "{asked} on {limit:?}");
        assert!(message.is_none_or(|m| m.contains("clamped to")), "{asked}");
    }
    let limit = std::thread::available_parallelism().unwrap().get();
    let (settings, problems) = read(json!({"threads": 512}));
    assert_eq!(settings.threads as usize, limit.min(512));
    assert_eq!(problems.len(), usize::from(limit < 512), "{problems:?}");
}

#[test]
fn disabled_languages() {
    let (settings, _) = read(json!({"completion": {"disabledLanguages": ["markdown"]}}));
    assert!(!settings.completes("markdown"));
    assert!(settings.completes("python"));
}

#[test]
fn every_default_is_valid_for_its_kind() {
    for def in SETTINGS {
        let value: serde_json::Value = serde_json::from_str(def.default).expect(def.key);
        assert_eq!(check(def.kind, &value), Ok(()), "{}", def.key);
    }
    assert_eq!(serde_json::from_str::<String>(SETTINGS[0].default).unwrap(), DEFAULT_MODEL);
}

#[test]
fn time_limits_scale_within_their_range() {
    assert_eq!(Settings::default().time_limit_scale, 1.0);
    let (settings, problems) = read(json!({"completion": {"timeLimitScale": 2.5}}));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(settings.time_limit_scale, 2.5);
    let (settings, problems) = read(json!({"completion": {"timeLimitScale": 0}}));
    assert_eq!((settings.time_limit_scale, problems.len()), (1.0, 1), "{problems:?}");
}
