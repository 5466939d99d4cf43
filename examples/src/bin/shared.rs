//! Two processes sharing one session of variables in Redis. The first process attaches a
//! program with a python step to the shared session `example-<pid>` and runs it; then it
//! starts itself again as a second process, which changes the temperature; the first process's
//! watcher sees the change arrive, and its next python call uses it, as its run trace shows.
//!
//! `cargo run -p dspex-examples --bin shared` (uses the Redis at `DSPEX_REDIS_URL` if set,
//! else starts a private `redis-server` from `PATH` on a free port, and stops it at the end).

#![allow(clippy::print_stdout)]

use std::process::Command;

use dspex::prelude::*;
use dspex_test_redis::RedisServer;

dspex_program! {
    /// Answers questions; the temperature is shared by every process on the session.
    pub program SharedQa: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 2.0 },
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
        }
    }
}

/// The environment variable naming the Redis to use.
const ENV_REDIS_URL: &str = "DSPEX_REDIS_URL";

async fn shared_context(url: &str, session: &str) -> Result<Context> {
    Context::builder()
        .shared(url)
        .session(session)
        .build()
        .await
}

/// The second process: joins the session and changes the temperature.
async fn second(url: &str, session: &str) -> Result<()> {
    let ctx = shared_context(url, session).await?;
    // Attaching declares the same variables: the session's are shared, not created again.
    let qa = SharedQa::attach(&ctx).await?;
    let before = qa.temperature().get()?;
    qa.temperature().set(1.3)?;
    println!(
        "second process (pid {}): temperature {before} -> 1.3",
        std::process::id()
    );
    Ok(())
}

async fn run(qa: &SharedQa, question: &str) -> Result<()> {
    let (_, trace) = qa
        .run_traced(SharedQaInput {
            question: question.to_owned(),
        })
        .await?;
    for call in trace.steps.iter().flat_map(|s| &s.lm_calls) {
        println!(
            "first process: python call used temperature={}",
            call.temperature.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, url, session] = args.as_slice()
        && flag == "--second"
    {
        return second(url, session).await;
    }

    let (url, _private) = match std::env::var(ENV_REDIS_URL) {
        Ok(url) => (url, None),
        Err(_) => {
            let server = RedisServer::start()
                .map_err(|e| Error::shared_with("cannot start a private redis-server", e))?;
            (server.url(), Some(server))
        }
    };
    let session = format!("example-{}", std::process::id());
    let ctx = shared_context(&url, &session).await?;
    let qa = SharedQa::attach(&ctx).await?;
    println!(
        "first process (pid {}): {}",
        std::process::id(),
        ctx.backend()
    );
    run(&qa, "What is the capital of France?").await?;

    let mut watcher = qa.temperature().watch()?;
    let exe = std::env::current_exe().map_err(|e| Error::shared_with("no executable", e))?;
    let status = Command::new(exe)
        .args(["--second", &url, &session])
        .status()
        .map_err(|e| Error::shared_with("cannot start the second process", e))?;
    assert!(status.success(), "the second process failed: {status}");
    if let Some(WatchEvent::Updated(change)) = watcher.recv().await {
        println!(
            "first process: saw temperature {} -> {} (version {})",
            change.old, change.new, change.version
        );
    }
    run(&qa, "Why is the sky blue?").await?;
    Ok(())
}
