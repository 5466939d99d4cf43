//! One LM cache setting for both lanes (`LmConfig::cache`), checked across processes: each
//! `lm_cache_peer` process asks the same question twice in each lane against a fresh loopback
//! endpoint, with `HOME` pointing at an empty directory, so that a cache left by an earlier
//! process (DSPy's default `~/.dspy_cache` included) would show as requests not sent.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use dspex_test_lm::{LmServer, Reply};
use serde_json::{Value as Json, json};

/// Requests each lane sent to the server: python (`Bearer dspex-no-key`, the worker's
/// placeholder key) and native (no key).
#[derive(Debug, PartialEq)]
struct Sent {
    python: usize,
    native: usize,
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dspex-lm-cache-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home")).unwrap();
    dir
}

/// Runs one peer process against a fresh server; its answers and the requests the server got.
async fn peer(home: &Path, cache: &str) -> (Json, Sent) {
    let server = LmServer::start().await.unwrap();
    server.set_default(Reply::text(
        "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]",
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_lm_cache_peer"))
        .args([server.base_url().as_str(), cache])
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Json = serde_json::from_slice(&output.stdout).unwrap();
    let requests = server.requests();
    let python = requests
        .iter()
        .filter(|r| r.authorization.as_deref() == Some("Bearer dspex-no-key"))
        .count();
    let sent = Sent {
        python,
        native: requests.len() - python,
    };
    (answers, sent)
}

fn paris() -> Json {
    json!({"python": ["Paris", "Paris"], "native": ["Paris", "Paris"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_off_a_second_process_sends_every_request_and_nothing_is_written() {
    let dir = scratch("off");
    let home = dir.join("home");
    for _ in 0..2 {
        let (answers, sent) = peer(&home, "off").await;
        assert_eq!(answers, paris());
        assert_eq!(
            sent,
            Sent {
                python: 2,
                native: 2
            }
        );
    }
    // The worker never built DSPy's default cache in the home directory.
    assert!(!home.join(".dspy_cache").exists());
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_cache_answers_repeats_within_a_process_only() {
    let dir = scratch("memory");
    let home = dir.join("home");
    for _ in 0..2 {
        let (answers, sent) = peer(&home, "memory").await;
        assert_eq!(answers, paris());
        assert_eq!(
            sent,
            Sent {
                python: 1,
                native: 1
            }
        );
    }
    assert!(!home.join(".dspy_cache").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_cache_in_the_named_directory_answers_a_second_process() {
    let dir = scratch("disk");
    let (home, cache) = (dir.join("home"), dir.join("lm-cache"));
    let (answers, sent) = peer(&home, cache.to_str().unwrap()).await;
    assert_eq!(answers, paris());
    assert_eq!(
        sent,
        Sent {
            python: 1,
            native: 1
        }
    );
    let (answers, sent) = peer(&home, cache.to_str().unwrap()).await;
    assert_eq!(answers, paris());
    assert_eq!(
        sent,
        Sent {
            python: 0,
            native: 0
        }
    );
    assert!(cache.join("native").is_dir() && cache.join("dspy").is_dir());
    assert!(!home.join(".dspy_cache").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
