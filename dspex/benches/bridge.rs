//! The switch from local to bridged with 1,000 variables (target: store side
//! <= 5 ms), and in-process reads on a bridged context beside a local one.
//!
//! `cargo bench -p dspex --bench bridge`
//!
//! - `switch/ensure_bridged, 1000 variables`: the whole `ensure_bridged` call (creating the
//!   session, migrating, swapping), on a server already running.
//! - `switch/migration, 1000 variables`: the switch itself as `Context::backend()` reports it
//!   (`last_switch`: hand-over under the write lock, import, swap).
//! - `reads/...`: typed-handle reads and validated writes, local beside bridged (Rust never
//!   takes the gRPC hop).
//! - `grpc (tonic client)/...`: the server side of a Python read, `GetVariable` beside a bare
//!   `Ping` (the Python figures come from `python/benchmarks/session_timing.py`).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dspex::bridge::{BridgeConfig, BridgeServer};
use dspex::wire::TOKEN_METADATA;
use dspex::wire::proto::session_service_client::SessionServiceClient;
use dspex::wire::proto::{self as pb};
use dspex::{Constraints, Context, VarType, VariableSpec};

const VARIABLES: usize = 1_000;

fn context_with_variables(server: &BridgeServer, rt: &tokio::runtime::Runtime) -> Context {
    let ctx = rt
        .block_on(Context::builder().server(server.clone()).build())
        .unwrap();
    for i in 0..VARIABLES {
        let spec = match i % 4 {
            0 => VariableSpec::new(format!("f{i}"), VarType::Float, 0.5)
                .with_constraints(Constraints::range(0.0, 1.0)),
            1 => VariableSpec::new(format!("i{i}"), VarType::Integer, 7)
                .with_constraints(Constraints::range(0, 100)),
            2 => VariableSpec::new(format!("s{i}"), VarType::String, "value")
                .with_description("a string"),
            _ => VariableSpec::new(format!("c{i}"), VarType::Choice, "a")
                .with_constraints(Constraints::choices(["a", "b", "c"])),
        };
        ctx.register(spec).unwrap();
    }
    ctx
}

fn switch(c: &mut Criterion) {
    let server = BridgeServer::start(BridgeConfig::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("switch");
    g.sample_size(50);
    g.bench_function("ensure_bridged, 1000 variables", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let ctx = context_with_variables(&server, &rt);
                let start = Instant::now();
                rt.block_on(ctx.ensure_bridged()).unwrap();
                total += start.elapsed();
                drop(black_box(ctx));
            }
            total
        });
    });
    g.bench_function("migration, 1000 variables", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let ctx = context_with_variables(&server, &rt);
                rt.block_on(ctx.ensure_bridged()).unwrap();
                total += ctx.backend().last_switch.unwrap();
                drop(black_box(ctx));
            }
            total
        });
    });
    g.finish();

    let local = Context::new();
    let bridged = rt
        .block_on(Context::builder().bridged().server(server.clone()).build())
        .unwrap();
    let mut g = c.benchmark_group("reads");
    for (label, ctx) in [("local", &local), ("bridged", &bridged)] {
        let t = ctx
            .defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))
            .unwrap();
        g.bench_function(format!("{label} get by typed handle"), |b| {
            b.iter(|| black_box(&t).get().unwrap());
        });
        g.bench_function(format!("{label} validated set by handle"), |b| {
            b.iter(|| t.set(black_box(0.5)).unwrap());
        });
    }
    g.finish();

    // The server side of a Python read: GetVariable (token check, read lock, conversion)
    // beside a bare Ping, from a tonic client in the same run.
    let session = bridged.bridge_session().unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = client_rt
        .block_on(SessionServiceClient::connect(format!(
            "http://{}",
            server.address()
        )))
        .unwrap();
    let mut g = c.benchmark_group("grpc (tonic client)");
    g.bench_function("Ping", |b| {
        b.iter(|| client_rt.block_on(client.ping(pb::PingRequest {})).unwrap());
    });
    let token: tonic::metadata::MetadataValue<_> = session.token.parse().unwrap();
    g.bench_function("GetVariable", |b| {
        b.iter(|| {
            let mut request = tonic::Request::new(pb::GetVariableRequest {
                session_id: session.session_id.clone(),
                name: "temperature".to_owned(),
            });
            request.metadata_mut().insert(TOKEN_METADATA, token.clone());
            client_rt.block_on(client.get_variable(request)).unwrap()
        });
    });
    g.finish();
    drop(client);
    drop((local, bridged));
    server.shutdown_blocking();
}

criterion_group!(benches, switch);
criterion_main!(benches);
