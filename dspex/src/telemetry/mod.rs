//! OpenTelemetry traces of runs, over OTLP (feature `otel`).
//!
//! [`init`] starts recording the spans of runs and exporting them in batches from a thread of
//! its own, and returns a [`TelemetryGuard`] that flushes what is left when it drops:
//!
//! - a run is `invoke_workflow {program}`, each step `step {step}` with the values it used as
//!   `dspex.param.<parameter>`, each LM call `chat {model}` with the GenAI semantic
//!   conventions' attributes (`gen_ai.operation.name`, `gen_ai.provider.name`,
//!   `gen_ai.request.model`, `gen_ai.request.temperature`, `gen_ai.request.max_tokens`,
//!   `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`), each tool call
//!   `execute_tool {tool}` with `gen_ai.tool.name`; a failure is the span's error status;
//! - a python step's LM calls are spans of the same trace, children of the step's span, and so
//!   are the Rust tools its agent calls;
//! - message contents (`gen_ai.input.messages`, `gen_ai.output.messages`) only when
//!   `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (or
//!   [`Telemetry::capture_message_content`]), on the LM calls of both lanes (a python step's
//!   worker sends them with its reply), for at most
//!   [`MAX_CAPTURED_CALLS_PER_RUN`](crate::MAX_CAPTURED_CALLS_PER_RUN) calls and
//!   [`MAX_CAPTURED_BYTES_PER_RUN`](crate::MAX_CAPTURED_BYTES_PER_RUN) bytes per run; API keys
//!   never.
//!
//! A span is recorded as plain data where it happens (its ids made when it starts, so a step's
//! span id is known before its python call carries it) and pushed, when it ends, onto a
//! bounded queue; names, attributes and the OTLP encoding are made by the telemetry thread.
//! For `http/protobuf`, the default, that thread encodes the export request straight from the
//! records (no OpenTelemetry `SpanData`, no message structs: a sixth of the instructions per
//! span the SDK's exporter took, see the README's Performance section) and sends it with
//! reqwest. `http/json` and `grpc` keep the OpenTelemetry SDK's exporter: JSON's OTLP mapping
//! (hex ids, 64-bit integers as strings) would be a second encoder to keep exact for a
//! protocol chosen for readability, not speed, and gRPC needs tonic's channel on a Tokio
//! runtime, which the SDK's exporter already drives.
//! A python step's worker returns its LM calls' times with its reply, and this process makes
//! their spans: the worker needs no OpenTelemetry SDK, and one exporter, one configuration,
//! sends the whole trace.
//!
//! The standard variables configure it: `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4318`, or `:4317` for gRPC), `OTEL_EXPORTER_OTLP_PROTOCOL`
//! (`http/protobuf`, the default, `http/json` or `grpc`), `OTEL_SERVICE_NAME` (default
//! `dspex`), `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, default [`EXPORT_TIMEOUT`]) and
//! `OTEL_SDK_DISABLED=true` (nothing is installed); `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or
//! else `OTEL_EXPORTER_OTLP_HEADERS` (`name=value,...`, values percent-encoded) are sent with
//! every request. An unreachable collector never fails or
//! slows a run: spans wait in a bounded queue ([`MAX_QUEUED_SPANS`]) that the telemetry
//! thread exports; a span that finds it full is dropped and counted
//! ([`TelemetryGuard::spans_dropped`]), as are the spans of a failed export
//! ([`TelemetryGuard::spans_lost`]). The `grpc` protocol needs [`init`] to be called inside a
//! Tokio runtime.
//!
//! ```no_run
//! # async fn f() -> dspex::Result<()> {
//! let _telemetry = dspex::telemetry::init()?;
//! // ... run programs; the guard flushes the last spans when it drops.
//! # Ok(()) }
//! ```

mod export;
mod otlp;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::Resource;

use self::export::{DirectHttp, Exporter, SpanCounts};
pub use crate::data::span_queue::{EXPORT_DELAY, MAX_QUEUED_SPANS, MAX_SPANS_PER_EXPORT};
use crate::data::spans::{self, QUEUE};
use crate::error::{Cause, Error, Result};

/// How long one export request may take, unless `OTEL_EXPORTER_OTLP_TIMEOUT` or
/// [`Telemetry::export_timeout`] says otherwise, before it is given up (its spans counted as
/// lost).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
const DEFAULT_SERVICE_NAME: &str = "dspex";
const TRACES_PATH: &str = "/v1/traces";

/// The OTLP transport and encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Protobuf over HTTP (`http/protobuf`), the default.
    HttpProtobuf,
    /// JSON over HTTP (`http/json`).
    HttpJson,
    /// gRPC (`grpc`).
    Grpc,
}

impl Protocol {
    /// The protocol named as `OTEL_EXPORTER_OTLP_PROTOCOL` names it.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Ok(Self::HttpJson),
            "grpc" => Ok(Self::Grpc),
            other => Err(Error::InvalidOption {
                option: "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
                message: format!(
                    "`{}` is no OTLP protocol; it must be one of `http/protobuf`, `http/json`, `grpc`",
                    dspex_core::excerpt(other)
                ),
            }),
        }
    }
}

/// The telemetry settings: [`Telemetry::from_env`] reads the standard variables, the methods
/// change one setting, [`Telemetry::install`] starts exporting.
#[derive(Debug, Clone)]
pub struct Telemetry {
    endpoint: Option<String>,
    protocol: Protocol,
    service_name: String,
    disabled: bool,
    capture_message_content: bool,
    timeout: Duration,
    headers: Vec<(String, String)>,
}

impl Telemetry {
    /// The settings the standard `OTEL_*` variables give; an error names a variable whose value
    /// is not one it may take.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let protocol = match var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(name) => Protocol::parse(name.trim())?,
            None => Protocol::HttpProtobuf,
        };
        Ok(Self {
            endpoint: var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            protocol,
            service_name: var("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
            disabled: flag("OTEL_SDK_DISABLED", var("OTEL_SDK_DISABLED"))?,
            capture_message_content: flag(
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                var("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
            )?,
            timeout: match var("OTEL_EXPORTER_OTLP_TIMEOUT") {
                Some(ms) => millis("OTEL_EXPORTER_OTLP_TIMEOUT", &ms)?,
                None => EXPORT_TIMEOUT,
            },
            headers: match var("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
                Some(list) => headers("OTEL_EXPORTER_OTLP_TRACES_HEADERS", &list)?,
                None => match var("OTEL_EXPORTER_OTLP_HEADERS") {
                    Some(list) => headers("OTEL_EXPORTER_OTLP_HEADERS", &list)?,
                    None => Vec::new(),
                },
            },
        })
    }

    /// The collector's base URL (`http://host:4318`; traces go to its `/v1/traces`), or for
    /// gRPC its address.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The OTLP protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The `service.name` of the spans.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// Whether LM call spans carry the messages and the reply.
    pub fn capture_message_content(mut self, on: bool) -> Self {
        self.capture_message_content = on;
        self
    }

    /// How long one export request may take before it is given up.
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL or address the exporter sends to.
    fn target(&self) -> String {
        let base = self.endpoint.as_deref().unwrap_or(match self.protocol {
            Protocol::Grpc => DEFAULT_GRPC_ENDPOINT,
            _ => DEFAULT_HTTP_ENDPOINT,
        });
        match self.protocol {
            Protocol::Grpc => base.to_owned(),
            _ => format!("{}{TRACES_PATH}", base.trim_end_matches('/')),
        }
    }

    /// Starts recording the spans of runs and exporting them from a thread of its own; an
    /// error if the exporter cannot be built or telemetry is installed already (until its
    /// guard drops). Disabled (`OTEL_SDK_DISABLED=true`), it installs nothing and returns an
    /// idle guard.
    pub fn install(self) -> Result<TelemetryGuard> {
        let counts = Arc::new(SpanCounts::default());
        if self.disabled {
            return Ok(TelemetryGuard {
                thread: None,
                counts,
            });
        }
        let exporter = self.exporter()?;
        if !QUEUE.enable() {
            return Err(Error::Telemetry {
                message: "telemetry is installed already in this process (drop its guard first)"
                    .to_owned(),
                source: None,
            });
        }
        spans::set_capture_message_content(self.capture_message_content);
        let resource = Resource::builder()
            .with_service_name(self.service_name.clone())
            .build();
        match export::spawn(exporter, &resource, Arc::clone(&counts), self.timeout) {
            Ok(thread) => Ok(TelemetryGuard {
                thread: Some(thread),
                counts,
            }),
            Err(message) => {
                QUEUE.stop();
                Err(Error::Telemetry {
                    message,
                    source: None,
                })
            }
        }
    }

    fn exporter(&self) -> Result<Exporter> {
        let target = self.target();
        if self.protocol == Protocol::HttpProtobuf {
            return Ok(Exporter::Direct(DirectHttp {
                url: target,
                headers: self.headers.clone(),
                timeout: self.timeout,
            }));
        }
        if self.protocol == Protocol::Grpc && tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Telemetry {
                message: "the `grpc` OTLP protocol needs a Tokio runtime: install telemetry from inside one (in `#[tokio::main]`), or use `http/protobuf`".to_owned(),
                source: None,
            });
        }
        let built = match self.protocol {
            Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(target.clone())
                .with_timeout(self.timeout)
                .build(),
            http => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(if http == Protocol::HttpJson {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                })
                .with_headers(Default::default())
                .with_endpoint(target.clone())
                .with_timeout(self.timeout)
                .build(),
        };
        built
            .map(|e| Exporter::Sdk(Box::new(e)))
            .map_err(|e| Error::Telemetry {
                message: format!(
                    "the OTLP exporter to {} cannot be built",
                    dspex_core::excerpt(&target)
                ),
                source: Some(Cause::other(e)),
            })
    }
}

/// A boolean `OTEL_*` variable: `true` or `false` in any case, absent is false.
fn flag(name: &str, value: Option<String>) -> Result<bool> {
    match value.as_deref().map(str::trim) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(Error::InvalidOption {
            option: name.to_owned(),
            message: format!("`{}` must be `true` or `false`", dspex_core::excerpt(v)),
        }),
    }
}

/// A duration in milliseconds, as `OTEL_*_TIMEOUT` variables give it.
fn millis(name: &str, value: &str) -> Result<Duration> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| Error::InvalidOption {
            option: name.to_owned(),
            message: format!(
                "`{}` must be a whole number of milliseconds",
                dspex_core::excerpt(value)
            ),
        })
}

/// The headers of an `OTEL_*_HEADERS` variable: `name=value` pairs separated by commas, each
/// value percent-decoded.
fn headers(name: &str, list: &str) -> Result<Vec<(String, String)>> {
    let invalid = |why: &str| Error::InvalidOption {
        option: name.to_owned(),
        message: format!(
            "`{}` {why}; it must be `name=value` pairs separated by commas",
            dspex_core::excerpt(list)
        ),
    };
    let mut out = Vec::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid("has a pair without `=`"))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(invalid("has a pair without a name"));
        }
        let value = percent_decode(value).ok_or_else(|| invalid("has a bad `%` escape"))?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// `text` with each `%XX` replaced by the byte it names; `None` for a `%` not followed by two
/// hex digits or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Installs telemetry as the standard `OTEL_*` variables configure it
/// ([`Telemetry::from_env`], then [`Telemetry::install`]).
pub fn init() -> Result<TelemetryGuard> {
    Telemetry::from_env()?.install()
}

/// Keeps telemetry exporting; when it drops, recording stops, the spans still queued are
/// exported (each request bounded by the export timeout) and the exporter stops.
#[derive(Debug)]
pub struct TelemetryGuard {
    thread: Option<JoinHandle<()>>,
    counts: Arc<SpanCounts>,
}

impl TelemetryGuard {
    /// Exports the spans ended so far and waits for the collector's answers; an error if an
    /// export failed meanwhile.
    pub fn flush(&self) -> Result<()> {
        if self.thread.is_none() {
            return Ok(());
        }
        let failed_before = self.counts.failed_exports();
        QUEUE.flush();
        if self.counts.failed_exports() == failed_before {
            return Ok(());
        }
        Err(Error::Telemetry {
            message: format!(
                "the spans could not be exported: {}",
                self.counts.last_error().unwrap_or_default()
            ),
            source: None,
        })
    }

    /// Spans the collector accepted.
    pub fn spans_exported(&self) -> u64 {
        self.counts.exported()
    }

    /// Spans dropped, never sent, because the queue held [`MAX_QUEUED_SPANS`] already when
    /// they ended.
    pub fn spans_dropped(&self) -> u64 {
        if self.thread.is_none() {
            return 0;
        }
        QUEUE.dropped()
    }

    /// Spans ended but not exported: [dropped](Self::spans_dropped) from a full queue, or in
    /// an export that failed. Spans still queued are not counted: read it after a
    /// [`flush`](Self::flush).
    pub fn spans_lost(&self) -> u64 {
        self.spans_dropped() + self.counts.failed()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            QUEUE.stop();
            if thread.join().is_err() {
                tracing::warn!("telemetry: the export thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocols_are_named_as_the_standard_variable_names_them() {
        assert_eq!(
            Protocol::parse("http/protobuf").unwrap(),
            Protocol::HttpProtobuf
        );
        assert_eq!(Protocol::parse("http/json").unwrap(), Protocol::HttpJson);
        assert_eq!(Protocol::parse("grpc").unwrap(), Protocol::Grpc);
        let e = Protocol::parse("thrift").unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_PROTOCOL: `thrift` is no OTLP protocol; it must be one of `http/protobuf`, `http/json`, `grpc`"
        );
    }

    #[test]
    fn a_flag_is_true_or_false_and_anything_else_is_an_error_naming_it() {
        assert!(flag("OTEL_SDK_DISABLED", Some("TRUE".to_owned())).unwrap());
        assert!(!flag("OTEL_SDK_DISABLED", Some("false".to_owned())).unwrap());
        assert!(!flag("OTEL_SDK_DISABLED", None).unwrap());
        let e = flag("OTEL_SDK_DISABLED", Some("yes".to_owned())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_SDK_DISABLED: `yes` must be `true` or `false`"
        );
    }

    #[test]
    fn a_timeout_is_whole_milliseconds() {
        assert_eq!(
            millis("OTEL_EXPORTER_OTLP_TIMEOUT", "2500").unwrap(),
            Duration::from_millis(2500)
        );
        let e = millis("OTEL_EXPORTER_OTLP_TIMEOUT", "2.5s").unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_EXPORTER_OTLP_TIMEOUT: `2.5s` must be a whole number of milliseconds"
        );
    }

    #[test]
    fn headers_are_named_pairs_with_percent_decoded_values() {
        assert_eq!(
            headers("OTEL_EXPORTER_OTLP_HEADERS", " api-key=a%20b%2C , x=1,").unwrap(),
            vec![
                ("api-key".to_owned(), "a b,".to_owned()),
                ("x".to_owned(), "1".to_owned())
            ]
        );
        for (bad, why) in [
            ("api-key", "has a pair without `=`"),
            ("=1", "has a pair without a name"),
            ("k=%2", "has a bad `%` escape"),
            ("k=%zz", "has a bad `%` escape"),
        ] {
            let e = headers("OTEL_EXPORTER_OTLP_HEADERS", bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "OTEL_EXPORTER_OTLP_HEADERS: `{bad}` {why}; it must be `name=value` pairs separated by commas"
                )
            );
        }
    }

    #[test]
    fn http_sends_to_the_traces_path_of_the_endpoint_and_grpc_to_the_endpoint() {
        let settings = |endpoint: Option<&str>, protocol| Telemetry {
            endpoint: endpoint.map(str::to_owned),
            protocol,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            disabled: false,
            capture_message_content: false,
            timeout: EXPORT_TIMEOUT,
            headers: Vec::new(),
        };
        assert_eq!(
            settings(None, Protocol::HttpProtobuf).target(),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            settings(Some("http://collector:4318/"), Protocol::HttpJson).target(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            settings(None, Protocol::Grpc).target(),
            "http://localhost:4317"
        );
    }

    #[test]
    fn grpc_outside_a_tokio_runtime_is_an_error_naming_the_runtime() {
        let settings = Telemetry {
            endpoint: None,
            protocol: Protocol::Grpc,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            disabled: false,
            capture_message_content: false,
            timeout: EXPORT_TIMEOUT,
            headers: Vec::new(),
        };
        let e = settings.exporter().unwrap_err();
        assert!(e.to_string().contains("needs a Tokio runtime"), "{e}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { assert!(matches!(settings.exporter(), Ok(Exporter::Sdk(_)))) });
    }

    #[test]
    fn disabled_telemetry_installs_nothing() {
        let guard = Telemetry {
            endpoint: None,
            protocol: Protocol::HttpProtobuf,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            disabled: true,
            capture_message_content: true,
            timeout: EXPORT_TIMEOUT,
            headers: Vec::new(),
        }
        .install()
        .unwrap();
        assert!(guard.thread.is_none());
        guard.flush().unwrap();
        assert_eq!(guard.spans_exported(), 0);
        assert!(!spans::capture_message_content());
    }
}
