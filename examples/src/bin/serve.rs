//! Serves a native LM program over HTTP (`dspex::serve`): run it, stream it, read and write
//! its variables live. SIGTERM (or Ctrl-C) shuts it down gracefully: new requests get 503,
//! running ones finish.
//!
//! ```text
//! cargo run -p dspex-examples --bin serve -- --addr 127.0.0.1:8000
//! curl -s localhost:8000/v1/programs/qa/run -d '{"inputs": {"question": "Why Rust?"}}'
//! ```
//!
//! Flags: `--addr HOST:PORT` (default `127.0.0.1:8000`; `:0` picks a free port), `--token T`
//! and `--admin-token T` (writes need the admin token; without any token only loopback
//! addresses are served), `--shared REDIS_URL --session NAME` (the variables live in a shared
//! Redis session, so several servers serve the same ones), and `--base-url URL --model M
//! [--api-key-env VAR]` for an OpenAI-compatible endpoint instead of the scripted LM. It
//! prints `listening on http://ADDR` once it accepts requests. The examples enable dspex's
//! `dashboard` feature, so `http://ADDR/dashboard` shows the variables and runs live (sign in
//! with a token).

#![allow(clippy::print_stdout)]

use std::io::Write;

use dspex::prelude::*;
use dspex::serve::Server;
use dspex_examples::{arg, endpoint_or_scripted};

dspex_program! {
    /// Answers a question, reasoning first.
    pub program Qa: "question -> answer" {
        variables {
            temperature: float = 0.2 { min: 0.0, max: 2.0 },
            max_tokens: integer = 512 { min: 16, max: 4096 },
        }
        chain {
            answer: native ChainOfThought("question -> answer") { temperature, max_tokens },
        }
    }
}

/// The scripted LM, used unless the command line names an endpoint.
fn scripted() -> LmConfig {
    // A rule answers every call whose prompt contains its needle.
    LmConfig::scripted().rule(
        "`[[ ## reasoning ## ]]`",
        [
            (
                "reasoning",
                "Rust frees memory when its owner goes out of scope.",
            ),
            ("answer", "Ownership, checked at compile time."),
        ],
    )
}

/// Resolves when the process gets SIGTERM or Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> Result<()> {
    let lm = endpoint_or_scripted("serve", scripted());
    let mut ctx = Context::builder().lm(lm);
    if let Some(url) = arg("--shared") {
        ctx = ctx.shared(url);
        if let Some(session) = arg("--session") {
            ctx = ctx.session(session);
        }
    }
    let qa = Qa::attach(&ctx.build().await?).await?;
    let mut server = Server::builder().program("qa", qa);
    if let Some(token) = arg("--token") {
        server = server.token(token);
    }
    if let Some(token) = arg("--admin-token") {
        server = server.admin_token(token);
    }
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let handle = server.build()?.bind(addr).await?;
    println!("listening on http://{}", handle.local_addr());
    let _ = std::io::stdout().flush();
    terminated().await;
    println!("shutting down: running requests finish");
    handle.shutdown().await?;
    println!("stopped");
    Ok(())
}
