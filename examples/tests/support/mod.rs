//! Helpers the example tests share: the `serve` example as a child process of a shared
//! session, its graceful stop, and a run over HTTP.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The `serve` example's read token in these tests.
pub(crate) const READ: &str = "fleet-read";
/// The `serve` example's admin token in these tests.
pub(crate) const ADMIN: &str = "fleet-admin";

/// Starts the example on a free port of the shared `session`; the child and its base URL.
pub(crate) async fn start(redis: &str, session: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_serve"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--shared",
            redis,
            "--session",
            session,
        ])
        .args(["--token", READ, "--admin-token", ADMIN])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the serve example starts");
    let mut lines = BufReader::new(child.stdout.take().expect("its stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the server says where it listens in time")
        .expect("its stdout reads")
        .expect("a line");
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    // Keep reading its output so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

/// Sends SIGTERM and waits for a clean exit.
pub(crate) async fn terminate(mut child: Child) {
    let pid = child.id().expect("a running child").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the server stops in time")
        .expect("its status");
    assert!(
        exit.success(),
        "the server exits cleanly on SIGTERM: {exit}"
    );
}

/// POSTs a run of `inputs` to `url` (a `/v1/programs/NAME/run` route) with bearer `token`; its
/// JSON answer.
pub(crate) async fn run(client: &reqwest::Client, url: String, token: &str, inputs: Json) -> Json {
    client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "inputs": inputs }))
        .send()
        .await
        .expect("the run answers")
        .json()
        .await
        .expect("JSON")
}
