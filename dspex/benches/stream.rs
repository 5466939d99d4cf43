//! Streaming a `ChainOfThought` from the loopback OpenAI-compatible test server, native and
//! python.
//!
//! `cargo bench -p dspex --bench stream` (the python step's interpreter is `DSPEX_PYTHON`,
//! which `.cargo/config.toml` points at `.venv`; run `scripts/python-env` first)
//!
//! - First chunk latency (target <= 1 ms native, <= 3 ms python, median): from the server
//!   handing the first content delta to its connection to the caller receiving the `Chunk` of
//!   `program.stream(..)`, interleaved with a bare `reqwest` reader of the same server's event
//!   stream (the floor: from the same instant to the bare reader seeing the delta's bytes).
//!   DSPy's `StreamListener` holds the delta that opens a field until the next one arrives
//!   (it looks for the whole marker first), so the python figure is taken from the second
//!   delta, the one that releases the field's first text; its latency from the first delta is
//!   printed too.
//! - CPU time of a streamed run over a non-streamed one for the same reply (target <= 1.1 x):
//!   the CPU time of the caller's thread per run (the program runs on a current-thread
//!   runtime; the server has a runtime and threads of its own), medians of interleaved
//!   batches. The reply is streamed in deltas of 12 characters, one server-sent event per HTTP
//!   chunk as OpenAI-compatible servers write them, without pauses, in two ways: every event
//!   written back to back (a fast server whose reply is ready: the client reads many events
//!   at a time) and one event at a time (the server hands the next event to its connection
//!   once the one before is written: the client reads about one event per read, as it does
//!   from an LM writing as it generates). The floor of each is a bare `reqwest` reader of the
//!   same bytes (nothing parsed), against a bare read of the reply not streamed.
//!
//! `DSPEX_STREAM_BENCH_ONLY=<arm>` runs one loop of the CPU comparison alone, to profile it
//! (see [`only`]).

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use dspex::prelude::*;
use dspex_test_lm::{LmServer, Reply};
use futures_util::StreamExt;

dspex_program! {
    /// Reasons, then answers.
    pub program Thinker: "question -> answer" {
        chain {
            answer: native ChainOfThought("question -> answer"),
        }
    }
}

dspex_program! {
    /// Reasons, then answers, in the Python worker (DSPy's `streamify`).
    pub program PyThinker: "question -> answer" {
        chain {
            answer: python ChainOfThought("question -> answer"),
        }
    }
}

const REPLY: &str = "[[ ## reasoning ## ]]\nParis has been the capital of France for most of its history, and it is its largest city.\n\n[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]";

struct Setup {
    rt: tokio::runtime::Runtime,
    /// The server's own runtime, on threads of its own.
    _server_rt: tokio::runtime::Runtime,
    server: LmServer,
    program: Thinker,
    python: PyThinker,
    http: reqwest::Client,
    url: String,
}

fn setup() -> Setup {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = server_rt.block_on(LmServer::start()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lm = LmConfig::openai(server.base_url(), "bench-model");
    let (program, python) = rt.block_on(async {
        let ctx = Context::builder().lm(lm).build().await.unwrap();
        let python = PyThinker::attach(&ctx).await.unwrap();
        (Thinker::attach(&ctx).await.unwrap(), python)
    });
    Setup {
        url: format!("{}/chat/completions", server.base_url()),
        http: reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .unwrap(),
        rt,
        _server_rt: server_rt,
        server,
        program,
        python,
    }
}

fn input() -> ThinkerInput {
    ThinkerInput {
        question: "What is the capital of France?".into(),
    }
}

impl Setup {
    /// The first chunk of a streamed run, after the server's first delta.
    fn native_first_chunk(&self) -> Duration {
        self.rt.block_on(async {
            let mut stream = self.program.stream(input());
            let mut first = None;
            while let Some(event) = stream.next().await {
                if let (RunEvent::Chunk { .. }, None) = (event.unwrap(), first) {
                    first = Some(Instant::now());
                }
            }
            first.unwrap() - self.server.first_delta_at().unwrap()
        })
    }

    /// The first chunk of a streamed run of the python step, after the server's second delta
    /// (the one that releases the field's first text from DSPy's listener) and after its first.
    fn python_first_chunk(&self) -> (Duration, Duration) {
        self.rt.block_on(async {
            let mut stream = self.python.stream(PyThinkerInput {
                question: input().question,
            });
            let mut first = None;
            while let Some(event) = stream.next().await {
                if let (RunEvent::Chunk { .. }, None) = (event.unwrap(), first) {
                    first = Some(Instant::now());
                }
            }
            let (first, deltas) = (first.unwrap(), self.server.deltas_at());
            (first - deltas[1], first - deltas[0])
        })
    }

    /// The bench's question POSTed by a bare `reqwest` client, streamed or not: the response,
    /// its body not read.
    async fn bare_request(&self, stream: bool) -> reqwest::Response {
        let body = serde_json::json!({
            "model": "bench-model",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "stream": stream,
        });
        self.http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// The same server's first content delta seen by a bare reader of the event stream.
    fn bare_first_delta(&self) -> Duration {
        self.rt.block_on(async {
            let mut response = self.bare_request(true).await;
            let mut first = None;
            while let Some(bytes) = response.chunk().await.unwrap() {
                if first.is_none() && bytes.windows(12).any(|w| w == b"\"content\":\"[") {
                    first = Some(Instant::now());
                }
            }
            first.unwrap() - self.server.first_delta_at().unwrap()
        })
    }

    /// The floor of a run's transport: the same request read by a bare `reqwest` client (the
    /// body's bytes, nothing parsed), streamed or not.
    #[inline(never)]
    fn bare_read(&self, stream: bool) {
        self.rt.block_on(async {
            let mut response = self.bare_request(stream).await;
            while response.chunk().await.unwrap().is_some() {}
        });
    }

    #[inline(never)]
    fn streamed_run(&self) {
        self.rt.block_on(async {
            let events: Vec<_> = self.program.stream(input()).collect().await;
            assert!(events.last().unwrap().is_ok());
        });
    }

    #[inline(never)]
    fn plain_run(&self) {
        self.rt.block_on(self.program.run(input())).unwrap();
    }
}

/// The calling thread's CPU time (user and system), from `CLOCK_THREAD_CPUTIME_ID` (nanosecond
/// resolution).
fn cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// The reply of the CPU comparison: in deltas of 12 characters, written one event at a time
/// (each as the one before is taken) or all back to back.
fn cpu_reply(together: bool) -> Reply {
    let reply = Reply::text(REPLY).deltas(12, Duration::ZERO);
    if together { reply.together() } else { reply }
}

/// `DSPEX_STREAM_BENCH_ONLY=streamed|together|plain|bare-streamed|bare-together|bare-plain`
/// (and `DSPEX_STREAM_BENCH_RUNS`, 1,000 by default): only that loop of the CPU comparison,
/// after 100 runs to warm up, to profile it (`valgrind --tool=callgrind
/// --toggle-collect='*streamed_run*'`, or `*plain_run*`, `*bare_read*`).
fn only(s: &Setup, arm: &str) {
    let runs: usize = std::env::var("DSPEX_STREAM_BENCH_RUNS").map_or(1000, |r| r.parse().unwrap());
    let run = |s: &Setup| match arm {
        "plain" => s.plain_run(),
        "bare-plain" => s.bare_read(false),
        "bare-streamed" | "bare-together" => s.bare_read(true),
        _ => s.streamed_run(),
    };
    s.server.set_default(cpu_reply(arm.ends_with("together")));
    (0..100).for_each(|_| run(s));
    // The thread's time on a CPU from the scheduler's count (rustix's clock reader does not
    // run under valgrind).
    let on_cpu = || -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        stat.split_whitespace().next().unwrap().parse().unwrap()
    };
    let before = on_cpu();
    (0..runs).for_each(|_| run(s));
    let per_run = Duration::from_nanos((on_cpu() - before) / runs as u64);
    println!("{arm}: {per_run:.1?} CPU per run");
}

fn stream(c: &mut Criterion) {
    let s = setup();
    if let Ok(arm) = std::env::var("DSPEX_STREAM_BENCH_ONLY") {
        return only(&s, &arm);
    }
    // A pause before each delta of 32 characters: the first one is written well after the
    // request was read, and holds the `reasoning` marker and the field's first words, so it
    // is the first delta of a field that the latency is measured from.
    s.server
        .set_default(Reply::text(REPLY).deltas(32, Duration::from_millis(2)));
    let mut g = c.benchmark_group("stream");
    g.sample_size(20);
    g.bench_function("first chunk (native)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| s.native_first_chunk()).sum());
    });
    g.bench_function("first delta (bare reqwest)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| s.bare_first_delta()).sum());
    });
    g.finish();

    const ROUNDS: usize = 300;
    let (mut native, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        native.push(s.native_first_chunk());
        bare.push(s.bare_first_delta());
    }
    let (native, bare) = (median(&mut native), median(&mut bare));
    println!("same-run medians, {ROUNDS} interleaved rounds:");
    println!(
        "  first chunk after the server's first delta: native stream {native:.1?} (target <= 1 ms), bare reqwest reader {bare:.1?}"
    );

    const PYTHON_ROUNDS: usize = 100;
    let (mut python, mut python_from_first, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PYTHON_ROUNDS {
        let (released, opened) = s.python_first_chunk();
        python.push(released);
        python_from_first.push(opened);
        bare.push(s.bare_first_delta());
    }
    let (python, python_from_first, bare) = (
        median(&mut python),
        median(&mut python_from_first),
        median(&mut bare),
    );
    println!(
        "  python step, {PYTHON_ROUNDS} interleaved rounds: first chunk {python:.1?} after the delta releasing it (target <= 3 ms), {python_from_first:.1?} after the first delta; bare reqwest reader {bare:.1?}"
    );

    // The same reply, all at once (no pause), streamed in deltas of 12 characters (one event
    // written at a time, or all back to back) or not streamed.
    const BATCHES: usize = 10;
    const RUNS: u32 = 1000;
    let (mut streamed, mut together, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bare_streamed, mut bare_together, mut bare_plain) =
        (Vec::new(), Vec::new(), Vec::new());
    let batch = |run: &dyn Fn()| {
        let before = cpu_time();
        (0..RUNS).for_each(|_| run());
        (cpu_time() - before) / RUNS
    };
    for _ in 0..BATCHES {
        s.server.set_default(cpu_reply(false));
        streamed.push(batch(&|| s.streamed_run()));
        bare_streamed.push(batch(&|| s.bare_read(true)));
        s.server.set_default(cpu_reply(true));
        together.push(batch(&|| s.streamed_run()));
        bare_together.push(batch(&|| s.bare_read(true)));
        plain.push(batch(&|| s.plain_run()));
        bare_plain.push(batch(&|| s.bare_read(false)));
    }
    let medians = [
        &mut plain,
        &mut together,
        &mut streamed,
        &mut bare_plain,
        &mut bare_together,
        &mut bare_streamed,
    ]
    .map(|samples| median(samples));
    let [
        plain,
        together,
        streamed,
        bare_plain,
        bare_together,
        bare_streamed,
    ] = medians;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "  CPU per run ({BATCHES} interleaved batches of {RUNS}), not streamed {plain:.1?}; streamed, events written back to back {together:.1?} = {:.2}x, one event at a time {streamed:.1?} = {:.2}x (target <= 1.1)",
        ratio(together, plain),
        ratio(streamed, plain),
    );
    println!(
        "  the floor, a bare reqwest reader of the same replies: not streamed {bare_plain:.1?}; streamed back to back {bare_together:.1?} = {:.2}x, one event at a time {bare_streamed:.1?} = {:.2}x",
        ratio(bare_together, bare_plain),
        ratio(bare_streamed, bare_plain),
    );
}

criterion_group!(benches, stream);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
