//! The table of DSPy optimizers a python step can be compiled with, and the settings each
//! takes: the keyword arguments of its constructor and of its `compile`, with the values each
//! accepts (the kinds of [`dspy::ConfigKind`](crate::dspy::ConfigKind)).
//!
//! This table is the one source of truth for both sides: `dspex` checks an optimizer and its
//! settings against it before anything is sent, and the Python worker routes each setting to
//! the constructor or to `compile` by the copy of it exported to the Python package
//! (`contract.json`), refusing what it does not list.
//!
//! ```
//! use dspex_core::dspy::ConfigValue;
//! use dspex_core::optimizers::{self, Stage};
//!
//! let bfs = optimizers::optimizer("BootstrapFewShot").unwrap();
//! assert_eq!(bfs.setting("max_bootstrapped_demos").unwrap().stage, Stage::Constructor);
//! let checked = optimizers::check("BootstrapFewShot", [("max_rounds", &ConfigValue::Integer(2))]);
//! assert!(checked.is_ok());
//! let err = optimizers::check("BootstrapFewShot", [("max_round", &ConfigValue::Integer(2))]);
//! assert!(err.unwrap_err().contains("did you mean `max_rounds`?"));
//! assert!(optimizers::check("Bootstrap", []).unwrap_err().contains("unknown optimizer"));
//! ```

use crate::dspy::{ConfigKind, ConfigValue};
use crate::suggest::did_you_mean;

/// Where a setting goes in the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A keyword argument of the optimizer's constructor.
    Constructor,
    /// A keyword argument of its `compile`.
    Compile,
}

impl Stage {
    /// The name the contract file uses: `constructor` or `compile`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Constructor => "constructor",
            Stage::Compile => "compile",
        }
    }
}

/// A setting of an optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// The keyword, as DSPy spells it.
    pub name: &'static str,
    /// What it accepts.
    pub kind: ConfigKind,
    /// Where it goes.
    pub stage: Stage,
}

/// A DSPy optimizer (a `dspy.teleprompt` class) the worker knows by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DspyOptimizer {
    /// The class name in `dspy` (`BootstrapFewShot`).
    pub name: &'static str,
    /// The settings it takes; anything else is refused.
    pub settings: &'static [Setting],
    /// Whether its `compile` takes a validation set (`valset`).
    pub takes_valset: bool,
    /// Settings of which exactly one must be given (a budget given three ways); empty: no such
    /// rule.
    pub exactly_one_of: &'static [&'static str],
    /// Whether it reflects (GEPA): its metric may answer with feedback text besides the score
    /// (called with five arguments, `(gold, pred, trace, pred_name, pred_trace)`), and it
    /// proposes instructions with a reflection LM, the LM the step compiles with.
    pub reflective: bool,
}

impl DspyOptimizer {
    /// The setting named `name`, if the optimizer takes it.
    pub fn setting(&self, name: &str) -> Option<&'static Setting> {
        self.settings.iter().find(|s| s.name == name)
    }
}

const fn constructor(name: &'static str, kind: ConfigKind) -> Setting {
    Setting {
        name,
        kind,
        stage: Stage::Constructor,
    }
}

const fn compile(name: &'static str, kind: ConfigKind) -> Setting {
    Setting {
        name,
        kind,
        stage: Stage::Compile,
    }
}

const COUNT: ConfigKind = ConfigKind::Integer { min: 0 };
const POSITIVE: ConfigKind = ConfigKind::Integer { min: 1 };
/// A score threshold: metrics score in `[0, 1]`.
const SCORE: ConfigKind = ConfigKind::Float {
    min: 0.0,
    max: Some(1.0),
};
const TEMPERATURE: ConfigKind = ConfigKind::Float {
    min: 0.0,
    max: None,
};

/// What every bootstrapping optimizer takes.
const MAX_BOOTSTRAPPED_DEMOS: Setting = constructor("max_bootstrapped_demos", COUNT);
const MAX_LABELED_DEMOS: Setting = constructor("max_labeled_demos", COUNT);
const MAX_ERRORS: Setting = constructor("max_errors", COUNT);
const METRIC_THRESHOLD: Setting = constructor("metric_threshold", SCORE);
const NUM_THREADS: Setting = constructor("num_threads", POSITIVE);

/// The optimizers the worker knows (DSPy 3.4), with the settings a literal can give.
///
/// - `BootstrapFewShot(metric, metric_threshold, teacher_settings, max_bootstrapped_demos=4,
///   max_labeled_demos=16, max_rounds=1, max_errors)`.
/// - `BootstrapFewShotWithRandomSearch(metric, ..., num_candidate_programs=16, num_threads,
///   stop_at_score)`, whose `compile` takes a `valset` (the train set when none) and
///   `labeled_sample`.
/// - `MIPROv2(metric, ..., auto="light", num_candidates, seed=9, init_temperature=1.0)` and its
///   `compile(num_trials, minibatch, minibatch_size, ...)`. `auto` also takes `"none"` (DSPy's
///   `None`), which needs `num_candidates` and `num_trials`.
/// - `COPRO(metric, breadth=10, depth=3, init_temperature=1.4)`.
/// - `GEPA(metric, auto | max_full_evals | max_metric_calls, reflection_minibatch_size=3,
///   candidate_selection_strategy="pareto", skip_perfect_score=True, use_merge=True,
///   max_merge_invocations=5, num_threads, failure_score=0.0, perfect_score=1.0, seed=0, ...)`,
///   whose `compile` takes a `valset`: exactly one of its three budgets must be given; its
///   reflection LM is the LM the step compiles with.
///
/// Left out: the settings that take Python objects (`teacher_settings`, `prompt_model`,
/// `task_model`, a `teacher` program, GEPA's `instruction_proposer` and logging), optimizers
/// that need an embedder (`KNNFewShot`) or fine-tuning (`BootstrapFinetune`), and
/// `LabeledFewShot`, which takes no metric (`BootstrapFewShot` with `max_bootstrapped_demos: 0`
/// does what it does).
pub const OPTIMIZERS: &[DspyOptimizer] = &[
    DspyOptimizer {
        name: "BootstrapFewShot",
        settings: &[
            MAX_BOOTSTRAPPED_DEMOS,
            MAX_LABELED_DEMOS,
            constructor("max_rounds", POSITIVE),
            MAX_ERRORS,
            METRIC_THRESHOLD,
        ],
        takes_valset: false,
        exactly_one_of: &[],
        reflective: false,
    },
    DspyOptimizer {
        name: "BootstrapFewShotWithRandomSearch",
        settings: &[
            MAX_BOOTSTRAPPED_DEMOS,
            MAX_LABELED_DEMOS,
            constructor("max_rounds", POSITIVE),
            constructor("num_candidate_programs", POSITIVE),
            NUM_THREADS,
            MAX_ERRORS,
            constructor("stop_at_score", SCORE),
            METRIC_THRESHOLD,
            compile("labeled_sample", ConfigKind::Boolean),
        ],
        takes_valset: true,
        exactly_one_of: &[],
        reflective: false,
    },
    DspyOptimizer {
        name: "MIPROv2",
        settings: &[
            MAX_BOOTSTRAPPED_DEMOS,
            MAX_LABELED_DEMOS,
            constructor(
                "auto",
                ConfigKind::OneOf(&["none", "light", "medium", "heavy"]),
            ),
            constructor("num_candidates", POSITIVE),
            NUM_THREADS,
            MAX_ERRORS,
            constructor("seed", COUNT),
            constructor("init_temperature", TEMPERATURE),
            METRIC_THRESHOLD,
            compile("num_trials", POSITIVE),
            compile("minibatch", ConfigKind::Boolean),
            compile("minibatch_size", POSITIVE),
            compile("minibatch_full_eval_steps", POSITIVE),
            compile("program_aware_proposer", ConfigKind::Boolean),
            compile("data_aware_proposer", ConfigKind::Boolean),
            compile("tip_aware_proposer", ConfigKind::Boolean),
            compile("fewshot_aware_proposer", ConfigKind::Boolean),
            compile("view_data_batch_size", POSITIVE),
        ],
        takes_valset: true,
        exactly_one_of: &[],
        reflective: false,
    },
    DspyOptimizer {
        name: "COPRO",
        settings: &[
            constructor("breadth", ConfigKind::Integer { min: 2 }),
            constructor("depth", POSITIVE),
            constructor("init_temperature", TEMPERATURE),
        ],
        takes_valset: false,
        exactly_one_of: &[],
        reflective: false,
    },
    DspyOptimizer {
        name: "GEPA",
        settings: &[
            constructor("auto", ConfigKind::OneOf(&["light", "medium", "heavy"])),
            constructor("max_full_evals", POSITIVE),
            constructor("max_metric_calls", POSITIVE),
            constructor("reflection_minibatch_size", POSITIVE),
            constructor(
                "candidate_selection_strategy",
                ConfigKind::OneOf(&["pareto", "current_best"]),
            ),
            constructor(
                "component_selector",
                ConfigKind::OneOf(&["round_robin", "all"]),
            ),
            constructor("skip_perfect_score", ConfigKind::Boolean),
            constructor("add_format_failure_as_feedback", ConfigKind::Boolean),
            constructor("use_merge", ConfigKind::Boolean),
            constructor("max_merge_invocations", COUNT),
            NUM_THREADS,
            constructor("failure_score", SCORE),
            constructor("perfect_score", SCORE),
            constructor("seed", COUNT),
        ],
        takes_valset: true,
        exactly_one_of: GEPA_BUDGETS,
        reflective: true,
    },
];

/// GEPA's budgets, of which exactly one is given.
const GEPA_BUDGETS: &[&str] = &["auto", "max_full_evals", "max_metric_calls"];

/// The optimizer named `name`.
pub fn optimizer(name: &str) -> Option<&'static DspyOptimizer> {
    OPTIMIZERS.iter().find(|o| o.name == name)
}

/// The names of the known optimizers, in table order.
pub fn optimizer_names() -> impl Iterator<Item = &'static str> + Clone {
    OPTIMIZERS.iter().map(|o| o.name)
}

/// An optimizer checked against the table, with each of its settings in canonical form.
pub type Checked = (&'static DspyOptimizer, Vec<(&'static Setting, ConfigValue)>);

/// Checks an optimizer and its settings against the table. Returns the optimizer and each
/// setting in canonical form (an integer widened for a float setting) with where it goes, or a
/// message naming the optimizer or the setting and the rule: an unknown optimizer (with the
/// known ones), an unknown setting (with the ones it takes), a value of the wrong kind or out
/// of range.
pub fn check<'a>(
    name: &str,
    settings: impl IntoIterator<Item = (&'a str, &'a ConfigValue)>,
) -> Result<Checked, String> {
    let Some(optimizer) = optimizer(name) else {
        let hint = did_you_mean(name, optimizer_names())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(format!(
            "unknown optimizer `{}`{hint}; the known optimizers are {}",
            crate::excerpt(name),
            names(optimizer_names())
        ));
    };
    let mut checked = Vec::new();
    for (key, value) in settings {
        let Some(setting) = optimizer.setting(key) else {
            let hint = did_you_mean(key, optimizer.settings.iter().map(|s| s.name))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "optimizer `{name}` takes no setting `{}`{hint}; it takes {}",
                crate::excerpt(key),
                names(optimizer.settings.iter().map(|s| s.name))
            ));
        };
        let value = setting.kind.check(value).map_err(|found| {
            format!(
                "optimizer `{name}` takes `{key}` as {}, found {found}",
                setting.kind
            )
        })?;
        checked.push((setting, value));
    }
    if !optimizer.exactly_one_of.is_empty() {
        let given: Vec<&str> = optimizer
            .exactly_one_of
            .iter()
            .copied()
            .filter(|one| checked.iter().any(|(s, _)| s.name == *one))
            .collect();
        if given.len() != 1 {
            let found = if given.is_empty() {
                "none".to_owned()
            } else {
                names(given.into_iter())
            };
            return Err(format!(
                "optimizer `{name}` takes exactly one of {}, found {found}",
                names(optimizer.exactly_one_of.iter().copied())
            ));
        }
    }
    Ok((optimizer, checked))
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_settings_are_unique() {
        let names: Vec<&str> = optimizer_names().collect();
        assert_eq!(
            names,
            [
                "BootstrapFewShot",
                "BootstrapFewShotWithRandomSearch",
                "MIPROv2",
                "COPRO",
                "GEPA"
            ]
        );
        for o in OPTIMIZERS {
            for (i, s) in o.settings.iter().enumerate() {
                assert!(
                    !o.settings[..i].iter().any(|t| t.name == s.name),
                    "{} twice in {}",
                    s.name,
                    o.name
                );
                assert!(
                    !matches!(s.kind, ConfigKind::Tools | ConfigKind::Literal),
                    "{} of {} needs a checked kind",
                    s.name,
                    o.name
                );
            }
        }
    }

    #[test]
    fn settings_are_checked_and_canonical() {
        let (o, checked) = check(
            "MIPROv2",
            [
                ("init_temperature", &ConfigValue::Integer(1)),
                ("num_trials", &ConfigValue::Integer(3)),
                ("minibatch", &ConfigValue::Boolean(false)),
            ],
        )
        .unwrap();
        assert_eq!(o.name, "MIPROv2");
        let got: Vec<(&str, Stage, ConfigValue)> = checked
            .iter()
            .map(|(s, v)| (s.name, s.stage, v.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "init_temperature",
                    Stage::Constructor,
                    ConfigValue::Float(1.0)
                ),
                ("num_trials", Stage::Compile, ConfigValue::Integer(3)),
                ("minibatch", Stage::Compile, ConfigValue::Boolean(false)),
            ]
        );
    }

    #[test]
    fn errors_name_the_optimizer_the_setting_and_the_rule() {
        assert_eq!(
            check("BootstrapFewShots", []).unwrap_err(),
            "unknown optimizer `BootstrapFewShots` (did you mean `BootstrapFewShot`?); the known \
             optimizers are `BootstrapFewShot`, `BootstrapFewShotWithRandomSearch`, `MIPROv2`, `COPRO`, \
             `GEPA`"
        );
        assert_eq!(
            check("COPRO", [("width", &ConfigValue::Integer(2))]).unwrap_err(),
            "optimizer `COPRO` takes no setting `width`; it takes `breadth`, `depth`, `init_temperature`"
        );
        assert_eq!(
            check("COPRO", [("breadth", &ConfigValue::Integer(1))]).unwrap_err(),
            "optimizer `COPRO` takes `breadth` as an integer of at least 2, found 1"
        );
        assert_eq!(
            check("MIPROv2", [("auto", &ConfigValue::from("fast"))]).unwrap_err(),
            "optimizer `MIPROv2` takes `auto` as one of \"none\", \"light\", \"medium\", \"heavy\", found \"fast\""
        );
        assert_eq!(
            check("MIPROv2", [("minibatch", &ConfigValue::Integer(1))]).unwrap_err(),
            "optimizer `MIPROv2` takes `minibatch` as a boolean, found an integer"
        );
        assert_eq!(
            check(
                "BootstrapFewShot",
                [("metric_threshold", &ConfigValue::Float(1.5))]
            )
            .unwrap_err(),
            "optimizer `BootstrapFewShot` takes `metric_threshold` as a float from 0.0 to 1.0, found 1.5"
        );
    }

    #[test]
    fn gepa_takes_exactly_one_budget() {
        let budget = |settings: &[(&'static str, ConfigValue)]| {
            check("GEPA", settings.iter().map(|(k, v)| (*k, v))).map(|(_, c)| c.len())
        };
        assert_eq!(budget(&[("auto", ConfigValue::from("light"))]), Ok(1));
        assert_eq!(
            budget(&[("max_metric_calls", ConfigValue::Integer(8))]),
            Ok(1)
        );
        assert_eq!(
            budget(&[("seed", ConfigValue::Integer(3))]).unwrap_err(),
            "optimizer `GEPA` takes exactly one of `auto`, `max_full_evals`, `max_metric_calls`, \
             found none"
        );
        assert_eq!(
            budget(&[
                ("max_metric_calls", ConfigValue::Integer(8)),
                ("auto", ConfigValue::from("heavy")),
            ])
            .unwrap_err(),
            "optimizer `GEPA` takes exactly one of `auto`, `max_full_evals`, `max_metric_calls`, \
             found `auto`, `max_metric_calls`"
        );
        assert_eq!(
            budget(&[("auto", ConfigValue::from("none"))]).unwrap_err(),
            "optimizer `GEPA` takes `auto` as one of \"light\", \"medium\", \"heavy\", found \"none\""
        );
        assert!(optimizer("GEPA").unwrap().reflective);
        assert!(OPTIMIZERS.iter().filter(|o| o.reflective).count() == 1);
    }
}
