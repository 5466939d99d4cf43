//! The telemetry thread: it takes batches of ended spans from the queue runs push them onto,
//! encodes them there (off the runs' path) and exports them, directly for `http/protobuf`
//! ([`super::otlp`]) or through the OpenTelemetry SDK's exporter, and counts what the collector
//! accepted and what failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter as _;
use parking_lot::Mutex;
use prost::bytes::Bytes;

use super::otlp::OtlpEncoder;
use crate::data::spans::{QUEUE, SpanRecord};

/// The instrumentation scope of dspex's spans.
const SCOPE_NAME: &str = "dspex";

/// What became of the spans handed to the exporter.
#[derive(Debug, Default)]
pub(crate) struct SpanCounts {
    exported: AtomicU64,
    failed: AtomicU64,
    failed_exports: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl SpanCounts {
    /// Spans the collector accepted.
    pub(crate) fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Spans in exports that failed.
    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Exports that failed.
    pub(crate) fn failed_exports(&self) -> u64 {
        self.failed_exports.load(Ordering::Relaxed)
    }

    /// Why the last failed export failed.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }
}

/// Where the telemetry thread sends batches: the direct OTLP/HTTP protobuf export, or the
/// OpenTelemetry SDK's exporter (`http/json`, `grpc`).
#[derive(Debug)]
pub(crate) enum Exporter {
    /// `http/protobuf`: encoded from the records ([`OtlpEncoder`]), POSTed with reqwest.
    Direct(DirectHttp),
    /// The SDK's exporter, fed `SpanData`.
    Sdk(Box<opentelemetry_otlp::SpanExporter>),
}

/// What the direct export needs to send: the URL, the headers and the request timeout.
#[derive(Debug)]
pub(crate) struct DirectHttp {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
}

/// The direct export as the telemetry thread runs it.
struct DirectSender {
    client: reqwest::blocking::Client,
    url: String,
    encoder: OtlpEncoder,
    /// The request's bytes, kept from one batch to the next when the client gave them back.
    buffer: Vec<u8>,
}

impl DirectSender {
    /// The client is built here, on the telemetry thread: reqwest's blocking client must not
    /// be made or dropped inside a Tokio runtime, where `install` may be called.
    fn new(http: DirectHttp, encoder: OtlpEncoder) -> Result<Self, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/x-protobuf"),
        );
        for (name, value) in &http.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header `{}`: {e}", dspex_core::excerpt(name)))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| format!("header `{name}`: {e}"))?;
            headers.insert(name, value);
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(http.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            url: http.url,
            encoder,
            buffer: Vec::new(),
        })
    }

    fn export(&mut self, spans: &[SpanRecord]) -> Result<(), String> {
        self.encoder.encode(spans, &mut self.buffer);
        let body = Bytes::from(std::mem::take(&mut self.buffer));
        let sent = self.client.post(&self.url).body(body.clone()).send();
        let answer = sent.map_err(|e| e.to_string()).and_then(|response| {
            let status = response.status();
            let text = response.bytes().map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!(
                    "the collector answered {status}: {}",
                    dspex_core::excerpt(&String::from_utf8_lossy(&text))
                ))
            }
        });
        if let Ok(buffer) = body.try_into_mut() {
            self.buffer = buffer.into();
        }
        answer
    }
}

/// The exporter as the telemetry thread holds it.
enum Lane {
    Direct(DirectSender),
    Sdk(Box<opentelemetry_otlp::SpanExporter>),
}

impl Lane {
    /// Exports `spans`; an error says why not.
    fn export(&mut self, spans: &[SpanRecord], scope: &InstrumentationScope) -> Result<(), String> {
        match self {
            Self::Direct(sender) => sender.export(spans),
            Self::Sdk(exporter) => {
                let data = spans.iter().map(|s| s.to_span_data(scope)).collect();
                futures_executor::block_on(exporter.export(data)).map_err(|e| e.to_string())
            }
        }
    }
}

/// Starts the thread exporting the queue through `exporter` until the queue stops, then
/// shutting the exporter down within `shutdown_timeout`; an error if the thread cannot start
/// or the direct export's client cannot be built.
pub(crate) fn spawn(
    exporter: Exporter,
    resource: &Resource,
    counts: Arc<SpanCounts>,
    shutdown_timeout: Duration,
) -> Result<JoinHandle<()>, String> {
    let version = env!("CARGO_PKG_VERSION");
    let scope = InstrumentationScope::builder(SCOPE_NAME)
        .with_version(version)
        .build();
    let exporter = match exporter {
        Exporter::Direct(http) => Ok((http, OtlpEncoder::new(resource, SCOPE_NAME, version))),
        Exporter::Sdk(mut exporter) => {
            exporter.set_resource(resource);
            Err(exporter)
        }
    };
    let (ready, started) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("dspex-telemetry".to_owned())
        .spawn(move || {
            let mut lane = match exporter {
                Ok((http, encoder)) => match DirectSender::new(http, encoder) {
                    Ok(sender) => Lane::Direct(sender),
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                },
                Err(exporter) => Lane::Sdk(exporter),
            };
            let _ = ready.send(Ok(()));
            let mut spare = Vec::new();
            let mut since = Instant::now();
            loop {
                let mut batch = QUEUE.next_batch(since, spare);
                since = Instant::now();
                let mut spans = std::mem::take(&mut batch.spans);
                if !spans.is_empty() {
                    let count = spans.len() as u64;
                    match lane.export(&spans, &scope) {
                        Ok(()) => {
                            counts.exported.fetch_add(count, Ordering::Relaxed);
                        }
                        Err(e) => {
                            counts.failed.fetch_add(count, Ordering::Relaxed);
                            counts.failed_exports.fetch_add(1, Ordering::Relaxed);
                            *counts.last_error.lock() = Some(e);
                        }
                    }
                    since = Instant::now();
                }
                spans.clear();
                spare = spans;
                QUEUE.done(&batch);
                if batch.last {
                    break;
                }
            }
            if let Lane::Sdk(exporter) = &mut lane
                && let Err(e) = exporter.shutdown_with_timeout(shutdown_timeout)
            {
                tracing::warn!(error = %e, "telemetry: the exporter did not shut down cleanly");
            }
        })
        .map_err(|e| format!("cannot start its export thread: {e}"))?;
    match started.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(format!("cannot build the OTLP/HTTP client: {e}"))
        }
        Err(_) => Err("the export thread ended before it started".to_owned()),
    }
}
