//! Native `Predict` against the loopback OpenAI-compatible test server, beside a bare HTTP POST
//! of the same body to it (target: <= 1.2 x, same run).
//!
//! `cargo bench -p dspex --bench native_lm`
//!
//! - `native_lm/Predict.forward`: the whole native step: the prompt built as DSPy's
//!   ChatAdapter builds it, the request through the LM client (concurrency slot, retry loop,
//!   bounded body read), the completion decoded and the reply read per field type.
//! - `native_lm/bare POST`: the same request body, already encoded, POSTed with a plain
//!   `reqwest` client (same settings) and its reply read as bytes, nothing decoded.
//!
//! Both talk to one server over kept-alive loopback connections; the ratio is the median of
//! interleaved rounds.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use dspex::Predict;
use dspex::lm::{LmClient, LmRequest, chat_messages, default_instructions};
use dspex::{Fields, LmConfig, Module, Params, Signature};
use dspex_test_lm::{LmServer, Reply};

struct Setup {
    rt: tokio::runtime::Runtime,
    _server: LmServer,
    predict: Predict,
    inputs: Fields,
    params: Params,
    http: reqwest::Client,
    url: String,
    body: Vec<u8>,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(LmServer::start()).unwrap();
    server.set_default(Reply::text(
        "[[ ## answer ## ]]\nParis is the capital of France.\n\n[[ ## completed ## ]]",
    ));
    let lm = Arc::new(LmClient::new(LmConfig::openai(server.base_url(), "bench-model")).unwrap());
    let signature: Signature = "question -> answer".parse().unwrap();
    let inputs = Fields::from([("question", "What is the capital of France?")]);
    let request = LmRequest {
        messages: chat_messages(&signature, &default_instructions(&signature), &[], &inputs),
        ..LmRequest::default()
    };
    let body = serde_json::to_vec(&lm.body(&request)).unwrap();
    let predict = Predict::new("question -> answer").unwrap().lm(lm);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .unwrap();
    Setup {
        url: format!("{}/chat/completions", server.base_url()),
        rt,
        _server: server,
        predict,
        inputs,
        params: Params::default(),
        http,
        body,
    }
}

impl Setup {
    fn predict(&self) -> Duration {
        let started = Instant::now();
        let out = self
            .rt
            .block_on(self.predict.forward(&self.inputs, &self.params))
            .unwrap();
        let elapsed = started.elapsed();
        black_box(out);
        elapsed
    }

    fn bare_post(&self) -> Duration {
        let started = Instant::now();
        let bytes = self.rt.block_on(async {
            self.http
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(self.body.clone())
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
        let elapsed = started.elapsed();
        black_box(bytes);
        elapsed
    }
}

fn native_lm(c: &mut Criterion) {
    let s = setup();
    let mut g = c.benchmark_group("native_lm");
    g.bench_function("Predict.forward", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| s.predict()).sum());
    });
    g.bench_function("bare POST", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| s.bare_post()).sum());
    });
    g.finish();
    ratio(&s);
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// The two interleaved, one call of each in turn; medians and their ratio.
fn ratio(s: &Setup) {
    const ROUNDS: usize = 3_000;
    let (mut predict, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        predict.push(s.predict());
        bare.push(s.bare_post());
    }
    let (predict, bare) = (median(&mut predict), median(&mut bare));
    println!("same-run medians, {ROUNDS} interleaved rounds:");
    println!(
        "  native Predict {predict:.1?} / bare POST of the same body {bare:.1?} = {:.2} (target <= 1.2)",
        predict.as_secs_f64() / bare.as_secs_f64()
    );
}

criterion_group!(benches, native_lm);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
