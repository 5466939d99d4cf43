//! A bridge server for the Python test suite (`python/tests`) and the Python benchmark: it
//! serves one bridged context holding the fixture variables on `127.0.0.1:0`, prints
//! `{"address": ..., "session_id": ..., "token": ...}` on one line, then runs commands from
//! stdin, one per line, answering one line each:
//!
//! - `set NAME JSON` writes a value from Rust (`ok VERSION` or `err MESSAGE`);
//! - `get NAME` prints `value JSON VERSION SOURCE`;
//! - `readonly NAME JSON` registers a read-only variable from Rust, typed after the value
//!   (`ok 1` or `err MESSAGE`);
//! - `quit` (or the end of stdin) shuts the server down and exits.
//!
//! Its context has the Rust tools `echo` (`inline`) and `pooled_echo` registered (what a python
//! step's Rust tools are), for the worker's tool client and its benchmark.
//!
//! Exiting at the end of stdin means it never outlives the process that started it.

#![allow(clippy::print_stdout)]

use std::io::{BufRead, Write};
use std::process::ExitCode;

use dspex::bridge::{BridgeConfig, BridgeServer};
use dspex::{Context, Value, VarType, VariableSpec};
use dspex_tests::{json_to_value, register_fixtures, value_to_json};
use serde_json::json;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bridge_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let server = BridgeServer::start(BridgeConfig::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let ctx = runtime.block_on(Context::builder().bridged().server(server.clone()).build())?;
    register_fixtures(&ctx)?;
    runtime.block_on(ctx.register_callback(<echo as dspex::tools::Tool>::def().callback()))?;
    runtime
        .block_on(ctx.register_callback(<pooled_echo as dspex::tools::Tool>::def().callback()))?;
    let info = ctx
        .bridge_session()
        .ok_or("a bridged context has a session")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        json!({"address": info.address, "session_id": info.session_id, "token": info.token})
    )?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut parts = line.splitn(3, ' ');
        let reply = match (parts.next(), parts.next(), parts.next()) {
            (Some("set"), Some(name), Some(value)) => {
                match serde_json::from_str(value)
                    .ok()
                    .as_ref()
                    .and_then(json_to_value)
                {
                    Some(value) => match ctx.set(name, value) {
                        Ok(version) => format!("ok {version}"),
                        Err(e) => format!("err {e}"),
                    },
                    None => format!("err cannot read a value from {value:?}"),
                }
            }
            (Some("readonly"), Some(name), Some(value)) => {
                match serde_json::from_str(value)
                    .ok()
                    .as_ref()
                    .and_then(json_to_value)
                {
                    Some(value) => {
                        let spec = VariableSpec::new(name, type_of(&value), value).readonly();
                        match ctx.register(spec) {
                            Ok(record) => format!("ok {}", record.version),
                            Err(e) => format!("err {e}"),
                        }
                    }
                    None => format!("err cannot read a value from {value:?}"),
                }
            }
            (Some("get"), Some(name), None) => match ctx.record(name) {
                Ok(r) => format!(
                    "value {} {} {}",
                    value_to_json(&r.value),
                    r.version,
                    r.source
                ),
                Err(e) => format!("err {e}"),
            },
            (Some("quit"), None, None) => break,
            _ => format!("err unknown command {line:?}"),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    drop(ctx);
    server.shutdown_blocking();
    Ok(())
}

/// Returns `text`, followed by the value of variable `max_tokens` when `with_max_tokens` is set.
#[dspex::tool(variables(max_tokens), inline)]
fn echo(text: String, with_max_tokens: Option<bool>, max_tokens: i64) -> dspex::Result<String> {
    Ok(if with_max_tokens == Some(true) {
        format!("{text} {max_tokens}")
    } else {
        text
    })
}

/// The variable type a value reads as (strings as `string`).
fn type_of(value: &Value) -> VarType {
    match value {
        Value::Float(_) => VarType::Float,
        Value::Integer(_) => VarType::Integer,
        Value::String(_) => VarType::String,
        Value::Boolean(_) => VarType::Boolean,
        Value::Embedding(_) => VarType::Embedding,
    }
}

/// Returns `text`, reading `max_tokens` as `echo` does: `echo` without `inline`, run on the
/// blocking threads (what the tool benchmark compares).
#[dspex::tool(variables(max_tokens))]
fn pooled_echo(text: String, max_tokens: i64) -> dspex::Result<String> {
    Ok(if max_tokens < 0 { String::new() } else { text })
}
