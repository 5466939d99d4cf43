//! The native LM lane's HTTP transport (the `lm` feature): chat completions POSTed to an
//! OpenAI-compatible endpoint with `reqwest` (rustls), with a timeout per request, bounded
//! retries on 429 and 5xx honouring `Retry-After`, and a bounded reply size; streamed
//! requests read server-sent events as they arrive.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::Value as JsonValue;

use super::chat::reply_excerpt;
use super::chunk_scan::Usage;
use super::config::{LmConfig, MAX_LM_BACKOFF};
use super::gate::Gate;
use super::stream::{SseError, SseReader};
use crate::data::LmCall;
use crate::error::{Error, Result};
use tokio::sync::SemaphorePermit;
use tokio::time::Instant;

/// The largest reply body the client reads; a longer one is an error.
pub const MAX_LM_REPLY_BYTES: usize = 8 * 1024 * 1024;

/// An OpenAI-compatible endpoint: its client, its `chat/completions` URL and its key.
#[derive(Debug)]
pub(super) struct Endpoint {
    http: reqwest::Client,
    /// The client of streamed requests: no bound on the whole request, only on each wait.
    streaming: reqwest::Client,
    url: String,
    key: Option<String>,
}

impl Endpoint {
    /// The endpoint of `config` (an OpenAI-compatible one); an error if its key variable is not
    /// set.
    pub(super) fn new(config: &LmConfig) -> Result<Self> {
        let key = match &config.api_key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                Error::lm(format!(
                    "the API key variable `{var}` (LmConfig::api_key_env) is not set"
                ))
            })?),
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::lm_with("cannot build the HTTP client", e))?;
        let streaming = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::lm_with("cannot build the HTTP client", e))?;
        Ok(Self {
            http,
            streaming,
            url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            key,
        })
    }

    /// POSTs `body` (each attempt through `gate`) and returns the first choice's text, with the reported usage put in `call`.
    pub(super) async fn complete(
        &self,
        body: &JsonValue,
        call: &mut LmCall,
        gate: &Gate,
        config: &LmConfig,
    ) -> Result<String> {
        let url = &self.url;
        let (_slot, response) = self.open(body, &self.http, gate, config).await?;
        let reply = read_body(response)
            .await
            .map_err(|e| send_error_or(url, e, config))?;
        let completion: Completion = serde_json::from_slice(&reply).map_err(|e| {
            Error::lm_with(
                format!(
                    "{url} replied with no chat completion: {}",
                    reply_excerpt(&String::from_utf8_lossy(&reply))
                ),
                e,
            )
        })?;
        if let Some(usage) = completion.usage {
            call.prompt_tokens = usage.prompt_tokens;
            call.completion_tokens = usage.completion_tokens;
        }
        completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| {
                Error::lm(format!(
                    "{url} replied with no choice holding text: {}",
                    reply_excerpt(&String::from_utf8_lossy(&reply))
                ))
            })
    }

    /// POSTs `body` asking for a stream (`"stream": true`, usage in the final chunk) and hands
    /// each text delta to `on_text` as it arrives; the whole text, with the reported usage put
    /// in `call`. Only a request answered 429 or 5xx is retried, before any text came.
    /// [`LmConfig::timeout`] bounds the wait for the first byte and each gap between chunks.
    pub(super) async fn stream(
        &self,
        mut body: JsonValue,
        call: &mut LmCall,
        gate: &Gate,
        config: &LmConfig,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String> {
        let url = &self.url;
        if let Some(fields) = body.as_object_mut() {
            fields.insert("stream".to_owned(), JsonValue::Bool(true));
            fields.insert(
                "stream_options".to_owned(),
                serde_json::json!({"include_usage": true}),
            );
        }
        let (_slot, mut response) = self.open(&body, &self.streaming, gate, config).await?;
        let mut reader = SseReader::default();
        let mut text = String::new();
        // One timer for the whole stream, moved only when it fires: a chunk costs no timer.
        let mut last = Instant::now();
        let gap = tokio::time::sleep_until(last + config.timeout);
        let mut gap = pin!(gap);
        // Each poll reads every piece of the body that is ready, and the deltas of their
        // events go out together, as one piece of text.
        let ended = poll_fn(|cx| {
            let before = text.len();
            let mut read = false;
            let ended = loop {
                match pin!(response.chunk()).poll(cx) {
                    Poll::Ready(Ok(Some(chunk))) => {
                        read = true;
                        if let Err(e) = reader.push(&chunk, &mut text) {
                            break Some(Err(StreamError::Sse(e)));
                        }
                    }
                    Poll::Ready(Ok(None)) => break Some(Ok(())),
                    Poll::Ready(Err(e)) => break Some(Err(StreamError::Http(e))),
                    Poll::Pending => break None,
                }
            };
            if text.len() > before {
                on_text(&text[before..]);
            }
            if let Some(ended) = ended {
                return Poll::Ready(ended);
            }
            if read {
                last = Instant::now();
            }
            while gap.as_mut().poll(cx).is_ready() {
                let deadline = last + config.timeout;
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(StreamError::Silent));
                }
                gap.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await;
        match ended {
            Ok(()) => {}
            Err(StreamError::Silent) => {
                return Err(Error::lm(format!(
                    "{url} sent nothing in its stream within {:?} (LmConfig::timeout)",
                    config.timeout
                )));
            }
            Err(StreamError::Http(e)) => return Err(send_error(url, e, config)),
            Err(StreamError::Sse(e)) => return Err(e.into_error(url, &text)),
        }
        let before = text.len();
        let read = reader.end(&mut text);
        if text.len() > before {
            on_text(&text[before..]);
        }
        read.map_err(|e| e.into_error(url, &text))?;
        if let Some(usage) = reader.usage {
            call.prompt_tokens = usage.prompt_tokens;
            call.completion_tokens = usage.completion_tokens;
        }
        Ok(text)
    }

    /// POSTs `body` with `http`, retrying on 429 and 5xx; the successful response, its body
    /// not read, with the slot of `gate` it holds.
    async fn open<'g>(
        &self,
        body: &JsonValue,
        http: &reqwest::Client,
        gate: &'g Gate,
        config: &LmConfig,
    ) -> Result<(SemaphorePermit<'g>, reqwest::Response)> {
        let payload =
            serde_json::to_vec(body).map_err(|e| Error::lm_with("cannot encode the request", e))?;
        let (url, key) = (self.url.as_str(), self.key.as_deref());
        let mut retries = 0;
        loop {
            let (status, headers, body) = {
                let slot = gate.enter().await?;
                let mut post = http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(payload.clone());
                if let Some(key) = key {
                    post = post.bearer_auth(key);
                }
                let response = within(url, config, "did not reply", post.send()).await?;
                let status = response.status();
                if status.is_success() {
                    return Ok((slot, response));
                }
                let headers = response.headers().clone();
                (
                    status,
                    headers,
                    read_body(response)
                        .await
                        .map_err(|e| send_error_or(url, e, config))?,
                )
            };
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if !retryable || retries >= config.max_retries {
                let tries = if retryable {
                    format!(" after {} attempts", retries + 1)
                } else {
                    String::new()
                };
                return Err(Error::lm(format!(
                    "{url} answered {status}{tries}: {}",
                    reply_excerpt(&String::from_utf8_lossy(&body))
                )));
            }
            let wait = retry_after(&headers)
                .unwrap_or_else(|| config.backoff.saturating_mul(1u32 << retries.min(16)));
            tokio::time::sleep(wait.min(MAX_LM_BACKOFF)).await;
            retries += 1;
        }
    }
}

/// `io`, given at most [`LmConfig::timeout`]: past it, an error saying that `url` `what`.
async fn within<T>(
    url: &str,
    config: &LmConfig,
    what: &str,
    io: impl Future<Output = reqwest::Result<T>>,
) -> Result<T> {
    tokio::time::timeout(config.timeout, io)
        .await
        .map_err(|_| {
            Error::lm(format!(
                "{url} {what} within {:?} (LmConfig::timeout)",
                config.timeout
            ))
        })?
        .map_err(|e| send_error(url, e, config))
}

fn send_error(url: &str, e: reqwest::Error, config: &LmConfig) -> Error {
    if e.is_timeout() {
        Error::lm_with(
            format!(
                "{url} did not reply within {:?} (LmConfig::timeout)",
                config.timeout
            ),
            e,
        )
    } else {
        Error::lm_with(format!("cannot reach {url}"), e)
    }
}

fn send_error_or(url: &str, e: BodyError, config: &LmConfig) -> Error {
    match e {
        BodyError::Http(e) => send_error(url, e, config),
        BodyError::TooLong => Error::lm(format!(
            "{url} replied with more than {MAX_LM_REPLY_BYTES} bytes (MAX_LM_REPLY_BYTES)"
        )),
    }
}

/// Why a stream stopped before its end.
enum StreamError {
    /// Nothing came within [`LmConfig::timeout`].
    Silent,
    Http(reqwest::Error),
    Sse(SseError),
}

enum BodyError {
    Http(reqwest::Error),
    TooLong,
}

/// The body of `response`, at most [`MAX_LM_REPLY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> std::result::Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        if body.len() + chunk.len() > MAX_LM_REPLY_BYTES {
            return Err(BodyError::TooLong);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The wait a `Retry-After: <seconds>` header asks for (an HTTP date is not read: the backoff
/// applies then).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_LM_BACKOFF.as_secs_f64())))
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ReplyMessage,
}

#[derive(Deserialize)]
struct ReplyMessage {
    content: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "100000".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_LM_BACKOFF));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
