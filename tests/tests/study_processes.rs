//! Several OS processes tuning on one Redis study (real `study_peer` processes on a private
//! redis-server): four of them complete exactly the budget without repeating an assignment;
//! a process killed mid-trial has its trial proposed again once its lease ran out; a study
//! whose processes all died is resumed by the next one, and a finished study runs nothing.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use dspex::tune::{Study, Trial, TrialState};
use dspex_test_redis::RedisServer;
use dspex_tests::JsonProcess;
use serde_json::{Value as Json, json};

/// One server for this test binary; each test has its own study.
static REDIS: LazyLock<RedisServer> =
    LazyLock::new(|| RedisServer::start().expect("a private redis-server starts"));

/// The lease of the peers' trials: short, so that a killed peer's trial fails soon.
const LEASE_MS: u64 = 500;

fn study_name(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{test}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A started `study_peer`, ready and waiting for the go.
fn peer(name: &str, trials: usize, block: bool) -> JsonProcess {
    // Cargo builds the package's binaries next to the test binaries' `deps` folder.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("study_peer")))
        .unwrap_or_else(|| PathBuf::from("study_peer"));
    let mut command = Command::new(binary);
    command.args([
        REDIS.url(),
        name.to_owned(),
        trials.to_string(),
        LEASE_MS.to_string(),
    ]);
    if block {
        command.arg("block");
    }
    let mut peer = JsonProcess::spawn(command, "study_peer");
    let ready = peer.recv();
    assert_eq!(ready["ready"], json!(true), "{ready}");
    peer
}

/// Lets a peer run.
fn go(peer: &mut JsonProcess) {
    peer.send(&json!({"op": "go"}));
}

/// A peer's result, once it finished tuning.
fn result(peer: &mut JsonProcess) -> Json {
    let reply = peer.recv();
    reply
        .get("ok")
        .cloned()
        .unwrap_or_else(|| panic!("the peer failed: {reply}\n{}", peer.stderr()))
}

fn trials(name: &str) -> Vec<Trial> {
    let study = Study::redis(REDIS.url(), name);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(study.trials())
        .unwrap()
}

fn count(trials: &[Trial], state: TrialState) -> usize {
    trials.iter().filter(|t| t.state == state).count()
}

/// No two trials share an assignment, except a failed trial and the ones that retry it.
fn assert_no_repeats(trials: &[Trial]) {
    let mut seen = HashSet::new();
    for t in trials.iter().filter(|t| t.retry_of.is_none()) {
        assert!(
            seen.insert(format!("{:?}", t.assignment)),
            "trial {} repeats an assignment",
            t.index
        );
    }
    for t in trials.iter().filter(|t| t.retry_of.is_some()) {
        let of = &trials[t.retry_of.unwrap()];
        assert_eq!(of.state, TrialState::Failed);
        assert_eq!(of.assignment, t.assignment);
    }
}

#[test]
fn four_processes_complete_exactly_the_budget() {
    let name = study_name("four");
    let mut peers: Vec<JsonProcess> = (0..4).map(|_| peer(&name, 40, false)).collect();
    for p in &mut peers {
        go(p);
    }
    let results: Vec<Json> = peers.iter_mut().map(result).collect();
    let study = trials(&name);
    assert_eq!(study.len(), 40);
    assert_eq!(count(&study, TrialState::Finished), 40);
    assert_no_repeats(&study);
    // Every process's result holds every trial; together they evaluated each trial once
    // (one example per trial), though all four used the same seed.
    for r in &results {
        assert_eq!(
            (&r["trials"], &r["finished"]),
            (&json!(40), &json!(40)),
            "{r}"
        );
    }
    let ran: u64 = results.iter().map(|r| r["ran"].as_u64().unwrap()).sum();
    assert_eq!(ran, 40, "{results:?}");
    for p in peers {
        p.finish();
    }
}

#[test]
fn a_process_killed_mid_trial_has_its_trial_proposed_again_after_the_lease() {
    let name = study_name("killed");
    let mut victim = peer(&name, 12, true);
    go(&mut victim);
    assert_eq!(victim.recv(), json!({"started": true}));
    victim.kill();
    // It had asked for a round of two trials; both are still leased: the study says they run.
    let before = trials(&name);
    assert_eq!(before.len(), 2);
    assert_eq!(count(&before, TrialState::Running), 2);
    let stuck: Vec<usize> = before.iter().map(|t| t.index).collect();

    let mut peers: Vec<JsonProcess> = (0..2).map(|_| peer(&name, 12, false)).collect();
    for p in &mut peers {
        go(p);
    }
    for p in &mut peers {
        let r = result(p);
        assert_eq!(r["finished"], json!(12), "{r}");
    }
    let study = trials(&name);
    assert_eq!(count(&study, TrialState::Finished), 12);
    assert_no_repeats(&study);
    // Every trial the victim held failed when its lease ran out, and was proposed again.
    for n in stuck {
        assert_eq!(study[n].state, TrialState::Failed, "trial {n}");
        let retry = study
            .iter()
            .find(|t| t.retry_of == Some(n))
            .unwrap_or_else(|| panic!("trial {n} was not proposed again"));
        assert_eq!(retry.state, TrialState::Finished);
        assert_eq!(retry.assignment, study[n].assignment);
    }
    for p in peers {
        p.finish();
    }
}

#[test]
fn a_study_resumes_after_every_process_died_and_a_finished_one_runs_nothing() {
    let name = study_name("resume");
    let mut victims: Vec<JsonProcess> = (0..2).map(|_| peer(&name, 8, true)).collect();
    for v in &mut victims {
        go(v);
        assert_eq!(v.recv(), json!({"started": true}));
    }
    for v in &mut victims {
        v.kill();
    }
    // Each held a round of two trials.
    let held = trials(&name);
    assert_eq!(held.len(), 4);
    assert_eq!(count(&held, TrialState::Running), 4);
    // A new process resumes: it takes over the dead processes' trials and completes the study.
    let mut next = peer(&name, 8, false);
    go(&mut next);
    let r = result(&mut next);
    assert_eq!(r["finished"], json!(8), "{r}");
    assert_eq!(r["failed"], json!(held.len()), "{r}");
    let study = trials(&name);
    assert_eq!(count(&study, TrialState::Finished), 8);
    assert_no_repeats(&study);
    next.finish();
    // The study has its budget: one more process runs nothing.
    let mut last = peer(&name, 8, false);
    go(&mut last);
    let r = result(&mut last);
    assert_eq!(
        (&r["ran"], &r["trials"]),
        (&json!(0), &json!(study.len())),
        "{r}"
    );
    last.finish();
}
