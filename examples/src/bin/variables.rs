//! Variables on a local context: define typed, constrained variables, read and write them by
//! handle and by name, watch them, see a bad value refused with its error, read a variable's
//! history and roll a change back.
//!
//! `cargo run -p dspex-examples --bin variables`

#![allow(clippy::print_stdout)]

use dspex::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let ctx = Context::new();
    println!("context {} on the {}", ctx.id(), ctx.backend());

    let temperature = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    let max_tokens = ctx.defvariable::<i64>("max_tokens", 256, Constraints::range(1, 4096))?;
    let model = ctx.defvariable::<Choice>(
        "model",
        "gpt-4o-mini",
        Constraints::choices(["gpt-4o-mini", "claude-3-haiku"]),
    )?;
    ctx.register(
        VariableSpec::new("style", VarType::String, "concise")
            .with_constraints(Constraints::default().with_length(1, 40))
            .with_description("tone of the answers"),
    )?;

    let mut watcher = ctx.watch(&["temperature"])?;

    println!("temperature = {} (typed handle)", temperature.get()?);
    println!("max_tokens  = {} (by name)", ctx.get::<i64>("max_tokens")?);
    println!("model       = {}", model.get()?);

    temperature.set(1.2)?;
    let doubled = max_tokens.update(|n| n * 2)?;
    model.set("claude-3-haiku")?;
    println!(
        "after writes: temperature = {}, max_tokens = {doubled}, model = {}",
        temperature.get()?,
        model.get()?
    );

    if let Some(WatchEvent::Updated(change)) = watcher.recv().await {
        println!(
            "watcher saw {}: {} -> {} (version {}, from {})",
            change.name, change.old, change.new, change.version, change.source
        );
    }

    for (what, attempt) in [
        ("temperature = 2.5", temperature.set(2.5)),
        ("model = \"gpt-5\"", ctx.set("model", "gpt-5")),
        ("max_tokens = 2.0", ctx.set("max_tokens", 2.0)),
    ] {
        match attempt {
            Ok(_) => println!("{what}: accepted?!"),
            Err(e) => println!("{what}: refused: {e}"),
        }
    }
    let record = temperature.record()?;
    println!(
        "temperature is still {} at version {} (the refused write changed nothing)",
        record.value, record.version
    );

    // Every accepted write is in the history, newest first; a rollback is a new version.
    temperature.set(1.9)?;
    for entry in temperature.history(10)? {
        println!(
            "  temperature v{} = {} (from {})",
            entry.version, entry.value, entry.source
        );
    }
    let version = temperature.rollback(2)?;
    println!(
        "rolled back to version 2: temperature = {} at version {version} (rolled_back_from = {})",
        temperature.get()?,
        temperature.record()?.metadata["rolled_back_from"]
    );

    for r in ctx.list(None)? {
        println!(
            "  {:<12} {:<8} {:<18} v{}",
            r.name,
            r.ty.to_string(),
            r.value.to_string(),
            r.version
        );
    }
    println!("backend: {}", ctx.backend());
    Ok(())
}
