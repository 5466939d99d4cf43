//! OpenTelemetry traces of runs, over OTLP (feature `otel`).
//!
//! [`init`] installs a global `tracing` subscriber whose only layer turns dspex's spans into
//! OpenTelemetry spans and exports them in batches, and returns a [`TelemetryGuard`] that
//! flushes what is left when it drops:
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
//!   [`Telemetry::capture_message_content`]); API keys never.
//!
//! The standard variables configure it: `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4318`, or `:4317` for gRPC), `OTEL_EXPORTER_OTLP_PROTOCOL`
//! (`http/protobuf`, the default, `http/json` or `grpc`), `OTEL_SERVICE_NAME` (default
//! `dspex`) and `OTEL_SDK_DISABLED=true` (nothing is installed). An unreachable collector never
//! fails or slows a run: spans wait in a bounded queue ([`MAX_QUEUED_SPANS`]) that a
//! background thread exports; what cannot be queued or exported is counted
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

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use self::export::{CountingExporter, CountingProcessor, SpanCounts};
use crate::data::spans;
use crate::error::{Cause, Error, Result};

/// The most spans waiting for export; a span ended while the queue is full is dropped and
/// counted, so a slow or absent collector costs a run no memory beyond this.
pub const MAX_QUEUED_SPANS: usize = 2048;
/// The most spans in one export request.
pub const MAX_SPANS_PER_EXPORT: usize = 512;
/// How long spans may wait before the background thread exports them.
pub const EXPORT_DELAY: Duration = Duration::from_millis(500);
/// How long one export request may take before it is given up (its spans counted as lost).
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

    /// Installs the exporting subscriber as the process's global `tracing` subscriber; an
    /// error if the exporter cannot be built or a global subscriber is already set. Disabled
    /// (`OTEL_SDK_DISABLED=true`), it installs nothing and returns an idle guard.
    pub fn install(self) -> Result<TelemetryGuard> {
        let counts = Arc::new(SpanCounts::default());
        if self.disabled {
            return Ok(TelemetryGuard {
                provider: None,
                counts,
            });
        }
        let exporter = self.exporter()?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_max_export_batch_size(MAX_SPANS_PER_EXPORT)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let processor =
            BatchSpanProcessor::builder(CountingExporter::new(exporter, Arc::clone(&counts)))
                .with_batch_config(batch)
                .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(CountingProcessor::new(processor, Arc::clone(&counts)))
            .with_resource(
                Resource::builder()
                    .with_service_name(self.service_name.clone())
                    .build(),
            )
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("dspex"))
            // The spans carry the attributes dspex gives them, not where in its code they
            // were made, nor on which thread.
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_level(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target() == spans::SPAN_TARGET
            }));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber).map_err(|e| Error::Telemetry {
            message: "cannot install its subscriber: this process already has a global tracing subscriber".to_owned(),
            source: Some(Cause::other(e)),
        })?;
        opentelemetry::global::set_tracer_provider(provider.clone());
        spans::set_capture_message_content(self.capture_message_content);
        Ok(TelemetryGuard {
            provider: Some(provider),
            counts,
        })
    }

    fn exporter(&self) -> Result<opentelemetry_otlp::SpanExporter> {
        let target = self.target();
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
                .with_timeout(EXPORT_TIMEOUT)
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
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        };
        built.map_err(|e| Error::Telemetry {
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

/// Installs telemetry as the standard `OTEL_*` variables configure it
/// ([`Telemetry::from_env`], then [`Telemetry::install`]).
pub fn init() -> Result<TelemetryGuard> {
    Telemetry::from_env()?.install()
}

/// Keeps telemetry exporting; when it drops, the spans still queued are exported (each
/// request bounded by [`EXPORT_TIMEOUT`]) and the exporter stops.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    counts: Arc<SpanCounts>,
}

impl TelemetryGuard {
    /// Exports the spans ended so far and waits for the collector's answer; an error if an
    /// export failed.
    pub fn flush(&self) -> Result<()> {
        match &self.provider {
            Some(provider) => provider.force_flush().map_err(|e| Error::Telemetry {
                message: "the spans could not be exported".to_owned(),
                source: Some(Cause::other(e)),
            }),
            None => Ok(()),
        }
    }

    /// Spans the collector accepted.
    pub fn spans_exported(&self) -> u64 {
        self.counts.exported()
    }

    /// Spans ended but not exported: dropped from a full queue, or in an export that failed.
    /// Read it after a [`flush`](Self::flush): until then, spans still queued count too.
    pub fn spans_lost(&self) -> u64 {
        self.counts.lost()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "telemetry: the last spans could not be exported");
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
    fn http_sends_to_the_traces_path_of_the_endpoint_and_grpc_to_the_endpoint() {
        let settings = |endpoint: Option<&str>, protocol| Telemetry {
            endpoint: endpoint.map(str::to_owned),
            protocol,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            disabled: false,
            capture_message_content: false,
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
        };
        let e = settings.exporter().unwrap_err();
        assert!(e.to_string().contains("needs a Tokio runtime"), "{e}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { settings.exporter().unwrap() });
    }

    #[test]
    fn disabled_telemetry_installs_nothing() {
        let guard = Telemetry {
            endpoint: None,
            protocol: Protocol::HttpProtobuf,
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            disabled: true,
            capture_message_content: true,
        }
        .install()
        .unwrap();
        assert!(guard.provider.is_none());
        guard.flush().unwrap();
        assert_eq!(guard.spans_exported(), 0);
        assert!(!spans::capture_message_content());
    }
}
