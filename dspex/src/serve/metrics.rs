//! The Prometheus registry of a server (`GET /metrics`, text format): runs, errors and latency
//! per program and step, LM tokens, runs in flight. Every label set is a program, a step of
//! it or an error kind, so the series are bounded by the programs served.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::data::RunTrace;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProgramLabel {
    program: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    program: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepErrorLabels {
    program: String,
    step: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    program: String,
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    program: String,
    step: String,
    kind: &'static str,
}

type Latency<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The metrics of one server.
pub(crate) struct Metrics {
    registry: Registry,
    runs: Family<ProgramLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    step_errors: Family<StepErrorLabels, Counter>,
    run_seconds: Latency<ProgramLabel>,
    step_seconds: Latency<StepLabels>,
    steps: Family<StepLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    in_flight: Gauge,
    queued: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("dspex");
        let runs = Family::<ProgramLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let step_errors = Family::<StepErrorLabels, Counter>::default();
        let run_seconds: Latency<ProgramLabel> = Family::new_with_constructor(latency);
        let step_seconds: Latency<StepLabels> = Family::new_with_constructor(latency);
        let steps = Family::<StepLabels, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let in_flight = Gauge::default();
        let queued = Gauge::default();
        registry.register("runs", "Runs that finished, by program", runs.clone());
        registry.register(
            "run_errors",
            "Runs refused or failed, by program and error kind",
            errors.clone(),
        );
        registry.register(
            "step_errors",
            "Runs failed in a step, by program, step and error kind",
            step_errors.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Time of finished runs, by program",
            run_seconds.clone(),
        );
        registry.register(
            "steps",
            "Steps that finished, by program and step",
            steps.clone(),
        );
        registry.register(
            "step_duration_seconds",
            "Time of finished steps, by program and step",
            step_seconds.clone(),
        );
        registry.register(
            "lm_tokens",
            "LM tokens reported by the LM, by program, step and kind (prompt, completion)",
            tokens.clone(),
        );
        registry.register(
            "runs_in_flight",
            "Runs (and streams) going now",
            in_flight.clone(),
        );
        registry.register("runs_queued", "Runs waiting for a place", queued.clone());
        Self {
            registry,
            runs,
            errors,
            step_errors,
            run_seconds,
            step_seconds,
            steps,
            tokens,
            in_flight,
            queued,
        }
    }

    /// A run started; the guard counts it in flight until dropped.
    pub(crate) fn run_started(&self) -> InFlightRun {
        self.in_flight.inc();
        InFlightRun(self.in_flight.clone())
    }

    /// A run finished: its time, and its steps' times and tokens.
    pub(crate) fn run_finished(&self, program: &str, seconds: f64, trace: &RunTrace) {
        let label = ProgramLabel {
            program: program.to_owned(),
        };
        self.runs.get_or_create(&label).inc();
        self.run_seconds.get_or_create(&label).observe(seconds);
        for step in &trace.steps {
            let labels = StepLabels {
                program: program.to_owned(),
                step: step.step.clone(),
            };
            self.steps.get_or_create(&labels).inc();
            self.step_seconds
                .get_or_create(&labels)
                .observe(step.duration.as_secs_f64());
            for call in &step.lm_calls {
                for (kind, count) in [
                    ("prompt", call.prompt_tokens),
                    ("completion", call.completion_tokens),
                ] {
                    if let Some(count) = count {
                        self.tokens
                            .get_or_create(&TokenLabels {
                                program: program.to_owned(),
                                step: step.step.clone(),
                                kind,
                            })
                            .inc_by(count);
                    }
                }
            }
        }
    }

    /// A run was refused or failed with an error of `kind`, in `step` when it names one.
    pub(crate) fn run_failed(&self, program: &str, kind: &str, step: Option<&str>) {
        self.errors
            .get_or_create(&ErrorLabels {
                program: program.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
        if let Some(step) = step {
            self.step_errors
                .get_or_create(&StepErrorLabels {
                    program: program.to_owned(),
                    step: step.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
    }

    /// The text format, with `queued` runs waiting now.
    pub(crate) fn encode(&self, queued: usize) -> String {
        self.queued.set(i64::try_from(queued).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Counts one run in flight while it lives.
pub(crate) struct InFlightRun(Gauge);

impl Drop for InFlightRun {
    fn drop(&mut self) {
        self.0.dec();
    }
}
