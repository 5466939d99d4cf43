//! The cost of telemetry on a native run (target: <= 1.05x with the exporter on): the same
//! program (one `ChainOfThought` step), run without telemetry, then with `dspex::telemetry`
//! installed and exporting in batches over OTLP/HTTP. Each run makes three spans (the run, its
//! step, its LM call). Two LMs, each measured both ways:
//!
//! - the scripted LM (in process: the run is little more than dspex's own work, the worst
//!   case for the ratio);
//! - an OpenAI-compatible LM over HTTP on loopback (`dspex-test-lm`), what users run.
//!
//! The collector is another process, as it is in production: this executable started again as
//! a sink that reads each export request whole and answers `200 OK` without decoding it (what
//! it costs the shared cores is a collector's least). So what is measured is dspex's cost:
//! recording on the run's path, and the telemetry thread encoding and sending the batches.
//!
//! `cargo bench -p dspex --features otel --bench otel`. First criterion's rows (telemetry off,
//! then installed for the rows exported), then the ratio measured the way the target reads it:
//! interleaved rounds, each a batch of runs without telemetry and a batch with it installed
//! (installed before the batch and flushed after it), for each LM. Per run: the wall time of
//! the batch, and the CPU time of the whole process (every thread, the telemetry thread
//! included, its flush after the batch too): on two cores the telemetry thread competes with
//! the run.
//!
//! For callgrind or perf, `DSPEX_BENCH_OTEL_PROFILE=on:N` (or `off:N`) makes N runs with the
//! scripted LM instead (`on:N:http`, `off:N:http`: with the LM over HTTP), exported (or not),
//! flushes and exits; the difference between two N is the cost of the runs alone.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/otel_common/mod.rs"]
mod otel_common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use dspex::prelude::*;
use dspex::telemetry::{Telemetry, TelemetryGuard};
use dspex_test_lm::{LmServer, Reply};
use otel_common::{Thinker, question, scripted_lm};

/// What the LM over HTTP answers every request.
const REPLY: &str = "[[ ## reasoning ## ]]\nRome is in Italy.\n\n[[ ## answer ## ]]\nItaly\n\n[[ ## completed ## ]]";

/// Set in the environment of this executable started again as the collector.
const SINK_ENV: &str = "DSPEX_BENCH_OTLP_SINK";
/// `on:N` or `off:N` (`:http` after): N runs to profile instead of the benchmark (see the
/// module's doc).
const PROFILE_ENV: &str = "DSPEX_BENCH_OTEL_PROFILE";

/// Interleaved rounds, and runs per batch (three spans each: a batch spans several exports,
/// and its spans all fit in the queue, so none is dropped and every one is exported).
const ROUNDS: usize = 30;
const RUNS: u32 = 600;
const _: () = assert!(3 * RUNS as usize <= dspex::telemetry::MAX_QUEUED_SPANS);

/// The collector: this executable in another process, listening on loopback until dropped.
struct Sink {
    child: Child,
    endpoint: String,
}

impl Sink {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SINK_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut endpoint = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut endpoint)
            .unwrap();
        assert!(endpoint.starts_with("http://"), "{endpoint:?}");
        Self {
            child,
            endpoint: endpoint.trim().to_owned(),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sink's process: answers `POST`s on a loopback port (printed on stdout) with `200 OK`
/// once their body is read, until its stdin closes (the bench ended, or died).
fn serve_sink() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("http://{}", listener.local_addr().unwrap());
        let traces = axum::routing::post(|_request: axum::body::Bytes| async { "" });
        let app = axum::Router::new()
            .route("/v1/traces", traces)
            .layer(axum::extract::DefaultBodyLimit::disable());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut tokio::io::sink()).await;
        server.abort();
    });
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    _lm_runtime: tokio::runtime::Runtime,
    _server: LmServer,
    sink: Sink,
    scripted: Thinker,
    http: Thinker,
}

fn setup() -> Setup {
    let lm_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = lm_runtime.block_on(async {
        let server = LmServer::start().await.unwrap();
        server.set_default(Reply::text(REPLY));
        server
    });
    let (scripted, http) = runtime.block_on(async {
        let scripted = Context::builder().lm(scripted_lm()).build().await.unwrap();
        let http_lm = LmConfig::openai(server.base_url(), "small");
        let http = Context::builder().lm(http_lm).build().await.unwrap();
        (
            Thinker::attach(&scripted).await.unwrap(),
            Thinker::attach(&http).await.unwrap(),
        )
    });
    Setup {
        runtime,
        _lm_runtime: lm_runtime,
        _server: server,
        sink: Sink::start(),
        scripted,
        http,
    }
}

impl Setup {
    fn run(&self, program: &Thinker) {
        let out = self
            .runtime
            .block_on(program.run(question("Where is Rome?")))
            .unwrap();
        assert_eq!(out.answer, "Italy");
    }

    fn install(&self) -> TelemetryGuard {
        self.runtime.block_on(async {
            Telemetry::from_env()
                .unwrap()
                .endpoint(&self.sink.endpoint)
                .install()
                .unwrap()
        })
    }
}

/// The CPU time of the whole process (every thread, user and system), from
/// `CLOCK_PROCESS_CPUTIME_ID`.
fn process_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Wall and CPU time per run of each batch.
#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Samples {
    /// A batch of runs, with telemetry installed for it when `guard` is given (flushed after
    /// it and dropped, within the CPU time measured; every span exported).
    fn batch(&mut self, s: &Setup, program: &Thinker, guard: Option<TelemetryGuard>) {
        let (cpu, wall) = (process_cpu_time(), Instant::now());
        (0..RUNS).for_each(|_| s.run(program));
        self.wall.push(wall.elapsed() / RUNS);
        if let Some(guard) = guard {
            guard.flush().unwrap();
            assert_eq!(guard.spans_exported(), 3 * u64::from(RUNS));
        }
        self.cpu.push((process_cpu_time() - cpu) / RUNS);
    }

    fn medians(mut self) -> (Duration, Duration) {
        (median(&mut self.wall), median(&mut self.cpu))
    }
}

/// Each LM's runs with telemetry and without, interleaved; medians and their ratios.
fn interleaved(s: &Setup) {
    println!("same-run medians, {ROUNDS} interleaved rounds of {RUNS} runs per batch:");
    for (lm, program) in [("scripted LM", &s.scripted), ("LM over HTTP", &s.http)] {
        let (mut on, mut off) = (Samples::default(), Samples::default());
        for _ in 0..ROUNDS {
            off.batch(s, program, None);
            on.batch(s, program, Some(s.install()));
        }
        let ((on_wall, on_cpu), (off_wall, off_cpu)) = (on.medians(), off.medians());
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!(
            "  {lm}: wall per run exported {on_wall:.1?} / off {off_wall:.1?} = {:.3} (target <= 1.05); process CPU per run {on_cpu:.1?} / {off_cpu:.1?} = {:.3}",
            ratio(on_wall, off_wall),
            ratio(on_cpu, off_cpu),
        );
    }
}

fn runs(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("otel");
    group.bench_function("scripted LM, telemetry off", |b| {
        b.iter(|| s.run(&s.scripted))
    });
    group.bench_function("LM over HTTP, telemetry off", |b| b.iter(|| s.run(&s.http)));
    let guard = s.install();
    group.bench_function("scripted LM, exported over OTLP/HTTP", |b| {
        b.iter(|| s.run(&s.scripted))
    });
    group.bench_function("LM over HTTP, exported over OTLP/HTTP", |b| {
        b.iter(|| s.run(&s.http))
    });
    group.finish();
    guard.flush().unwrap();
    println!(
        "criterion rows: spans exported {}, lost {}",
        guard.spans_exported(),
        guard.spans_lost()
    );
    drop(guard);
    interleaved(&s);
}

/// `N` runs of the scripted LM (or, with `:http`, of the LM over HTTP), exported or not
/// (`PROFILE_ENV`).
fn profile(mode: &str) {
    let parts: Vec<&str> = mode.split(':').collect();
    let (exported, runs, http) = match parts[..] {
        [on_off @ ("on" | "off"), n] => (on_off == "on", n, false),
        [on_off @ ("on" | "off"), n, "http"] => (on_off == "on", n, true),
        _ => panic!("{PROFILE_ENV} is `on:N`, `off:N`, `on:N:http` or `off:N:http`, not `{mode}`"),
    };
    let s = setup();
    let program = if http { &s.http } else { &s.scripted };
    let guard = exported.then(|| s.install());
    (0..runs.parse::<u32>().unwrap()).for_each(|_| s.run(program));
    if let Some(guard) = guard {
        guard.flush().unwrap();
        println!(
            "spans exported {}, lost {}",
            guard.spans_exported(),
            guard.spans_lost()
        );
    }
}

criterion_group!(benches, runs);

fn main() {
    if std::env::var_os(SINK_ENV).is_some() {
        serve_sink();
        return;
    }
    if let Ok(mode) = std::env::var(PROFILE_ENV) {
        profile(&mode);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
