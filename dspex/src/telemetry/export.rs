//! Counting what the batch exporter does with the spans: how many ended, how many the
//! collector accepted, so that what a full queue dropped or a failed export lost is known.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// The spans ended and exported since telemetry started.
#[derive(Debug, Default)]
pub(crate) struct SpanCounts {
    ended: AtomicU64,
    exported: AtomicU64,
}

impl SpanCounts {
    pub(crate) fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    pub(crate) fn lost(&self) -> u64 {
        self.ended
            .load(Ordering::Relaxed)
            .saturating_sub(self.exported())
    }
}

/// A span processor that counts the spans ended before handing them on.
#[derive(Debug)]
pub(crate) struct CountingProcessor<P> {
    inner: P,
    counts: Arc<SpanCounts>,
}

impl<P> CountingProcessor<P> {
    pub(crate) fn new(inner: P, counts: Arc<SpanCounts>) -> Self {
        Self { inner, counts }
    }
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.counts.ended.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A span exporter that counts the spans of each export the collector accepted.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: E,
    counts: Arc<SpanCounts>,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(inner: E, counts: Arc<SpanCounts>) -> Self {
        Self { inner, counts }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let outcome = self.inner.export(batch).await;
        if outcome.is_ok() {
            self.counts.exported.fetch_add(spans, Ordering::Relaxed);
        }
        outcome
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
