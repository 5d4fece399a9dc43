//! What goes over the wire to a remote server, pure: prompts rendered for its API, request
//! bodies, and server-sent events parsed back into pieces of text.

use serde_json::{json, Value};

use crate::prompt::{ChatMessage, Prompt, Segment, Special};

use super::super::Job;

/// A remote server's API, once known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// llama-server's own `/completion` (a prompt of text and token ids, a slot per document).
    LlamaServer,
    /// `/v1/completions` and `/v1/chat/completions`.
    OpenAi,
}

/// How a server's vocabulary spells the special tokens a prompt may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Specials {
    /// Token ids, learned from the server itself (llama-server).
    Ids(Vec<(Special, i64)>),
    /// Texts that the server's tokenizer turns into the special tokens (OpenAI-compatible servers
    /// parse special tokens in prompt text).
    Texts(Vec<(Special, &'static str)>),
    /// None known: FIM prompts cannot be sent.
    #[default]
    None,
}

/// Special tokens and how they are written.
type Spelled = &'static [(Special, &'static str)];

/// FIM spellings by model family, for OpenAI-compatible servers, which do not say what their
/// vocabulary holds. Matched against the model's name, first match wins.
const SPELLINGS: &[(&[&str], Spelled)] = &[
    (
        &["qwen", "codegemma"],
        &[
            (Special::FimPrefix, "<|fim_prefix|>"),
            (Special::FimSuffix, "<|fim_suffix|>"),
            (Special::FimMiddle, "<|fim_middle|>"),
            (Special::FimRepo, "<|repo_name|>"),
            (Special::FimSeparator, "<|file_sep|>"),
        ],
    ),
    (
        &["starcoder", "santacoder", "refact", "stable-code", "granite"],
        &[
            (Special::FimPrefix, "<fim_prefix>"),
            (Special::FimSuffix, "<fim_suffix>"),
            (Special::FimMiddle, "<fim_middle>"),
            (Special::FimRepo, "<repo_name>"),
            (Special::FimSeparator, "<file_sep>"),
        ],
    ),
    (
        &["codellama", "code-llama", "code llama"],
        &[(Special::FimPrefix, "<PRE> "), (Special::FimSuffix, " <SUF>"), (Special::FimMiddle, " <MID>")],
    ),
    (
        &["codestral"],
        &[(Special::FimPrefix, "[PREFIX]"), (Special::FimSuffix, "[SUFFIX]"), (Special::FimMiddle, "[MIDDLE]")],
    ),
];

/// The FIM spellings of a model family, by the model's name.
pub fn spellings(model: &str) -> Specials {
    let name = model.to_ascii_lowercase();
    SPELLINGS
        .iter()
        .find(|(families, _)| families.iter().any(|family| name.contains(family)))
        .map_or(Specials::None, |(_, spelled)| Specials::Texts(spelled.to_vec()))
}

impl Specials {
    pub fn has(&self, special: Special) -> bool {
        match self {
            Specials::Ids(ids) => ids.iter().any(|(s, _)| *s == special),
            Specials::Texts(texts) => texts.iter().any(|(s, _)| *s == special),
            Specials::None => false,
        }
    }
}

/// A prompt as a remote server takes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Rendered {
    /// For completion endpoints: llama-server's mix of strings and token ids, or one string.
    Prompt(Value),
    /// For chat endpoints; `prefill` starts the answer.
    Chat { messages: Vec<ChatMessage>, prefill: String },
}

/// Renders a prompt for a server.
pub fn render(prompt: &Prompt, specials: &Specials) -> Result<Rendered, String> {
    let segments = match prompt {
        Prompt::Chat { messages, answer_prefix } => {
            return Ok(Rendered::Chat { messages: messages.clone(), prefill: answer_prefix.clone() });
        }
        Prompt::Infill { prefix, suffix } => vec![
            Segment::Special(Special::FimPrefix),
            Segment::Text(prefix.clone()),
            Segment::Special(Special::FimSuffix),
            Segment::Text(suffix.clone()),
            Segment::Special(Special::FimMiddle),
        ],
        Prompt::Segments(segments) => segments.clone(),
    };
    let mut parts: Vec<Value> = Vec::new();
    let mut text = String::new();
    for segment in &segments {
        match (segment, specials) {
            (Segment::Text(piece), _) => text.push_str(piece),
            // The server adds the beginning-of-text token itself, as its model wants.
            (Segment::Special(Special::Bos), _) => {}
            (Segment::Special(special), Specials::Ids(ids)) => {
                let id = ids.iter().find(|(s, _)| s == special).map(|(_, id)| *id).ok_or_else(|| missing(*special))?;
                if !text.is_empty() {
                    parts.push(Value::String(std::mem::take(&mut text)));
                }
                parts.push(Value::from(id));
            }
            (Segment::Special(special), Specials::Texts(texts)) => {
                let spelled = texts.iter().find(|(s, _)| s == special).ok_or_else(|| missing(*special))?.1;
                text.push_str(spelled);
            }
            (Segment::Special(special), Specials::None) => return Err(missing(*special)),
        }
    }
    if !text.is_empty() || parts.is_empty() {
        parts.push(Value::String(text));
    }
    Ok(Rendered::Prompt(match (specials, parts.len()) {
        (Specials::Ids(_), _) => Value::Array(parts),
        (_, _) => parts.pop().unwrap_or_default(),
    }))
}

fn missing(special: Special) -> String {
    format!("the server's model has no {special:?} token that this server can be sent")
}

/// What a request is for, with its endpoint.
pub fn endpoint(api: Api, rendered: &Rendered) -> &'static str {
    match (api, rendered) {
        (_, Rendered::Chat { .. }) => "/v1/chat/completions",
        (Api::LlamaServer, Rendered::Prompt(_)) => "/completion",
        (Api::OpenAi, Rendered::Prompt(_)) => "/v1/completions",
    }
}

/// Stop strings an OpenAI-compatible server accepts at most; the rest are applied here.
const OPENAI_STOPS: usize = 4;

/// The request body for a job. `slot`: llama-server's slot for the job's document.
pub fn body(api: Api, rendered: &Rendered, job: &Job, model: &str, slot: Option<u32>) -> Value {
    let sampling = job.sampling;
    let greedy = sampling.temperature <= 0.0;
    let mut body = json!({
        "stream": true,
        "temperature": if greedy { 0.0 } else { sampling.temperature },
        "top_p": if greedy { 1.0 } else { sampling.top_p },
        "seed": sampling.seed,
    });
    let object = body.as_object_mut().expect("a JSON object");
    if !model.is_empty() {
        object.insert("model".into(), model.into());
    }
    match api {
        Api::LlamaServer => {
            object.insert("n_predict".into(), job.max_tokens.into());
            object.insert("top_k".into(), (if greedy { 1 } else { sampling.top_k }).into());
            object.insert("cache_prompt".into(), true.into());
            // Counters in every event: a stop rule may end the stream before the last one.
            object.insert("timings_per_token".into(), true.into());
            object.insert("stop".into(), json!(job.stop));
            if let Some(slot) = slot {
                object.insert("id_slot".into(), slot.into());
            }
            if let Some(grammar) = &job.grammar {
                object.insert("grammar".into(), grammar.as_str().into());
            }
        }
        Api::OpenAi => {
            object.insert("max_tokens".into(), job.max_tokens.into());
            if !job.stop.is_empty() {
                object.insert("stop".into(), json!(job.stop.iter().take(OPENAI_STOPS).collect::<Vec<_>>()));
            }
        }
    }
    match rendered {
        Rendered::Prompt(prompt) => {
            object.insert("prompt".into(), prompt.clone());
        }
        Rendered::Chat { messages, prefill } => {
            let mut list: Vec<Value> = messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
            if !prefill.is_empty() {
                // A last assistant message is continued by llama-server; vLLM needs to be told.
                list.push(json!({"role": "assistant", "content": prefill}));
                object.insert("continue_final_message".into(), true.into());
                object.insert("add_generation_prompt".into(), false.into());
            }
            object.insert("messages".into(), Value::Array(list));
            if api == Api::LlamaServer {
                object.insert("max_tokens".into(), job.max_tokens.into());
                object.remove("n_predict");
            }
        }
    }
    body
}

/// A request for one step of steering (see `steer`): the prompt so far, one greedy token, and
/// the server's likeliest `candidates` for it with their log-probabilities before sampling.
pub fn step_body(prompt: &[Value], slot: Option<u32>, candidates: u32) -> Value {
    let mut body = json!({
        "prompt": prompt,
        "n_predict": 1,
        "n_probs": candidates,
        "post_sampling_probs": false,
        "temperature": 0.0,
        "top_k": 1,
        "cache_prompt": true,
        "stream": false,
    });
    if let Some(slot) = slot {
        body["id_slot"] = slot.into();
    }
    body
}

/// The counters of a whole (not streamed) `/completion` answer.
pub fn parse_step(answer: &Value) -> Piece {
    let count = |v: Option<&Value>| v.and_then(Value::as_u64).map(|n| n as usize);
    Piece {
        text: String::new(),
        done: true,
        prompt_tokens: count(answer.get("tokens_evaluated")),
        cached_tokens: count(answer.get("timings").and_then(|t| t.get("cache_n"))),
        generated_tokens: count(answer.get("tokens_predicted")),
    }
}

/// One parsed server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    /// The server says the answer is complete.
    pub done: bool,
    /// The server's counters, in its last event: prompt tokens, of those reused from its cache,
    /// and generated tokens.
    pub prompt_tokens: Option<usize>,
    pub cached_tokens: Option<usize>,
    pub generated_tokens: Option<usize>,
}

/// Parses one event's data: llama-server's `/completion` events, or OpenAI's (`choices[0].text`
/// or `choices[0].delta.content`, and `[DONE]`).
pub fn parse_event(data: &str) -> Result<Piece, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Piece { done: true, ..Piece::default() });
    }
    let value: Value =
        serde_json::from_str(data).map_err(|err| format!("an event that is not JSON ({err}): {}", snippet(data)))?;
    if let Some(error) = value.get("error") {
        let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
        return Err(format!("the server reported an error: {message}"));
    }
    let count = |v: Option<&Value>| v.and_then(Value::as_u64).map(|n| n as usize);
    if let Some(choices) = value.get("choices").and_then(Value::as_array) {
        let choice = choices.first();
        let text = choice
            .and_then(|c| c.get("text").or_else(|| c.get("delta").and_then(|d| d.get("content"))))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let usage = value.get("usage");
        let timings = value.get("timings");
        return Ok(Piece {
            text,
            // The server's own end comes as `[DONE]`; a finish reason says the same earlier.
            done: choice.and_then(|c| c.get("finish_reason")).is_some_and(|r| !r.is_null()),
            prompt_tokens: count(usage.and_then(|u| u.get("prompt_tokens"))),
            cached_tokens: count(timings.and_then(|t| t.get("cache_n"))).or_else(|| {
                count(usage.and_then(|u| u.get("prompt_tokens_details")).and_then(|d| d.get("cached_tokens")))
            }),
            generated_tokens: count(usage.and_then(|u| u.get("completion_tokens"))),
        });
    }
    let Some(content) = value.get("content").and_then(Value::as_str) else {
        return Err(format!("an event with neither `content` nor `choices`: {}", snippet(data)));
    };
    let timings = value.get("timings");
    Ok(Piece {
        text: content.to_owned(),
        done: value.get("stop").and_then(Value::as_bool).unwrap_or(false),
        prompt_tokens: count(value.get("tokens_evaluated")),
        cached_tokens: count(timings.and_then(|t| t.get("cache_n"))),
        generated_tokens: count(value.get("tokens_predicted")),
    })
}

/// The start of a body, for error messages.
pub fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Splits a server-sent event stream into events' data, as bytes arrive.
#[derive(Debug, Default)]
pub struct Events {
    buffer: Vec<u8>,
}

impl Events {
    /// Adds bytes; returns the data of every event they complete (its `data:` lines joined).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, separator)) = event_end(&self.buffer) {
            let event: Vec<u8> = self.buffer.drain(..end + separator).take(end).collect();
            let text = String::from_utf8_lossy(&event);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|rest| rest.strip_prefix(' ').unwrap_or(rest))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }

    /// What is left when the stream ends: a last event without its blank line.
    pub fn finish(&mut self) -> Vec<String> {
        if self.buffer.iter().all(u8::is_ascii_whitespace) {
            return Vec::new();
        }
        self.push(b"\n\n")
    }
}

/// Where the first complete event ends, and the length of the blank line that ends it.
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut at = 0;
    while at < buffer.len() {
        for separator in [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"] {
            if buffer[at..].starts_with(separator) {
                return Some((at, separator.len()));
            }
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Priority;

    fn ids() -> Specials {
        Specials::Ids(vec![(Special::FimPrefix, 1), (Special::FimSuffix, 2), (Special::FimMiddle, 3)])
    }

    #[test]
    fn prompts_render_as_text_and_token_ids() {
        use Segment::{Special as S, Text as T};
        let fim = Prompt::Segments(vec![
            S(Special::FimPrefix),
            T("def f():\n".into()),
            S(Special::FimSuffix),
            T("\n".into()),
            S(Special::FimMiddle),
            T("    return".into()),
        ]);
        assert_eq!(render(&fim, &ids()), Ok(Rendered::Prompt(json!([1, "def f():\n", 2, "\n", 3, "    return"]))));
        assert_eq!(
            render(&fim, &spellings("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")),
            Ok(Rendered::Prompt(json!("<|fim_prefix|>def f():\n<|fim_suffix|>\n<|fim_middle|>    return")))
        );
        assert!(render(&fim, &Specials::None).is_err(), "a FIM prompt needs FIM tokens");
        let repo = Prompt::Segments(vec![S(Special::FimRepo), T("demo\n".into())]);
        assert!(render(&repo, &ids()).is_err(), "no repo token among the ids");
        let chat = Prompt::Chat {
            messages: vec![ChatMessage { role: "user".into(), content: "hi".into() }],
            answer_prefix: "```py\n".into(),
        };
        let Ok(Rendered::Chat { prefill, .. }) = render(&chat, &Specials::None) else { panic!() };
        assert_eq!(prefill, "```py\n");
        let plain = Prompt::Segments(vec![T("x = ".into())]);
        assert_eq!(render(&plain, &Specials::None), Ok(Rendered::Prompt(json!("x = "))));
    }

    #[test]
    fn spellings_follow_the_family_in_the_name() {
        assert!(spellings("Qwen2.5-Coder-7B").has(Special::FimRepo));
        assert!(spellings("bigcode/starcoder2-3b").has(Special::FimMiddle));
        assert!(!spellings("codellama-7b").has(Special::FimRepo));
        assert_eq!(spellings("mistral-7b-instruct"), Specials::None);
    }

    #[test]
    fn bodies_carry_the_job_for_each_api() {
        let mut job = Job::new(Priority::Interactive, Prompt::Segments(vec![]), 16);
        job.stop = (0..6).map(|i| format!("s{i}")).collect();
        let prompt = Rendered::Prompt(json!([1, "x"]));
        let llama = body(Api::LlamaServer, &prompt, &job, "", Some(2));
        assert_eq!((llama["n_predict"].clone(), llama["id_slot"].clone()), (json!(16), json!(2)));
        assert_eq!((llama["cache_prompt"].clone(), llama["top_k"].clone()), (json!(true), json!(1)));
        assert_eq!(llama["stop"].as_array().map(Vec::len), Some(6));
        let openai = body(Api::OpenAi, &Rendered::Prompt(json!("x")), &job, "m", None);
        assert_eq!((openai["max_tokens"].clone(), openai["model"].clone()), (json!(16), json!("m")));
        assert_eq!(openai["stop"].as_array().map(Vec::len), Some(OPENAI_STOPS), "the rest are applied here");
        assert!(openai.get("id_slot").is_none());
        let chat = Rendered::Chat { messages: vec![], prefill: "```".into() };
        let chat = body(Api::OpenAi, &chat, &job, "m", None);
        assert_eq!(chat["messages"][0]["role"], json!("assistant"));
        assert_eq!(endpoint(Api::LlamaServer, &prompt), "/completion");
    }

    #[test]
    fn a_steering_step_asks_for_one_greedy_token_and_its_ranked_candidates() {
        let step = step_body(&[json!(3), json!("def f")], Some(1), 40);
        assert_eq!(step["prompt"], json!([3, "def f"]));
        assert_eq!(
            (step["n_predict"].clone(), step["n_probs"].clone(), step["id_slot"].clone()),
            (json!(1), json!(40), json!(1))
        );
        assert_eq!(step["post_sampling_probs"], json!(false), "log-probabilities of the model, not of the sampler");
        let answer = json!({"content": "x", "tokens_evaluated": 12, "timings": {"cache_n": 8}});
        let counted = parse_step(&answer);
        assert_eq!((counted.prompt_tokens, counted.cached_tokens), (Some(12), Some(8)));
    }

    #[test]
    fn events_are_split_and_parsed() {
        let mut events = Events::default();
        assert_eq!(events.push(b"data: {\"content\":\"a\"}\n\ndata: {\"con"), vec!["{\"content\":\"a\"}"]);
        assert_eq!(events.push(b"tent\":\"b\"}\r\n\r\n: comment\n\n"), vec!["{\"content\":\"b\"}"]);
        assert_eq!(events.push(b"data: [DONE]"), Vec::<String>::new());
        assert_eq!(events.finish(), vec!["[DONE]"]);

        let last = r#"{"content":"","stop":true,"tokens_evaluated":40,"tokens_predicted":3,"timings":{"cache_n":32}}"#;
        let piece = parse_event(last).unwrap();
        assert_eq!(
            (piece.done, piece.prompt_tokens, piece.cached_tokens, piece.generated_tokens),
            (true, Some(40), Some(32), Some(3))
        );
        assert_eq!(parse_event(r#"{"choices":[{"text":"x","finish_reason":null}]}"#).unwrap().text, "x");
        let delta = parse_event(r#"{"choices":[{"delta":{"content":"y"},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!((delta.text.as_str(), delta.done), ("y", true));
        assert!(parse_event("[DONE]").unwrap().done);
        assert!(parse_event("<html>").unwrap_err().contains("not JSON"));
        assert!(parse_event(r#"{"error":{"message":"boom"}}"#).unwrap_err().contains("boom"));
    }
}
