//! A Rust process that owns a context with a running Python worker and never exits by itself:
//! the orphan test kills it with SIGKILL and checks that the worker does not survive it.
//! Prints `{"worker_pid": ...}` once the worker is ready.

#![allow(clippy::print_stdout)]

use dspex::{Context, Fields, ProgramBuilder, Step};
use dspex_tests::worker_config;

#[tokio::main(flavor = "current_thread")]
async fn main() -> dspex::Result<()> {
    let ctx = Context::builder().worker(worker_config()).build().await?;
    let program = ProgramBuilder::new("Host")
        .step(Step::python("answer", "Predict", "question -> answer"))
        .build()?
        .attach(&ctx)
        .await?;
    program.run(Fields::from([("question", "ready?")])).await?;
    let pid = ctx.worker_status().and_then(|s| s.pid).unwrap_or_default();
    println!("{}", serde_json::json!({ "worker_pid": pid }));
    std::future::pending::<()>().await;
    Ok(())
}
