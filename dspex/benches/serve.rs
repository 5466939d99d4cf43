//! A program served over HTTP (`dspex::serve`) against calling it directly.
//!
//! `cargo bench -p dspex --no-default-features --features serve --bench serve`
//!
//! - Overhead (target: a served run at most 100 us above a direct `run` at p50): per request,
//!   interleaved, a direct `run_boxed` of a native one-step program, the same program's
//!   `POST /v1/programs/echo/run` over a kept-alive connection (reqwest), and a bare axum JSON
//!   echo route on the same kind of server (the floor of HTTP itself).
//! - Load: 64 clients send 20,000 run requests in all; every answer must be 200. Prints the
//!   p50 and p99 latency and the process's resident memory when the 1,000th, the 10,000th and
//!   the 20,000th answer come back: in a steady state the last two are equal within allocator
//!   noise (server and clients share the process, so the clients' memory is in it too; their
//!   latency samples are written into a buffer filled before the load starts, so they add
//!   nothing while it runs).

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::routing::post;
use dspex::prelude::*;
use dspex::serve::Server;
use dspex::{Overrides, ProgramBuilder, RunningProgram, Step};
use serde_json::{Value as Json, json};

const SAMPLES: usize = 3_000;
const CLIENTS: usize = 64;
const REQUESTS: usize = 20_000;
/// The answers after which the resident memory is read.
const RSS_AT: [usize; 3] = [1_000, 10_000, REQUESTS];

struct Echo;

impl Module for Echo {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([("echo", inputs.get::<&str>("text")?)]))
    }
}

async fn program() -> RunningProgram {
    ProgramBuilder::new("echo")
        .signature("text -> echo")
        .step(Step::native("echo", "text -> echo", Echo))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

fn median_and_p99(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    // The servers run on a runtime of their own; the clients on this thread's.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (served, floor) = server_rt.block_on(async {
        let served = Server::builder()
            .program("echo", program().await)
            .max_concurrent_runs(CLIENTS)
            .build()
            .unwrap()
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let floor = listener.local_addr().unwrap();
        let router = axum::Router::new().route(
            "/echo",
            post(|axum::Json(body): axum::Json<Json>| async move { axum::Json(body) }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        (served, floor)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let direct = rt.block_on(program());
    let http = reqwest::Client::new();
    let run_url = format!("http://{}/v1/programs/echo/run", served.local_addr());
    let floor_url = format!("http://{floor}/echo");
    let body = json!({"inputs": {"text": "hello"}});

    let (mut direct_t, mut served_t, mut floor_t) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        let overrides = Overrides::new();
        for i in 0..SAMPLES + 100 {
            let start = Instant::now();
            let (out, _) = dspex::BaseProgram::run_boxed(
                &direct,
                &overrides,
                Fields::from([("text", "hello")]),
            )
            .await
            .unwrap();
            let d = start.elapsed();
            assert_eq!(out.get::<&str>("echo").unwrap(), "hello");

            let start = Instant::now();
            let r = http.post(&run_url).json(&body).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
            let s = start.elapsed();

            let start = Instant::now();
            let r = http.post(&floor_url).json(&body).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
            let f = start.elapsed();
            if i >= 100 {
                direct_t.push(d);
                served_t.push(s);
                floor_t.push(f);
            }
        }
    });
    let (d50, _) = median_and_p99(direct_t);
    let (s50, _) = median_and_p99(served_t);
    let (f50, _) = median_and_p99(floor_t);
    println!("overhead ({SAMPLES} interleaved samples, p50):");
    println!("  direct run_boxed     {d50:>10.1?}");
    println!("  served /run          {s50:>10.1?}");
    println!("  bare axum echo floor {f50:>10.1?}");
    println!(
        "  served - direct      {:>10.1?} (target <= 100us); served - floor {:.1?}",
        s50.saturating_sub(d50),
        s50.saturating_sub(f50)
    );

    // Load: 64 clients, 20,000 requests.
    let sent = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let rss = Arc::new(parking_lot::Mutex::new([0u64; RSS_AT.len()]));
    // Nanoseconds of each answer, written in place: touched now, not while the load runs.
    let samples: Arc<Vec<AtomicU64>> = Arc::new((0..REQUESTS).map(|_| AtomicU64::new(1)).collect());
    let latencies = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (http, url, body) = (http.clone(), run_url.clone(), body.clone());
            let (sent, answered, rss, samples) = (
                Arc::clone(&sent),
                Arc::clone(&answered),
                Arc::clone(&rss),
                Arc::clone(&samples),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    if sent.fetch_add(1, Ordering::SeqCst) >= REQUESTS {
                        break;
                    }
                    let start = Instant::now();
                    let r = http.post(&url).json(&body).send().await.unwrap();
                    assert_eq!(r.status(), 200, "no error under load");
                    r.bytes().await.unwrap();
                    let n = answered.fetch_add(1, Ordering::SeqCst) + 1;
                    let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    samples[n - 1].store(nanos, Ordering::Relaxed);
                    if let Some(i) = RSS_AT.iter().position(|&at| at == n) {
                        rss.lock()[i] = rss_kib();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        samples
            .iter()
            .map(|s| Duration::from_nanos(s.load(Ordering::Relaxed)))
            .collect::<Vec<_>>()
    });
    assert_eq!(latencies.len(), REQUESTS);
    let (p50, p99) = median_and_p99(latencies);
    let rss = *rss.lock();
    println!("load ({CLIENTS} clients, {REQUESTS} requests, all 200):");
    println!("  p50 {p50:.1?}  p99 {p99:.1?}");
    for (at, kib) in RSS_AT.iter().zip(rss) {
        println!("  RSS at the {at}th answer: {kib} KiB");
    }
    server_rt.block_on(served.shutdown()).unwrap();
}
