//! The optimizers of DSPy a python step compiles with ([`Optimizer`], checked against the table
//! of `dspex_core::optimizers`), the metric they score with ([`CompileMetric`]), and what a
//! compilation reports ([`CompileReport`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dspex_core::dspy::ConfigValue;
use dspex_core::optimizers;
#[cfg(feature = "python")]
use serde_json::Value as Json;

use crate::context::Overrides;
#[cfg(feature = "python")]
use crate::context::{Callback, Invocation};
use crate::data::Fields;
use crate::error::{Error, Result};
use crate::eval::{Dataset, Example, Metric, TokenUsage};
#[cfg(feature = "python")]
use crate::eval::{checked_score, score_in_range};
use crate::lm::LmConfig;

/// The name of DSPy's `LabeledFewShot`, which compiles whole programs only.
pub(crate) const LABELED_FEW_SHOT: &str = "LabeledFewShot";

/// Examples in a train set, and in a validation set, of one compilation.
pub const MAX_TRAIN_EXAMPLES: usize = 1_000;

/// How long a compilation may take when its optimizer sets no timeout.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The longest timeout an optimizer may set.
pub const MAX_COMPILE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// A DSPy optimizer and its settings, as the table of `dspex_core::optimizers` lists them.
/// Nothing is checked until the optimizer is used (or [`check`](Self::check)ed): an unknown
/// optimizer or setting, or a value of the wrong kind, is then an [`Error::Compile`] naming it.
///
/// ```
/// use dspex::optimize::Optimizer;
///
/// let ok = Optimizer::bootstrap_few_shot().set("max_bootstrapped_demos", 2);
/// assert!(ok.check().is_ok());
/// let typo = Optimizer::bootstrap_few_shot().set("max_bootstraped_demos", 2);
/// assert!(typo.check().unwrap_err().to_string().contains("did you mean `max_bootstrapped_demos`?"));
/// assert!(Optimizer::new("SIMBA").check().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    name: String,
    settings: BTreeMap<String, ConfigValue>,
    valset: Option<Vec<Example>>,
    timeout: Duration,
    teacher: Option<Overrides>,
    reflection_lm: Option<LmConfig>,
}

impl Optimizer {
    /// The optimizer named `name` (a `dspy` class name), with DSPy's default settings.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            settings: BTreeMap::new(),
            valset: None,
            timeout: DEFAULT_COMPILE_TIMEOUT,
            teacher: None,
            reflection_lm: None,
        }
    }

    /// `LabeledFewShot`: up to `k` (default 16) train examples as every LM step's demos, with
    /// no LM call. Whole programs only ([`AnyProgram::compile`](crate::AnyProgram::compile)).
    pub fn labeled_few_shot() -> Self {
        Self::new(LABELED_FEW_SHOT)
    }

    /// `BootstrapFewShot`: demos bootstrapped from the train set by running the module, kept
    /// when the metric accepts them, plus labeled demos.
    pub fn bootstrap_few_shot() -> Self {
        Self::new("BootstrapFewShot")
    }

    /// `BootstrapFewShotWithRandomSearch`: several bootstrapped demo sets, the best on the
    /// validation set kept.
    pub fn bootstrap_random_search() -> Self {
        Self::new("BootstrapFewShotWithRandomSearch")
    }

    /// `MIPROv2`: instructions proposed by the LM and demo sets, searched together.
    pub fn mipro_v2() -> Self {
        Self::new("MIPROv2")
    }

    /// `COPRO`: instructions proposed and refined by the LM.
    pub fn copro() -> Self {
        Self::new("COPRO")
    }

    /// `GEPA`: instructions evolved by reflection on the metric's feedback (see
    /// [`CompileMetric::rust_feedback`]), the LM the step compiles with (the context's
    /// `LmConfig`) reflecting unless [`reflection_lm`](Self::reflection_lm) sets another. It
    /// takes exactly one budget: `auto` (`"light"`, `"medium"`, `"heavy"`), `max_metric_calls`
    /// or `max_full_evals`; `seed` makes its choices repeatable.
    ///
    /// ```
    /// use dspex::optimize::Optimizer;
    ///
    /// assert!(Optimizer::gepa().set("max_metric_calls", 40).set("seed", 7).check().is_ok());
    /// let two = Optimizer::gepa().set("auto", "light").set("max_full_evals", 2);
    /// assert!(two.check().unwrap_err().to_string().contains("exactly one of `auto`"));
    /// ```
    pub fn gepa() -> Self {
        Self::new("GEPA")
    }

    /// Sets `key` (a keyword of the optimizer's constructor or of its `compile`, as the table
    /// lists it) to `value`.
    #[must_use]
    pub fn set(mut self, key: impl Into<String>, value: impl Into<ConfigValue>) -> Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    /// The validation set, for an optimizer that takes one (the train set otherwise).
    #[must_use]
    pub fn valset(mut self, examples: &Dataset) -> Self {
        self.valset = Some(examples.examples().to_vec());
        self
    }

    /// The teacher's settings when a whole program is bootstrapped
    /// ([`AnyProgram::compile`](crate::AnyProgram::compile)): the program runs the train
    /// examples with these variable values (its own otherwise), as DSPy's `teacher_settings`.
    #[must_use]
    pub fn teacher(mut self, overrides: Overrides) -> Self {
        self.teacher = Some(overrides);
        self
    }

    /// The LM a reflective optimizer (GEPA) reflects with, set apart from the LM the step
    /// compiles with (default: that one, the context's `LmConfig`): a stronger model, or
    /// another endpoint. The worker builds it for the compilation only. A configuration out
    /// of its bounds, or one set on an optimizer that does not reflect, is an error before any
    /// LM call.
    ///
    /// ```
    /// use dspex::LmConfig;
    /// use dspex::optimize::Optimizer;
    ///
    /// let strong = LmConfig::openai("http://127.0.0.1:8000/v1", "big-model");
    /// let gepa = Optimizer::gepa().set("auto", "light").reflection_lm(strong.clone());
    /// assert!(gepa.check().is_ok());
    /// let err = Optimizer::copro().reflection_lm(strong).check().unwrap_err();
    /// assert!(err.to_string().contains("`COPRO` does not reflect"));
    /// ```
    #[must_use]
    pub fn reflection_lm(mut self, lm: LmConfig) -> Self {
        self.reflection_lm = Some(lm);
        self
    }

    /// The reflection LM, if one was set.
    pub fn reflection_lm_config(&self) -> Option<&LmConfig> {
        self.reflection_lm.as_ref()
    }

    /// How long the compilation may take, waiting for a worker included (at most
    /// [`MAX_COMPILE_TIMEOUT`]; [`DEFAULT_COMPILE_TIMEOUT`] if not set).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The optimizer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its settings, as given.
    pub fn settings(&self) -> &BTreeMap<String, ConfigValue> {
        &self.settings
    }

    pub(crate) fn valset_given(&self) -> Option<&[Example]> {
        self.valset.as_deref()
    }

    #[cfg(feature = "python")]
    pub(crate) fn valset_examples(&self) -> &[Example] {
        self.valset.as_deref().unwrap_or_default()
    }

    pub(crate) fn teacher_overrides(&self) -> Option<&Overrides> {
        self.teacher.as_ref()
    }

    pub(crate) fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// Checks the optimizer, its settings, its validation set and its timeout against the
    /// table and the bounds; returns the settings in canonical form.
    pub fn check(&self) -> Result<BTreeMap<String, ConfigValue>> {
        if self.name == LABELED_FEW_SHOT {
            return Err(Error::compile(format!(
                "optimizer `{LABELED_FEW_SHOT}` compiles whole programs only (`program.compile(..)`), not one python step"
            )));
        }
        if self.teacher.is_some() {
            return Err(Error::compile(
                "a teacher's settings are for whole programs only (`program.compile(..)`); compiling one python step takes none",
            ));
        }
        let (table, checked) = self.checked_settings()?;
        if self.valset.is_some() && !table.takes_valset {
            return Err(Error::compile(format!(
                "optimizer `{}` takes no validation set",
                self.name
            )));
        }
        Ok(checked)
    }

    /// The optimizer's table entry and its settings in canonical form, and the timeout
    /// checked (whatever the validation set).
    pub(crate) fn checked_settings(
        &self,
    ) -> Result<(
        &'static optimizers::DspyOptimizer,
        BTreeMap<String, ConfigValue>,
    )> {
        let (table, checked) = optimizers::check(
            &self.name,
            self.settings.iter().map(|(k, v)| (k.as_str(), v)),
        )
        .map_err(Error::compile)?;
        if let Some(lm) = &self.reflection_lm {
            if !table.reflective {
                return Err(Error::compile(format!(
                    "optimizer `{}` does not reflect: a reflection LM is for {}",
                    self.name,
                    reflective_names()
                )));
            }
            lm.check().map_err(|e| {
                Error::compile(format!(
                    "the reflection LM of optimizer `{}`: {e}",
                    self.name
                ))
            })?;
        }
        if self.timeout.is_zero() || self.timeout > MAX_COMPILE_TIMEOUT {
            return Err(Error::InvalidOption {
                option: "timeout".to_owned(),
                message: format!(
                    "{:?} is not between 0 (excluded) and {MAX_COMPILE_TIMEOUT:?} (MAX_COMPILE_TIMEOUT)",
                    self.timeout
                ),
            });
        }
        Ok((
            table,
            checked
                .into_iter()
                .map(|(setting, value)| (setting.name.to_owned(), value))
                .collect(),
        ))
    }
}

impl fmt::Display for Optimizer {
    /// `BootstrapFewShot(max_bootstrapped_demos=2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={}", config_text(v)))
            .collect();
        write!(f, "{}({})", self.name, settings.join(", "))
    }
}

/// `` `GEPA` ``: the optimizers of the table that reflect.
fn reflective_names() -> String {
    let names: Vec<String> = optimizers::OPTIMIZERS
        .iter()
        .filter(|o| o.reflective)
        .map(|o| format!("`{}`", o.name))
        .collect();
    names.join(", ")
}

fn config_text(value: &ConfigValue) -> String {
    match value {
        ConfigValue::Integer(i) => i.to_string(),
        ConfigValue::Float(x) => format!("{x:?}"),
        ConfigValue::String(s) => format!("{s:?}"),
        ConfigValue::Boolean(b) => b.to_string(),
        ConfigValue::Strings(v) => format!("{v:?}"),
        ConfigValue::Tools(v) => format!("{v:?}"),
    }
}

/// The metric an optimizer scores the step's predictions with.
#[derive(Clone)]
pub enum CompileMetric {
    /// A Python callable by dotted path (`"my_pkg.metrics.exact_answer"`), imported by the
    /// worker: `metric(example, prediction, trace=None)` returning a number in `[0, 1]` or a
    /// boolean, as DSPy's optimizers call it. Compiling one python step, the optimizer calls
    /// it in the worker; compiling a whole program, the worker scores each run with it (the
    /// example's inputs and labels and the program's outputs; while bootstrapping, `trace` is
    /// the run's LM steps as `(step name, inputs, dspy.Prediction)` tuples). Its exception, or
    /// a score outside `[0, 1]`, fails that run as a Rust metric's error does.
    Python(String),
    /// A Rust [`Metric`], called back from Python for every score the optimizer asks for:
    /// registered as a callable of the context's bridge session for the compilation only
    /// (`CallbackService`), it gets the example (the step's inputs and labels) and the
    /// prediction (every output of the step, `reasoning` included) as fields. Its error, or a
    /// score outside `[0, 1]`, fails that example as a Python metric's exception does.
    Rust(Arc<dyn Metric>),
    /// A Rust metric that also says what was wrong ([`rust_feedback`](Self::rust_feedback)),
    /// called back as [`Rust`](Self::Rust) is. GEPA reflects on its feedback text; the other
    /// optimizers take its score only.
    RustFeedback(Arc<FeedbackFn>),
}

/// A metric scoring a prediction for an example with feedback text: `(score, feedback)`, the
/// score in `[0, 1]`.
pub type FeedbackFn = dyn Fn(&Example, &Fields) -> Result<(f64, String)> + Send + Sync;

/// The name a feedback metric has in reports.
pub const FEEDBACK_METRIC_NAME: &str = "rust_feedback";

impl fmt::Debug for CompileMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileMetric::Python(path) => f.debug_tuple("Python").field(path).finish(),
            CompileMetric::Rust(metric) => f.debug_tuple("Rust").field(&metric.name()).finish(),
            CompileMetric::RustFeedback(_) => f.write_str("RustFeedback"),
        }
    }
}

impl CompileMetric {
    /// A Python metric by dotted path.
    pub fn python(path: impl Into<String>) -> Self {
        CompileMetric::Python(path.into())
    }

    /// A Rust metric (a built-in, or a closure through [`metric_fn`](crate::eval::metric_fn)).
    pub fn rust(metric: impl Metric + 'static) -> Self {
        CompileMetric::Rust(Arc::new(metric))
    }

    /// A Rust metric with feedback text, for GEPA: `score_with_feedback(example, prediction)`
    /// returns the score in `[0, 1]` and what the reflection LM should learn from it. DSPy's
    /// GEPA calls its metric with five arguments (`gold, pred, trace, pred_name, pred_trace`);
    /// the worker passes the example and the prediction on.
    ///
    /// ```
    /// use dspex::optimize::CompileMetric;
    ///
    /// let metric = CompileMetric::rust_feedback(|example, prediction| {
    ///     let right = example.expected("answer") == prediction.value("answer");
    ///     Ok(if right { (1.0, "Correct.".into()) } else { (0.0, "Answer with the city only.".into()) })
    /// });
    /// assert_eq!(metric.name(), "rust_feedback");
    /// ```
    pub fn rust_feedback(
        score_with_feedback: impl Fn(&Example, &Fields) -> Result<(f64, String)> + Send + Sync + 'static,
    ) -> Self {
        CompileMetric::RustFeedback(Arc::new(score_with_feedback))
    }

    /// The metric's name, in reports.
    pub fn name(&self) -> &str {
        match self {
            CompileMetric::Python(path) => path,
            CompileMetric::Rust(metric) => metric.name(),
            CompileMetric::RustFeedback(_) => FEEDBACK_METRIC_NAME,
        }
    }

    #[cfg(feature = "python")]
    /// The callable a Rust metric is registered as, named `name` (none for a Python metric):
    /// the arguments the worker sends (`{"example": {"inputs", "labels"}, "prediction"}`)
    /// become an [`Example`] and the prediction's [`Fields`], and the answer is the checked
    /// score, or `{"score", "feedback"}` from a feedback metric when the optimizer reflects.
    pub(crate) fn callback(&self, name: String, reflective: bool) -> Option<Callback> {
        let answer: Arc<ScoreAnswer> = match self {
            CompileMetric::Python(_) => return None,
            CompileMetric::Rust(metric) => {
                let metric = Arc::clone(metric);
                Arc::new(move |example, prediction| {
                    checked_score(metric.as_ref(), example, prediction).map(Json::from)
                })
            }
            CompileMetric::RustFeedback(score_with_feedback) => {
                let score_with_feedback = Arc::clone(score_with_feedback);
                Arc::new(move |example, prediction| {
                    let (score, feedback) =
                        score_with_feedback(example, prediction).map_err(|e| Error::Metric {
                            metric: FEEDBACK_METRIC_NAME.to_owned(),
                            message: e.to_string(),
                        })?;
                    let score = score_in_range(FEEDBACK_METRIC_NAME, score)?;
                    Ok(if reflective {
                        serde_json::json!({"score": score, "feedback": feedback})
                    } else {
                        Json::from(score)
                    })
                })
            }
        };
        let callback = Callback::new(name, move |call: Invocation| {
            let answer = Arc::clone(&answer);
            async move {
                let part = |value: Option<&Json>, what: &str| -> std::result::Result<_, String> {
                    value
                        .and_then(Json::as_object)
                        .cloned()
                        .ok_or_else(|| format!("the metric's arguments have no object `{what}`"))
                };
                let example_json = part(call.arguments.get("example"), "example")?;
                let inputs = part(example_json.get("inputs"), "example.inputs")?;
                let labels = part(example_json.get("labels"), "example.labels")?;
                let prediction = part(call.arguments.get("prediction"), "prediction")?;
                let example = inputs
                    .into_iter()
                    .fold(Example::new(), |ex, (k, v)| ex.with_input(k, v));
                let example = labels
                    .into_iter()
                    .fold(example, |ex, (k, v)| ex.with_expected(k, v));
                let prediction: Fields = prediction.into_iter().collect();
                answer(&example, &prediction).map_err(|e| e.to_string())
            }
        })
        .timeout(METRIC_CALLBACK_TIMEOUT);
        Some(callback)
    }
}

/// What a Rust metric's callable answers for an example and a prediction.
#[cfg(feature = "python")]
type ScoreAnswer = dyn Fn(&Example, &Fields) -> Result<Json> + Send + Sync;

/// How long one call of a Rust metric may take.
pub const METRIC_CALLBACK_TIMEOUT: Duration = Duration::from_secs(60);

/// What a compilation did: of one python step (`compile_step`: its predictors' demo counts),
/// or of a whole program (`compile`: `step` is the program's name, `class` is `program`, and
/// `demos` counts each LM step's demos by step name).
#[derive(Debug, Clone, PartialEq)]
pub struct CompileReport {
    /// The step compiled.
    pub step: String,
    /// The optimizer and its settings.
    pub optimizer: String,
    /// The metric.
    pub metric: String,
    /// The module class compiled.
    pub class: String,
    /// The demos each predictor of the compiled module holds, by predictor name.
    pub demos: BTreeMap<String, u32>,
    /// Examples of the train set and of the validation set.
    pub train_examples: usize,
    /// Examples of the validation set (0: none given).
    pub val_examples: usize,
    /// The LM requests the compilation made, with their token usage.
    pub tokens: TokenUsage,
    /// Wall time (as the worker measured it, for one python step).
    pub duration: Duration,
    /// A whole program's compile: the demos each LM step holds now, by step name (empty for
    /// one python step: see [`demos`](Self::demos)).
    pub step_demos: BTreeMap<String, Vec<Fields>>,
    /// A whole program's compile: the mean score on the validation set before.
    pub score_before: Option<f64>,
    /// A whole program's compile: the mean score on the validation set after.
    pub score_after: Option<f64>,
    /// A whole program's compile: the LM usage of scoring on the validation set (before,
    /// after, and each candidate of a random search), apart from [`tokens`](Self::tokens).
    pub eval_tokens: TokenUsage,
    /// A random search's candidates' scores on the validation set, in the order tried (zero
    /// demos, labeled demos only, bootstrapped in order, then seeded shuffles).
    pub candidates: Vec<f64>,
}

impl CompileReport {
    /// Demos over all predictors.
    pub fn total_demos(&self) -> u32 {
        self.demos.values().sum()
    }
}

impl fmt::Display for CompileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.score_before.is_some() {
            "program"
        } else {
            "step"
        };
        writeln!(
            f,
            "compiled {what} `{}` ({}) with {} ({})",
            self.step, self.class, self.optimizer, self.metric
        )?;
        let demos: Vec<String> = self
            .demos
            .iter()
            .map(|(p, n)| format!("{p}: {n}"))
            .collect();
        writeln!(f, "demos        {}", demos.join(", "))?;
        writeln!(
            f,
            "examples     {} train, {} validation",
            self.train_examples, self.val_examples
        )?;
        if let (Some(before), Some(after)) = (self.score_before, self.score_after) {
            writeln!(f, "validation   {before:.3} before, {after:.3} after")?;
        }
        if !self.candidates.is_empty() {
            let scores: Vec<String> = self.candidates.iter().map(|s| format!("{s:.3}")).collect();
            writeln!(f, "candidates   {}", scores.join(", "))?;
        }
        write!(
            f,
            "LM requests  {} ({} prompt + {} completion tokens) in {:.2?}",
            self.tokens.lm_calls,
            self.tokens.prompt_tokens,
            self.tokens.completion_tokens,
            self.duration
        )?;
        if self.eval_tokens.lm_calls > 0 {
            write!(
                f,
                "\nscoring      {} LM requests ({} tokens)",
                self.eval_tokens.lm_calls,
                self.eval_tokens.total()
            )?;
        }
        Ok(())
    }
}
