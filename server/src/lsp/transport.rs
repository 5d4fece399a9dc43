//! The wire guard in front of tower-lsp: frames stdin itself, answers malformed messages, and
//! passes only well-formed JSON-RPC on.
//!
//! tower-lsp's codec ends the whole server on the first body that is not valid JSON-RPC. Here a
//! bad message gets a JSON-RPC error (-32700 or -32600) and the server carries on: a wrong
//! `Content-Length` is recovered from by finding the next header.

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

/// Bodies larger than this are refused (and skipped) rather than buffered.
const MAX_BODY: usize = 256 * 1024 * 1024;
const HEADER: &[u8] = b"Content-Length:";

/// Copies messages from `input` to `to_server`, answering bad ones on `errors`.
pub async fn guard_input<R: AsyncRead + Unpin>(
    mut input: R,
    mut to_server: DuplexStream,
    errors: mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut reader = FrameReader::default();
    loop {
        match reader.next(&mut input).await {
            Frame::Eof => break,
            Frame::Bad(message) => {
                tracing::warn!("bad message: {message}");
                let _ = errors.send(error_body(Value::Null, -32700, &message));
            }
            Frame::Body(body) => match accept(body) {
                Ok(body) => {
                    let header = format!("Content-Length: {}\r\n\r\n", body.len());
                    if to_server.write_all(header.as_bytes()).await.is_err()
                        || to_server.write_all(&body).await.is_err()
                    {
                        break;
                    }
                }
                Err((id, code, message)) => {
                    tracing::warn!("bad message: {message}");
                    let _ = errors.send(error_body(id, code, &message));
                }
            },
        }
    }
    let _ = to_server.shutdown().await;
}

/// Copies tower-lsp's framed output and the guard's error answers to `output`, whole messages only.
pub async fn merge_output<W: AsyncWrite + Unpin>(
    mut from_server: DuplexStream,
    mut errors: mpsc::UnboundedReceiver<Vec<u8>>,
    mut output: W,
) {
    let mut reader = FrameReader::default();
    let mut errors_open = true;
    loop {
        let body = tokio::select! {
            frame = reader.next(&mut from_server) => match frame {
                Frame::Body(body) => body,
                Frame::Bad(message) => {
                    tracing::error!("tower-lsp wrote a bad frame: {message}");
                    continue;
                }
                Frame::Eof => break,
            },
            error = errors.recv(), if errors_open => match error {
                Some(body) => body,
                None => {
                    errors_open = false;
                    continue;
                }
            },
        };
        let header = format!("Content-Length: {}\r\n\r\n", body.len());
        if output.write_all(header.as_bytes()).await.is_err()
            || output.write_all(&body).await.is_err()
            || output.flush().await.is_err()
        {
            break;
        }
    }
    let _ = output.flush().await;
}

fn error_body(id: Value, code: i64, message: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string().into_bytes()
}

/// The body to pass on, or the error to answer it with. A body whose only fault is a lone UTF-16
/// surrogate escape (JavaScript editors can send `"\udc00"`; JSON parsers refuse it) is passed on
/// with U+FFFD in its place, which takes the same single UTF-16 unit, so positions still agree.
fn accept(body: Vec<u8>) -> Result<Vec<u8>, (Value, i64, String)> {
    let error = match check(&body) {
        Ok(()) => return Ok(body),
        Err(error) => error,
    };
    if error.1 == -32700 {
        if let Some(repaired) = replace_lone_surrogates(&body) {
            if check(&repaired).is_ok() {
                tracing::warn!("a message carried lone UTF-16 surrogates; they were replaced with U+FFFD");
                return Ok(repaired);
            }
        }
    }
    Err(error)
}

/// Replaces `\uXXXX` escapes of unpaired surrogates inside JSON strings with `\ufffd`; `None`
/// when there are none.
fn replace_lone_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let hex = |at: usize| -> Option<u16> {
        let digits = body.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let escape_at = |at: usize| -> Option<u16> { (body.get(at..at + 2)? == b"\\u").then(|| hex(at + 2)).flatten() };
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let (mut i, mut in_string) = (0, false);
    while i < body.len() {
        let byte = body[i];
        if !in_string {
            in_string = byte == b'"';
            out.push(byte);
            i += 1;
            continue;
        }
        match byte {
            b'"' => in_string = false,
            b'\\' => {
                if let Some(unit) = escape_at(i) {
                    let high = (0xd800..0xdc00).contains(&unit);
                    let paired = high && escape_at(i + 6).is_some_and(|low| (0xdc00..0xe000).contains(&low));
                    if paired {
                        out.extend_from_slice(&body[i..i + 12]);
                        i += 12;
                    } else if (0xd800..0xe000).contains(&unit) {
                        out.extend_from_slice(b"\\ufffd");
                        changed = true;
                        i += 6;
                    } else {
                        out.extend_from_slice(&body[i..i + 6]);
                        i += 6;
                    }
                    continue;
                }
                // Any other escape: copy it whole, so that `\\` and `\"` are not misread.
                out.extend_from_slice(&body[i..(i + 2).min(body.len())]);
                i += 2;
                continue;
            }
            _ => {}
        }
        out.push(byte);
        i += 1;
    }
    changed.then_some(out)
}

/// Checks that a body is a JSON-RPC 2.0 message tower-lsp can decode.
fn check(body: &[u8]) -> Result<(), (Value, i64, String)> {
    let value: Value =
        serde_json::from_slice(body).map_err(|err| (Value::Null, -32700, format!("parse error: {err}")))?;
    let Value::Object(message) = value else {
        return Err((Value::Null, -32600, "invalid request: a message must be a JSON object".into()));
    };
    let id = message.get("id").cloned();
    // tower-lsp's id holds an i64: any other number (1.5, 1e3, 2^63) would end its reader for good.
    let id_ok = match &id {
        None | Some(Value::String(_) | Value::Null) => true,
        Some(Value::Number(number)) => number.as_i64().is_some(),
        Some(_) => false,
    };
    let answer_id = if id_ok { id.clone().unwrap_or(Value::Null) } else { Value::Null };
    let invalid = |why: &str| Err((answer_id.clone(), -32600, format!("invalid request: {why}")));
    if message.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return invalid("`jsonrpc` must be \"2.0\"");
    }
    if !id_ok {
        return invalid("`id` must be an integer (64-bit signed) or a string");
    }
    match message.get("method") {
        Some(Value::String(_)) => match message.get("params") {
            None | Some(Value::Object(_) | Value::Array(_) | Value::Null) => Ok(()),
            Some(_) => invalid("`params` must be an object or an array"),
        },
        Some(_) => invalid("`method` must be a string"),
        None if id.is_some() && (message.contains_key("result") || message.contains_key("error")) => Ok(()),
        None => invalid("a message needs a `method`, or an `id` with a `result` or `error`"),
    }
}

enum Frame {
    Body(Vec<u8>),
    Bad(String),
    Eof,
}

/// Reads `Content-Length` framed messages, resynchronising on the next header after garbage.
#[derive(Default)]
struct FrameReader {
    buffer: Vec<u8>,
    eof: bool,
}

impl FrameReader {
    async fn fill<R: AsyncRead + Unpin>(&mut self, input: &mut R) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 64 * 1024];
        match input.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn next<R: AsyncRead + Unpin>(&mut self, input: &mut R) -> Frame {
        // Find the start of a header, dropping anything before it.
        let start = loop {
            if let Some(at) = find_ci(&self.buffer, HEADER) {
                break at;
            }
            let keep = self.buffer.len().min(HEADER.len());
            let dropped = self.buffer.len() - keep;
            let garbage = self.buffer[..dropped].iter().any(|b| !b.is_ascii_whitespace());
            self.buffer.drain(..dropped);
            if garbage {
                return Frame::Bad("parse error: bytes outside a message were skipped".into());
            }
            if !self.fill(input).await {
                return Frame::Eof;
            }
        };
        if self.buffer[..start].iter().any(|b| !b.is_ascii_whitespace()) {
            self.buffer.drain(..start);
            return Frame::Bad("parse error: bytes outside a message were skipped".into());
        }
        self.buffer.drain(..start);
        let header_end = loop {
            if let Some(at) = find_ci(&self.buffer, b"\r\n\r\n") {
                break at;
            }
            if self.buffer.len() > 64 * 1024 || !self.fill(input).await {
                self.buffer.drain(..HEADER.len().min(self.buffer.len()));
                return if self.eof { Frame::Eof } else { Frame::Bad("parse error: header too long".into()) };
            }
        };
        let headers = String::from_utf8_lossy(&self.buffer[..header_end]).into_owned();
        self.buffer.drain(..header_end + 4);
        let length = headers.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>())
        });
        let length = match length {
            Some(Ok(n)) if n <= MAX_BODY => n,
            Some(Ok(n)) => return Frame::Bad(format!("parse error: message of {n} bytes is too large")),
            _ => return Frame::Bad(format!("parse error: bad header `{}`", headers.trim())),
        };
        while self.buffer.len() < length {
            if !self.fill(input).await {
                self.buffer.clear();
                return Frame::Eof;
            }
        }
        let body: Vec<u8> = self.buffer.drain(..length).collect();
        // A too-long Content-Length swallows the start of the next message: give it back.
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            if let Some(at) = find_ci(&body, HEADER) {
                let mut rest = body[at..].to_vec();
                rest.extend_from_slice(&self.buffer);
                self.buffer = rest;
                return Frame::Body(body[..at].to_vec());
            }
        }
        Frame::Body(body)
    }
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8]) -> Vec<Result<String, String>> {
        let mut reader = FrameReader::default();
        let mut input = input;
        let mut out = Vec::new();
        loop {
            match reader.next(&mut input).await {
                Frame::Body(body) => out.push(Ok(String::from_utf8(body).unwrap())),
                Frame::Bad(message) => out.push(Err(message)),
                Frame::Eof => return out,
            }
        }
    }

    #[tokio::test]
    async fn reads_frames_and_recovers_from_wrong_lengths() {
        let good = r#"{"a":1}"#;
        let input = format!(
            "Content-Length: 7\r\n\r\n{good}Content-Length: 3\r\n\r\n{good}Content-Length: 99\r\n\r\n{{\"x\"{}",
            format!("Content-Length: 7\r\n\r\n{good}").repeat(4)
        );
        let got = frames(input.as_bytes()).await;
        assert_eq!(got[0], Ok(good.to_owned()));
        assert_eq!(got[1], Ok("{\"a".to_owned()), "a short length yields a truncated body");
        assert!(got[2].is_err(), "then the rest is skipped as garbage: {got:?}");
        assert_eq!(got[3], Ok("{\"x\"".to_owned()), "a long length gives back the next header");
        assert!(got[4..].iter().all(|frame| frame == &Ok(good.to_owned())), "{got:?}");
        assert_eq!(got.len(), 8);
    }

    #[tokio::test]
    async fn bad_headers_are_reported() {
        let got = frames(b"Content-Length: abc\r\n\r\n{}Content-Length: 2\r\n\r\n{}").await;
        assert!(got[0].as_ref().unwrap_err().contains("bad header"));
        assert_eq!(got.last(), Some(&Ok("{}".to_owned())));
    }

    #[test]
    fn checks_json_rpc_shape() {
        assert!(check(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{}}"#).is_ok());
        assert!(check(br#"{"jsonrpc":"2.0","method":"x"}"#).is_ok());
        assert!(check(br#"{"jsonrpc":"2.0","id":"a","result":null}"#).is_ok());
        assert_eq!(check(b"{not json").unwrap_err().1, -32700);
        assert_eq!(check(b"[1,2]").unwrap_err().1, -32600);
        assert_eq!(check(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#).unwrap_err().1, -32600);
        assert_eq!(check(br#"{"jsonrpc":"2.0","id":3,"method":"x","params":5}"#).unwrap_err().0, json!(3));
        assert_eq!(check(br#"{"id":3,"method":"x"}"#).unwrap_err().1, -32600);
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let table: &[(&str, Option<&str>)] = &[
            (r#"{"t":"a\udc00b"}"#, Some(r#"{"t":"a\ufffdb"}"#)),
            (r#"{"t":"\ud83d"}"#, Some(r#"{"t":"\ufffd"}"#)),
            (r#"{"t":"\ud83d\ude00"}"#, None),
            (r#"{"t":"\ud83d\ud83d\ude00"}"#, Some(r#"{"t":"\ufffd\ud83d\ude00"}"#)),
            (r#"{"t":"\\udc00"}"#, None),
            (r#"{"t":"\"\udc00"}"#, Some(r#"{"t":"\"\ufffd"}"#)),
            (r#"{"t":"\u00e9"}"#, None),
            (r#"{"\udc00":1}"#, Some(r#"{"\ufffd":1}"#)),
        ];
        for (body, want) in table {
            let got = replace_lone_surrogates(body.as_bytes()).map(|b| String::from_utf8(b).unwrap());
            assert_eq!(got.as_deref(), *want, "{body}");
        }
        let message = r#"{"jsonrpc":"2.0","method":"x","params":{"t":"\udc00"}}"#;
        let passed = accept(message.as_bytes().to_vec()).unwrap();
        let value: Value = serde_json::from_slice(&passed).unwrap();
        assert_eq!(value["params"]["t"], "\u{fffd}");
    }

    #[test]
    fn ids_that_are_not_64_bit_integers_are_answered_here() {
        for id in ["1.5", "1e3", "-0.0", "9223372036854775808", "18446744073709551615", "true", "[1]"] {
            for body in [
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"shutdown"}}"#),
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":null}}"#),
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"initialized","params":{{}}}}"#),
            ] {
                let (answer_id, code, _) = check(body.as_bytes()).unwrap_err();
                assert_eq!((answer_id, code), (Value::Null, -32600), "{body}");
            }
        }
        for id in ["0", "-9223372036854775808", "9223372036854775807", r#""x""#] {
            assert!(check(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"x"}}"#).as_bytes()).is_ok(), "{id}");
        }
    }
}

/// Randomized fuzzing of the guard (cargo-fuzz needs a nightly toolchain, which this project's
/// machines do not have): streams of valid, mutated and broken messages, cut at random, must
/// never make the guard panic, and every body it passes on must decode with tower-lsp's own
/// types, since tower-lsp stops reading for good at the first one that does not.
/// `MISTRAL_LSP_FUZZ_ITERATIONS` sets the number of streams (CI runs the default).
#[cfg(test)]
mod fuzz {
    use tower_lsp_server::jsonrpc::{Request, Response};

    use super::*;

    const IDS: &[&str] = &[
        "1",
        "-7",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "1.5",
        "1e3",
        "0.0",
        "-0",
        "1e400",
        "\"a\"",
        "\"\"",
        "null",
        "true",
        "{}",
        "[1]",
        "18446744073709551615",
    ];
    const BODIES: &[&str] = &[
        r#"{"jsonrpc":"2.0","id":ID,"method":"shutdown"}"#,
        r#"{"jsonrpc":"2.0","id":ID,"method":"textDocument/inlineCompletion","params":{"textDocument":{"uri":"file:///a"},"position":{"line":0,"character":1},"context":{"triggerKind":1}}}"#,
        r#"{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///a","version":2},"contentChanges":[{"text":"x\udc00y"}]}}"#,
        r#"{"jsonrpc":"2.0","id":ID,"result":null}"#,
        r#"{"jsonrpc":"2.0","id":ID,"error":{"code":-1,"message":"m"}}"#,
        r#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":ID}}"#,
        r#"{"jsonrpc":"2.0","id":ID,"method":"x","params":5}"#,
        r#"{"jsonrpc":"1.0","id":ID,"method":"x"}"#,
        r#"{"jsonrpc":"2.0","id":ID}"#,
        r#"[{"jsonrpc":"2.0","id":ID,"method":"x"}]"#,
    ];

    fn iterations() -> usize {
        std::env::var("MISTRAL_LSP_FUZZ_ITERATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(3000)
    }

    fn mutate(rng: &mut fastrand::Rng, body: &mut Vec<u8>) {
        match rng.u8(..6) {
            0 if !body.is_empty() => {
                let at = rng.usize(..body.len());
                body[at] = rng.u8(..);
            }
            1 if !body.is_empty() => body.truncate(rng.usize(..body.len())),
            2 => {
                let at = rng.usize(..=body.len());
                let piece: &[u8] =
                    [&b"\\udc00"[..], b"\\\\", b"\"", b"{", b"Content-Length: 3\r\n\r\n", b"\xff\xfe"][rng.usize(..6)];
                body.splice(at..at, piece.iter().copied());
            }
            _ => {}
        }
    }

    fn stream(rng: &mut fastrand::Rng) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rng.usize(1..8) {
            let id = IDS[rng.usize(..IDS.len())];
            let mut body = BODIES[rng.usize(..BODIES.len())].replace("ID", id).into_bytes();
            if rng.u8(..3) == 0 {
                mutate(rng, &mut body);
            }
            let length = match rng.u8(..8) {
                0 => body.len().saturating_sub(rng.usize(..5)),
                1 => body.len() + rng.usize(..5),
                _ => body.len(),
            };
            let header = match rng.u8(..10) {
                0 => format!("content-length:{length}\r\n\r\n"),
                1 => format!("Content-Length: -{length}\r\n\r\n"),
                2 => format!("Content-Type: x\r\nContent-Length: {length}\r\n\r\n"),
                _ => format!("Content-Length: {length}\r\n\r\n"),
            };
            if rng.u8(..10) == 0 {
                out.extend_from_slice(b"garbage ");
            }
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&body);
        }
        out
    }

    #[tokio::test]
    async fn the_guard_passes_on_only_what_tower_lsp_decodes() {
        let mut rng = fastrand::Rng::with_seed(0x6a7d);
        let (mut passed, mut answered) = (0, 0);
        for _ in 0..iterations() {
            let input = stream(&mut rng);
            let mut reader = FrameReader::default();
            let mut slice = input.as_slice();
            loop {
                match reader.next(&mut slice).await {
                    Frame::Eof => break,
                    Frame::Bad(_) => answered += 1,
                    Frame::Body(body) => match accept(body) {
                        Ok(body) => {
                            let decodes = serde_json::from_slice::<Request>(&body).is_ok()
                                || serde_json::from_slice::<Response>(&body).is_ok();
                            assert!(
                                decodes,
                                "passed on but tower-lsp cannot decode: {}",
                                String::from_utf8_lossy(&body)
                            );
                            passed += 1;
                        }
                        Err((id, _, _)) => {
                            assert!(id.is_null() || id.is_string() || id.as_i64().is_some(), "answer id {id}");
                            answered += 1;
                        }
                    },
                }
            }
        }
        assert!(passed > 0 && answered > 0, "the streams exercise both paths: {passed} passed, {answered} answered");
    }
}
