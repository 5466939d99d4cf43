//! A process on a shared session, for the cross-process tests: `shared_peer URL SESSION` opens
//! a context on the session, prints `{"ready": true, "pid": ...}`, then runs one JSON command
//! per stdin line and answers one JSON line each (`{"ok": ...}` or `{"error": ..., "kind":
//! ...}`):
//!
//! - `{"op": "register", "name", "type": "integer"|"float", "initial", "min"?, "max"?}`
//! - `{"op": "set", "name", "value"}`, `{"op": "cas", "name", "value", "version"}`
//! - `{"op": "get", "name"}` -> `{"value", "version", "source"}`
//! - `{"op": "incr", "name", "times"}`: `times` atomic increments (`Context::update`)
//! - `{"op": "watch", "name"}`, then `{"op": "next_event"}` -> the watcher's next event
//! - `{"op": "bridge"}` -> the address, session id and token of this process's bridge
//!   session (Python reaches the shared variables through it)
//! - `{"op": "churn", "names"}`: answers `{"ok": "churning"}`, then writes the named integer
//!   variables forever (single writes and atomic batches): the test kills it mid-write
//! - `{"op": "exit"}`, or the end of stdin: exits. So it never outlives the test.

#![allow(clippy::print_stdout)]

use std::io::Write;
use std::time::Duration;

use dspex::{Constraints, Context, Error, SetOptions, Value, VarType, VariableSpec, WatchEvent};
use dspex_tests::{json_to_value, value_to_json};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long `next_event` waits.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(session)) = (args.next(), args.next()) else {
        return Err("usage: shared_peer URL SESSION".into());
    };
    let ctx = Context::builder()
        .shared(url)
        .session(session)
        .worker(dspex_tests::worker_config())
        .build()
        .await?;
    reply(&json!({"ready": true, "pid": std::process::id()}));
    let mut watcher = None;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let command: Json = serde_json::from_str(&line)?;
        let op = command["op"].as_str().unwrap_or_default();
        let answer = match op {
            "exit" => break,
            "watch" => match ctx.watch(&[text(&command, "name")]) {
                Ok(w) => {
                    watcher = Some(w);
                    Ok(json!(true))
                }
                Err(e) => Err(e),
            },
            "next_event" => match &mut watcher {
                Some(w) => match tokio::time::timeout(EVENT_TIMEOUT, w.recv()).await {
                    Ok(Some(event)) => Ok(event_json(&event)),
                    Ok(None) => Ok(json!(null)),
                    Err(_) => Ok(json!("timeout")),
                },
                None => Ok(json!("no watcher")),
            },
            "bridge" => match ctx.ensure_bridged().await {
                Ok(()) => {
                    let info = ctx.bridge_session().ok_or("no bridge session")?;
                    Ok(
                        json!({"address": info.address, "session_id": info.session_id, "token": info.token}),
                    )
                }
                Err(e) => Err(e),
            },
            "churn" => {
                let names: Vec<String> = command["names"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                reply(&json!({"ok": "churning"}));
                churn(&ctx, &names)?;
                break;
            }
            _ => run(&ctx, op, &command),
        };
        reply(&match answer {
            Ok(result) => json!({"ok": result}),
            Err(e) => json!({"error": e.to_string(), "kind": kind(&e)}),
        });
    }
    Ok(())
}

fn run(ctx: &Context, op: &str, command: &Json) -> dspex::Result<Json> {
    let name = text(command, "name");
    let value = || {
        json_to_value(&command["value"]).ok_or_else(|| Error::InvalidOption {
            option: "value".to_owned(),
            message: format!("no value in {command}"),
        })
    };
    match op {
        "register" => {
            let ty = match text(command, "type") {
                "float" => VarType::Float,
                _ => VarType::Integer,
            };
            let initial = json_to_value(&command["initial"]).unwrap_or(Value::Integer(0));
            let mut constraints = Constraints::none();
            if let (Some(min), Some(max)) = (command["min"].as_f64(), command["max"].as_f64()) {
                constraints = Constraints::range(min, max);
            }
            let record =
                ctx.register(VariableSpec::new(name, ty, initial).with_constraints(constraints))?;
            Ok(json!({"version": record.version, "value": value_to_json(&record.value)}))
        }
        "set" => Ok(json!(ctx.set(name, value()?)?)),
        "cas" => {
            let version = command["version"].as_u64().unwrap_or_default();
            Ok(json!(ctx.set_with(
                name,
                value()?,
                &SetOptions::expect_version(version)
            )?))
        }
        "get" => {
            let r = ctx.record(name)?;
            Ok(
                json!({"value": value_to_json(&r.value), "version": r.version, "source": r.source.to_string()}),
            )
        }
        "incr" => {
            let mut last = 0;
            for _ in 0..command["times"].as_u64().unwrap_or(0) {
                last = ctx.update::<i64>(name, |n| n + 1)?;
            }
            Ok(json!(last))
        }
        _ => Ok(json!({"unknown op": op})),
    }
}

/// Writes the variables forever: single writes and atomic batches, alternately.
fn churn(ctx: &Context, names: &[String]) -> dspex::Result<()> {
    for i in 0i64.. {
        if i % 2 == 0 {
            for name in names {
                ctx.set(name, i)?;
            }
        } else {
            ctx.update_many(names.iter().map(|n| (n.as_str(), Value::Integer(i))))?;
        }
    }
    Ok(())
}

fn text<'a>(command: &'a Json, key: &str) -> &'a str {
    command[key].as_str().unwrap_or_default()
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Conflict { .. } => "conflict",
        Error::NotFound { .. } => "not_found",
        Error::DeclarationMismatch { .. } => "declaration_mismatch",
        Error::Shared { .. } => "shared",
        _ => "other",
    }
}

fn event_json(event: &WatchEvent) -> Json {
    match event {
        WatchEvent::Updated(c) => json!({
            "kind": "updated", "name": c.name, "new": value_to_json(&c.new),
            "version": c.version, "source": c.source.to_string(),
        }),
        WatchEvent::Lagged { missed } => json!({"kind": "lagged", "missed": missed}),
        other => {
            json!({"kind": format!("{:?}", other.kind()).to_lowercase(), "name": other.name()})
        }
    }
}

fn reply(answer: &Json) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{answer}").and_then(|()| out.flush());
}
