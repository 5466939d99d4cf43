//! Local variable access, beside a bare `RwLock<HashMap<String, f64>>` read measured in the same
//! run (targets: handle get <= 30 ns, name get <= 60 ns, validated set <= 150 ns; the README
//! lists them with the figures measured).
//!
//! `cargo bench -p dspex --bench variables`

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;

use criterion::{Criterion, criterion_group, criterion_main};
use dspex::{Constraints, Context, Value};

fn local(c: &mut Criterion) {
    let bare: RwLock<HashMap<String, f64>> =
        RwLock::new((0..100).map(|i| (format!("var_{i:03}"), 0.5)).collect());
    let ctx = Context::new();
    for i in 0..100 {
        ctx.defvariable::<f64>(&format!("var_{i:03}"), 0.5, Constraints::range(0.0, 1.0))
            .unwrap();
    }
    let temperature = ctx
        .defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))
        .unwrap();
    let counter = ctx
        .defvariable::<i64>("counter", 0, Constraints::none())
        .unwrap();
    let ten: Vec<String> = (0..10).map(|i| format!("var_{:03}", i * 7)).collect();
    let ten: Vec<&str> = ten.iter().map(String::as_str).collect();

    let mut g = c.benchmark_group("local");
    g.bench_function("bare RwLock<HashMap> read", |b| {
        b.iter(|| *bare.read().unwrap().get(black_box("var_042")).unwrap());
    });
    g.bench_function("get by typed handle", |b| {
        b.iter(|| black_box(&temperature).get().unwrap());
    });
    g.bench_function("get by name", |b| {
        b.iter(|| ctx.get::<f64>(black_box("temperature")).unwrap());
    });
    let mut x = 0.0;
    g.bench_function("validated set by handle", |b| {
        b.iter(|| {
            x = if x > 1.9 { 0.0 } else { x + 0.1 };
            temperature.set(black_box(x)).unwrap()
        });
    });
    g.bench_function("validated set by name", |b| {
        b.iter(|| ctx.set(black_box("temperature"), black_box(0.5)).unwrap());
    });
    g.bench_function("update by handle", |b| {
        b.iter(|| counter.update(|n| n + 1).unwrap());
    });
    g.bench_function("get_many of 10", |b| {
        b.iter(|| ctx.get_many(black_box(&ten)).unwrap());
    });
    g.bench_function("list of 100", |b| {
        b.iter(|| ctx.list(black_box(Some("var_*"))).unwrap());
    });
    g.bench_function("update_many of 10", |b| {
        b.iter(|| {
            ctx.update_many(ten.iter().map(|n| (*n, Value::Float(0.25))))
                .unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, local);
criterion_main!(benches);
