//! The vocabulary and metadata of a loaded model: token counts, special tokens, chat templates,
//! and what the model is (`ModelInfo`).

#![allow(clippy::disallowed_types, reason = "the llama.cpp backend touches llama.cpp")]

use std::sync::Arc;

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use super::super::{ChatMessage, ModelInfo, Special};

/// The model's vocabulary and metadata, usable from any thread (tokenizing only reads the model).
#[derive(Clone)]
pub struct Tokenizer {
    pub(super) model: Arc<LlamaModel>,
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

pub(super) fn special_token(model: &LlamaModel, special: Special) -> Option<LlamaToken> {
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

pub(super) fn render_chat(model: &LlamaModel, messages: &[ChatMessage]) -> Result<String, String> {
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

pub(super) fn describe(model: &LlamaModel, context_size: u32, threads: u32) -> ModelInfo {
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
        rates: None,
    }
}
