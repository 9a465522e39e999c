//! An OpenAI-compatible Chat Completions client with tool calling, lenient about what it
//! reads: local servers (Ollama, vLLM, llama.cpp) omit fields such as `object`, `created`
//! or a tool call's `id`, and some send tool-call arguments as an object instead of a
//! string. Request timeout, max tokens, retries with backoff on 429 and 5xx.
//!
//! Invariant: the API key lives in a `SecretString`, is sent only in the Authorization
//! header, and appears in no error, log line or Debug output.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Where the model is and how to talk to it.
pub struct LlmConfig {
    /// Base URL of the API, e.g. `https://api.openai.com/v1` or `http://localhost:11434/v1`.
    pub base_url: String,
    /// The model name.
    pub model: String,
    /// The API key, if the server needs one.
    pub api_key: Option<SecretString>,
    /// Per-request timeout. Default 60 s.
    pub timeout: Duration,
    /// `max_tokens` for each completion. Default 1,024.
    pub max_tokens: u32,
    /// Retries after a 429 or 5xx answer (or a connection error). Default 3.
    pub max_retries: u32,
    /// First backoff; doubled each retry (a `Retry-After` of up to 30 s wins). Default 500 ms.
    pub backoff: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "****"))
            .finish()
    }
}

impl LlmConfig {
    /// From `DBWARD_LLM_BASE_URL` (default OpenAI), `DBWARD_LLM_MODEL` (required) and
    /// `DBWARD_LLM_API_KEY` or `OPENAI_API_KEY`. `None` when no model is configured.
    pub fn from_env() -> Option<LlmConfig> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let model = var("DBWARD_LLM_MODEL")?;
        Some(LlmConfig {
            base_url: var("DBWARD_LLM_BASE_URL")
                .unwrap_or_else(|| "https://api.openai.com/v1".into()),
            model,
            api_key: var("DBWARD_LLM_API_KEY")
                .or_else(|| var("OPENAI_API_KEY"))
                .map(SecretString::from),
            ..LlmConfig::new("", "")
        })
    }

    /// A config with defaults for everything but the URL and model.
    pub fn new(base_url: &str, model: &str) -> LlmConfig {
        LlmConfig {
            base_url: base_url.to_string(),
            model: model.to_string(),
            api_key: None,
            timeout: Duration::from_secs(60),
            max_tokens: 1_024,
            max_retries: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// One chat message, in either direction.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    #[serde(default)]
    pub role: String,
    /// The text, if any.
    #[serde(default)]
    pub content: Option<String>,
    /// Tool calls the assistant proposes.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// For `tool` messages: the call answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// A proposed tool call.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    /// The call's id (generated when the server sends none).
    #[serde(default)]
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

/// The function a tool call names, with its arguments as a JSON text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    /// The tool name.
    #[serde(default)]
    pub name: String,
    /// The arguments, as JSON text (an object sent by the server is re-encoded).
    #[serde(default, deserialize_with = "string_or_json")]
    pub arguments: String,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn string_or_json<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// A tool offered to the model.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    /// The tool name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its arguments' JSON schema.
    pub parameters: Value,
}

/// Why a completion failed. Never holds the API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The server refused the key (401/403): an authentication failure.
    #[error("the LLM API refused the credentials (HTTP {0})")]
    Unauthorized(u16),
    /// Still rate-limited or failing after the retries.
    #[error(
        "the LLM API at {url} is unavailable ({last}{})",
        if *retries > 0 { format!(", after {retries} retries") } else { String::new() }
    )]
    Unavailable {
        /// The URL that failed, without credentials or query.
        url: String,
        /// Retries made.
        retries: u32,
        /// The last failure.
        last: String,
    },
    /// Another HTTP error.
    #[error("the LLM API answered HTTP {0}")]
    Http(u16),
    /// The answer is not a chat completion.
    #[error("the LLM API's answer could not be read: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default, deserialize_with = "null_as_empty")]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: ChatMessage,
}

/// The client.
pub struct LlmClient {
    config: LlmConfig,
    http: reqwest::Client,
}

impl LlmClient {
    /// A client for a config.
    pub fn new(config: LlmConfig) -> LlmClient {
        LlmClient {
            http: reqwest::Client::new(),
            config,
        }
    }

    /// The config in use.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// One completion: the assistant's next message (text, tool calls, or both).
    pub async fn chat(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<ChatMessage, LlmError> {
        let resp = self.send(self.body(messages, tools, false)).await?;
        let text = resp
            .text()
            .await
            .map_err(|e| LlmError::Malformed(e.without_url().to_string()))?;
        parse(&text)
    }

    /// One completion, streamed: `on_token` gets each piece of text as it arrives (the
    /// request asks for `stream: true`; a server that answers with plain JSON instead is
    /// read whole and its text given as one piece). Returns the whole message.
    pub async fn chat_streaming(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        mut on_token: impl FnMut(&str),
    ) -> Result<ChatMessage, LlmError> {
        let mut resp = self.send(self.body(messages, tools, true)).await?;
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            let text = resp
                .text()
                .await
                .map_err(|e| LlmError::Malformed(e.without_url().to_string()))?;
            let message = parse(&text)?;
            if let Some(t) = message.content.as_deref().filter(|t| !t.is_empty()) {
                on_token(t);
            }
            return Ok(message);
        }
        let mut stream = StreamedMessage::default();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| LlmError::Malformed(e.without_url().to_string()))?
        {
            pending.extend_from_slice(&chunk);
            if pending.len() > MAX_STREAM_LINE && !pending.contains(&b'\n') {
                return Err(LlmError::Malformed("a streamed line is too long".into()));
            }
            while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim();
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    return stream.finish();
                }
                if let Some(t) = stream.feed(data)? {
                    on_token(&t);
                }
            }
        }
        stream.finish()
    }

    fn body(&self, messages: &[ChatMessage], tools: &[ToolSpec], stream: bool) -> Value {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| serde_json::json!({"type": "function", "function": t}))
            .collect();
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "max_tokens": self.config.max_tokens,
        });
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools);
        }
        if stream {
            body["stream"] = Value::Bool(true);
        }
        body
    }

    /// Posts a completion request, retrying 429/5xx/connection errors with backoff; the
    /// successful response, unread.
    async fn send(&self, body: Value) -> Result<reqwest::Response, LlmError> {
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut backoff = self.config.backoff;
        let mut attempt = 0;
        loop {
            let mut req = self
                .http
                .post(&url)
                .timeout(self.config.timeout)
                .json(&body);
            if let Some(key) = &self.config.api_key {
                req = req.bearer_auth(key.expose_secret());
            }
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        return Ok(resp);
                    }
                    if status.as_u16() == 401 || status.as_u16() == 403 {
                        return Err(LlmError::Unauthorized(status.as_u16()));
                    }
                    if status.as_u16() != 429 && !status.is_server_error() {
                        return Err(LlmError::Http(status.as_u16()));
                    }
                    if let Some(wait) = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .filter(|s| *s <= 30)
                    {
                        backoff = backoff.max(Duration::from_secs(wait));
                    }
                    format!("HTTP {}", status.as_u16())
                }
                Err(e) if e.is_timeout() => "timeout".to_string(),
                Err(e) => e.without_url().to_string(),
            };
            if attempt >= self.config.max_retries {
                return Err(LlmError::Unavailable {
                    url: display_url(&url),
                    retries: attempt,
                    last: failure,
                });
            }
            tracing::warn!(attempt, failure = %failure, "LLM API call failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

impl LlmClient {
    /// Whether the model's server answers at all: `GET {base}/models`, once, within
    /// `timeout`. Any HTTP answer (even 404 from a server without that route) means it is
    /// up; a connection failure or timeout is `Unavailable`, naming the URL.
    pub async fn probe(&self, timeout: Duration) -> Result<(), LlmError> {
        let url = format!("{}/models", self.config.base_url.trim_end_matches('/'));
        let mut req = self.http.get(&url).timeout(timeout);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key.expose_secret());
        }
        match req.send().await {
            Ok(resp) if matches!(resp.status().as_u16(), 401 | 403) => {
                Err(LlmError::Unauthorized(resp.status().as_u16()))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(LlmError::Unavailable {
                url: display_url(&url),
                retries: 0,
                last: if e.is_timeout() {
                    "timeout".into()
                } else if e.is_connect() {
                    "connection refused or unreachable".into()
                } else {
                    e.without_url().to_string()
                },
            }),
        }
    }

    /// The API's base URL as it may be shown: no user name, password or query.
    pub fn display_base_url(&self) -> String {
        display_url(&self.config.base_url)
    }
}

/// A URL without its credentials, query or fragment (an API key may sit in any of them).
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(an unparsable URL)".into(),
    }
}

/// The longest streamed line accepted, in bytes.
const MAX_STREAM_LINE: usize = 1024 * 1024;
/// Most tool calls one streamed message may propose.
const MAX_STREAMED_CALLS: usize = 64;

/// A message assembled from streamed deltas.
#[derive(Default)]
struct StreamedMessage {
    content: String,
    calls: Vec<ToolCall>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default, deserialize_with = "null_as_empty")]
    choices: Vec<ChunkChoice>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    tool_calls: Vec<CallDelta>,
}

#[derive(Deserialize)]
struct CallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "string_or_json")]
    arguments: String,
}

impl StreamedMessage {
    /// Adds one `data:` payload; returns its text, if it carried some.
    fn feed(&mut self, data: &str) -> Result<Option<String>, LlmError> {
        let chunk: Chunk =
            serde_json::from_str(data).map_err(|e| LlmError::Malformed(e.to_string()))?;
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(None);
        };
        for (n, d) in choice.delta.tool_calls.into_iter().enumerate() {
            let i = d.index.unwrap_or(n);
            if i >= MAX_STREAMED_CALLS {
                return Err(LlmError::Malformed("too many streamed tool calls".into()));
            }
            while self.calls.len() <= i {
                self.calls.push(ToolCall {
                    kind: function_type(),
                    ..ToolCall::default()
                });
            }
            let call = &mut self.calls[i];
            if let Some(id) = d.id.filter(|id| !id.is_empty()) {
                call.id = id;
            }
            if let Some(f) = d.function {
                if let Some(name) = f.name {
                    call.function.name.push_str(&name);
                }
                call.function.arguments.push_str(&f.arguments);
            }
        }
        match choice.delta.content.filter(|t| !t.is_empty()) {
            Some(t) => {
                self.content.push_str(&t);
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }

    fn finish(self) -> Result<ChatMessage, LlmError> {
        let mut calls = self.calls;
        calls.retain(|c| !c.function.name.is_empty() || !c.function.arguments.is_empty());
        for (i, call) in calls.iter_mut().enumerate() {
            if call.id.is_empty() {
                call.id = format!("call_{i}");
            }
        }
        Ok(ChatMessage {
            role: "assistant".into(),
            content: (!self.content.is_empty()).then_some(self.content),
            tool_calls: calls,
            tool_call_id: None,
        })
    }
}

/// Reads a completion leniently; tool calls without an id get one.
fn parse(text: &str) -> Result<ChatMessage, LlmError> {
    let completion: Completion =
        serde_json::from_str(text).map_err(|e| LlmError::Malformed(e.to_string()))?;
    let mut message = completion
        .choices
        .into_iter()
        .next()
        .map(|c| c.message)
        .ok_or_else(|| LlmError::Malformed("no choices".into()))?;
    if message.role.is_empty() {
        message.role = "assistant".into();
    }
    for (i, call) in message.tool_calls.iter_mut().enumerate() {
        if call.id.is_empty() {
            call.id = format!("call_{i}");
        }
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_carry_no_credentials() {
        assert_eq!(
            display_url("https://user:s3cret@llm.example:8443/v1/chat/completions?key=k3y#x"),
            "https://llm.example:8443/v1/chat/completions"
        );
        assert_eq!(display_url("not a url"), "(an unparsable URL)");
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_named_by_its_url() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr").port()
        };
        let client = LlmClient::new(LlmConfig::new(
            &format!("http://u:pw@127.0.0.1:{port}/v1"),
            "m",
        ));
        let e = client
            .probe(Duration::from_secs(2))
            .await
            .expect_err("nothing listens there");
        let text = e.to_string();
        assert!(
            text.contains(&format!("http://127.0.0.1:{port}/v1/models")),
            "{text}"
        );
        assert!(!text.contains("pw"), "{text}");
    }

    #[test]
    fn lenient_shapes_parse() {
        // No id/object/created, arguments as an object, tool_calls null on a text answer.
        let m = parse(r#"{"choices":[{"message":{"role":"assistant","content":null,
            "tool_calls":[{"function":{"name":"execute_query","arguments":{"query":"SELECT 1"}}}]}}]}"#)
            .expect("parses");
        assert_eq!(m.tool_calls[0].id, "call_0");
        assert_eq!(
            m.tool_calls[0].function.arguments,
            r#"{"query":"SELECT 1"}"#
        );
        let m = parse(r#"{"choices":[{"message":{"content":"hi","tool_calls":null}}]}"#)
            .expect("parses");
        assert_eq!(
            (m.role.as_str(), m.content.as_deref()),
            ("assistant", Some("hi"))
        );
        assert!(parse(r#"{"choices":[]}"#).is_err());
        assert!(parse("not json").is_err());
    }

    #[test]
    fn streamed_deltas_assemble_text_and_tool_calls() {
        let mut m = StreamedMessage::default();
        let t = m
            .feed(r#"{"choices":[{"delta":{"role":"assistant","content":"Hel"}}]}"#)
            .expect("feeds");
        assert_eq!(t.as_deref(), Some("Hel"));
        m.feed(r#"{"choices":[{"delta":{"content":"lo"}}]}"#)
            .expect("feeds");
        m.feed(r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"execute_query","arguments":"{\"query\":"}}]}}]}"#)
            .expect("feeds");
        m.feed(r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"SELECT 1\"}"}}]}}]}"#)
            .expect("feeds");
        m.feed(r#"{"choices":[]}"#).expect("an empty chunk is fine");
        let msg = m.finish().expect("finishes");
        assert_eq!(msg.content.as_deref(), Some("Hello"));
        assert_eq!(msg.tool_calls.len(), 1);
        assert_eq!(msg.tool_calls[0].id, "c1");
        assert_eq!(
            msg.tool_calls[0].function.arguments,
            r#"{"query":"SELECT 1"}"#
        );
        let mut bad = StreamedMessage::default();
        assert!(bad.feed("not json").is_err());
        assert!(
            bad.feed(r#"{"choices":[{"delta":{"tool_calls":[{"index":999}]}}]}"#)
                .is_err()
        );
    }
}
