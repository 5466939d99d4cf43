//! The telemetry thread: it takes batches of ended spans from the queue runs push them onto,
//! turns them into OpenTelemetry's form there (off the runs' path), exports them, and counts
//! what the collector accepted and what failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter;
use parking_lot::Mutex;

use crate::data::spans::QUEUE;

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

/// Starts the thread exporting the queue through `exporter` until the queue stops, then
/// shutting the exporter down within `shutdown_timeout`.
pub(crate) fn spawn<E: SpanExporter + 'static>(
    mut exporter: E,
    resource: &Resource,
    counts: Arc<SpanCounts>,
    shutdown_timeout: Duration,
) -> std::io::Result<JoinHandle<()>> {
    exporter.set_resource(resource);
    std::thread::Builder::new()
        .name("dspex-telemetry".to_owned())
        .spawn(move || {
            let scope = InstrumentationScope::builder("dspex")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build();
            let mut since = Instant::now();
            loop {
                let mut batch = QUEUE.next_batch(since);
                since = Instant::now();
                let spans = std::mem::take(&mut batch.spans);
                if !spans.is_empty() {
                    let count = spans.len() as u64;
                    let data = spans
                        .into_iter()
                        .map(|span| span.into_span_data(&scope))
                        .collect();
                    match futures_executor::block_on(exporter.export(data)) {
                        Ok(()) => {
                            counts.exported.fetch_add(count, Ordering::Relaxed);
                        }
                        Err(e) => {
                            counts.failed.fetch_add(count, Ordering::Relaxed);
                            counts.failed_exports.fetch_add(1, Ordering::Relaxed);
                            *counts.last_error.lock() = Some(e.to_string());
                        }
                    }
                    since = Instant::now();
                }
                QUEUE.done(&batch);
                if batch.last {
                    break;
                }
            }
            if let Err(e) = exporter.shutdown_with_timeout(shutdown_timeout) {
                tracing::warn!(error = %e, "telemetry: the exporter did not shut down cleanly");
            }
        })
}
