//! `dspex::telemetry::init()` configured by the standard variables alone, end to end against a
//! real OTLP receiver: `OTEL_SERVICE_NAME` is the exported resource's `service.name`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL` picks the protocol, `OTEL_EXPORTER_OTLP_HEADERS` is sent
//! with each export (`OTEL_EXPORTER_OTLP_TRACES_HEADERS` first), and `OTEL_SDK_DISABLED=true`
//! exports nothing.
//!
//! The environment is the process's: each case runs in a child process (this test started
//! again with its variables set, and every other `OTEL_*` variable removed), so no case races
//! another test or reads what another set. The child installs telemetry with `init()`, runs a
//! native program once, flushes, and prints whether the flush succeeded and what its guard
//! counted.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod otel_common;

use std::time::Duration;

use dspex::prelude::*;
use dspex_test_otlp::OtlpReceiver;
use otel_common::{Thinker, question, scripted_lm};

/// Set in a child's environment: it is the child.
const CHILD: &str = "DSPEX_OTEL_ENV_CHILD";
/// How long a child may take (starting, one run, a flush).
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
    } else {
        parent();
        println!("otel_env: the variables reach the export (5 cases)");
    }
}

/// The child: `init()` from the environment, one run, a flush, its counts on stdout.
fn child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let guard = dspex::telemetry::init().unwrap();
        let ctx = Context::builder().lm(scripted_lm()).build().await.unwrap();
        let program = Thinker::attach(&ctx).await.unwrap();
        let out = program.run(question("Where is Rome?")).await.unwrap();
        assert_eq!(out.answer, "Italy");
        match guard.flush() {
            Ok(()) => println!("flushed"),
            Err(e) => println!("not flushed: {e}"),
        }
        println!(
            "exported {} lost {}",
            guard.spans_exported(),
            guard.spans_lost()
        );
    });
}

/// This test started again with `vars` (and no other `OTEL_*` variable); what it printed.
async fn run_child(vars: &[(&str, &str)]) -> String {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("OTEL_")) {
        command.env_remove(name);
    }
    command.env(CHILD, "1").envs(vars.iter().copied());
    command.kill_on_drop(true);
    let output = tokio::time::timeout(CHILD_DEADLINE, command.output())
        .await
        .expect("the child finishes within its deadline")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the child failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn parent() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let receiver = OtlpReceiver::start().await.unwrap();
        let http = receiver.endpoint();

        // Disabled: nothing installed, nothing sent, though an endpoint is given.
        let out = run_child(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &http),
            ("OTEL_SERVICE_NAME", "otel-env-disabled"),
        ])
        .await;
        assert!(out.contains("exported 0 lost 0"), "{out}");
        assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());

        // The service name, over the default protocol (`http/protobuf`).
        let out = run_child(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &http),
            ("OTEL_SERVICE_NAME", "otel-env-test"),
        ])
        .await;
        assert!(out.contains("exported 3 lost 0"), "{out}");
        let spans = receiver.spans();
        assert_eq!(spans.len(), 3, "{spans:#?}");
        assert!(
            spans
                .iter()
                .all(|s| s.service_name.as_deref() == Some("otel-env-test")),
            "{spans:#?}"
        );
        otel_common::only(&spans, "invoke_workflow Thinker");

        // The headers a collector wants (an API key), percent-decoded; the traces' own
        // variable wins over the general one. Without the key the collector refuses the spans.
        receiver.require_header("x-api-key", "s3cret key");
        let out = run_child(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &http),
            ("OTEL_SERVICE_NAME", "otel-env-no-key"),
        ])
        .await;
        assert!(out.contains("exported 0 lost 3"), "{out}");
        assert!(out.contains("not flushed") && out.contains("401"), "{out}");
        let out = run_child(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &http),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=wrong"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "x-api-key=s3cret%20key,x-other=1",
            ),
            ("OTEL_SERVICE_NAME", "otel-env-headers"),
        ])
        .await;
        assert!(out.contains("exported 3 lost 0"), "{out}");
        assert_eq!(receiver.spans().len(), 6, "{:#?}", receiver.spans());

        // The protocol the variable names (gRPC, on the receiver's gRPC port).
        let out = run_child(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint()),
            ("OTEL_SERVICE_NAME", "otel-env-grpc"),
        ])
        .await;
        assert!(out.contains("exported 3 lost 0"), "{out}");
        let spans = receiver.spans();
        let grpc: Vec<_> = spans
            .iter()
            .filter(|s| s.service_name.as_deref() == Some("otel-env-grpc"))
            .collect();
        assert_eq!(grpc.len(), 3, "{spans:#?}");
        assert_eq!(spans.len(), 9, "{spans:#?}");
        assert!(
            spans
                .iter()
                .all(|s| s.service_name.as_deref() != Some("otel-env-disabled")),
            "{spans:#?}"
        );
    });
}
