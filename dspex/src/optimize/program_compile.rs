//! Compiling a whole program as DSPy's `teleprompter.compile(program, trainset=..)` does: the
//! optimizer's plan read from its settings, the program's LM steps found (native and python
//! `Predict` / `ChainOfThought`), the train and validation sets checked against the program's
//! inputs before any LM call, the demos found (`bootstrap`), scored before and after on the
//! validation set, and given to the steps: native steps in Rust, python steps as DSPy state in
//! their worker.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use dspex_core::Signature;
use dspex_core::dspy::ConfigValue;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use super::bootstrap::{
    AUGMENTED_KEY, BOOTSTRAP_CONCURRENCY, Bootstrap, BootstrapSettings, DemoSets, labeled_few_shot,
};
use super::optimizer::{
    CompileMetric, CompileReport, LABELED_FEW_SHOT, MAX_TRAIN_EXAMPLES, Optimizer,
};
use super::score::{Scorer, score_on};
use crate::context::Overrides;
use crate::data::Fields;
use crate::error::{Error, Result};
use crate::eval::{Dataset, Example, TokenUsage};
use crate::lm::{PredictorState, with_reasoning};
use crate::program::{BaseProgram, Predictor};
#[cfg(feature = "python")]
use crate::program::{CompiledState, PythonModule};
#[cfg(feature = "python")]
use crate::util::time::rfc3339;

/// `LabeledFewShot`'s `k` when not set.
const DEFAULT_LABELED_K: usize = 16;

/// `BootstrapFewShotWithRandomSearch`'s `num_candidate_programs` when not set.
const DEFAULT_CANDIDATE_PROGRAMS: usize = 16;

/// How many candidates of a random search are scored at once (each on
/// [`BOOTSTRAP_CONCURRENCY`](super::BOOTSTRAP_CONCURRENCY) validation examples at once).
pub const CANDIDATE_CONCURRENCY: usize = 4;

/// What an optimizer does to a whole program.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Labeled {
        k: usize,
    },
    Bootstrap(BootstrapSettings),
    RandomSearch {
        bootstrap: BootstrapSettings,
        candidates: usize,
        stop_at_score: Option<f64>,
        labeled_sample: bool,
    },
}

fn count(value: &ConfigValue) -> usize {
    match value {
        ConfigValue::Integer(i) => usize::try_from(*i).unwrap_or(0),
        _ => 0,
    }
}

fn score(value: &ConfigValue) -> Option<f64> {
    match value {
        ConfigValue::Float(x) => Some(*x),
        #[allow(clippy::cast_precision_loss)] // a score threshold: 0 or 1
        ConfigValue::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

impl Plan {
    /// The plan of `optimizer`, its settings checked (as DSPy's constructor would).
    fn of(optimizer: &Optimizer) -> Result<Self> {
        if optimizer.name() == LABELED_FEW_SHOT {
            let mut k = DEFAULT_LABELED_K;
            for (key, value) in optimizer.settings() {
                match (key.as_str(), value) {
                    ("k", ConfigValue::Integer(i)) if *i >= 0 => k = count(value),
                    ("k", _) => {
                        return Err(Error::compile(format!(
                            "optimizer `{LABELED_FEW_SHOT}` takes `k` as an integer from 0, found {value:?}"
                        )));
                    }
                    _ => {
                        return Err(Error::compile(format!(
                            "optimizer `{LABELED_FEW_SHOT}` takes no setting `{key}`; it takes `k`"
                        )));
                    }
                }
            }
            if optimizer.timeout_value().is_zero() {
                return Err(Error::InvalidOption {
                    option: "timeout".to_owned(),
                    message: "0 is not a timeout".to_owned(),
                });
            }
            return Ok(Plan::Labeled { k });
        }
        let (table, settings) = optimizer.checked_settings()?;
        let mut bootstrap = BootstrapSettings::default();
        let (mut candidates, mut stop_at_score, mut labeled_sample) =
            (DEFAULT_CANDIDATE_PROGRAMS, None, true);
        for (key, value) in &settings {
            match key.as_str() {
                "max_bootstrapped_demos" => bootstrap.max_bootstrapped_demos = count(value),
                "max_labeled_demos" => bootstrap.max_labeled_demos = count(value),
                "max_rounds" => bootstrap.max_rounds = count(value),
                "max_errors" => bootstrap.max_errors = count(value),
                "metric_threshold" => bootstrap.metric_threshold = score(value),
                "num_candidate_programs" => candidates = count(value),
                "stop_at_score" => stop_at_score = score(value),
                "labeled_sample" => labeled_sample = matches!(value, ConfigValue::Boolean(true)),
                // Runs are bounded by the program's own concurrency constants.
                "num_threads" => {}
                other => {
                    return Err(Error::compile(format!(
                        "optimizer `{}` setting `{other}` is for compiling one python step (`compile_step`); a whole program takes {}",
                        table.name,
                        "`max_bootstrapped_demos`, `max_labeled_demos`, `max_rounds`, `max_errors`, `metric_threshold` (and for random search `num_candidate_programs`, `num_threads`, `stop_at_score`, `labeled_sample`)"
                    )));
                }
            }
        }
        match table.name {
            "BootstrapFewShot" => Ok(Plan::Bootstrap(bootstrap)),
            "BootstrapFewShotWithRandomSearch" => Ok(Plan::RandomSearch {
                bootstrap,
                candidates,
                stop_at_score,
                labeled_sample,
            }),
            other => Err(Error::compile(format!(
                "optimizer `{other}` exists only in DSPy: compile a whole program with `LabeledFewShot`, `BootstrapFewShot` or `BootstrapFewShotWithRandomSearch`, or compile one python step with `{other}` (`compile_step`)"
            ))),
        }
    }
}

/// An LM step of a program, as compiling reaches it.
enum LmStep<'a> {
    Native {
        name: String,
        predictor: &'a dyn Predictor,
        fields: Vec<String>,
    },
    #[cfg(feature = "python")]
    Python {
        name: String,
        module: &'a PythonModule,
        class: String,
        fields: Vec<String>,
    },
}

/// The fields of a step's prompt: its signature's, and `reasoning` for a `ChainOfThought`.
fn prompt_fields(signature: &Signature, reasoning: bool) -> Vec<String> {
    let prompt = if reasoning {
        with_reasoning(signature)
    } else {
        signature.clone()
    };
    prompt
        .inputs
        .iter()
        .chain(&prompt.outputs)
        .map(|f| f.name.clone())
        .collect()
}

impl LmStep<'_> {
    fn name(&self) -> &str {
        match self {
            LmStep::Native { name, .. } => name,
            #[cfg(feature = "python")]
            LmStep::Python { name, .. } => name,
        }
    }

    /// `demo` with only the fields of the step's prompt (and DSPy's `augmented` mark): a
    /// labeled example holds the program's fields, which another step's state cannot hold.
    fn own_fields(&self, demo: &Fields) -> Fields {
        let fields = match self {
            LmStep::Native { fields, .. } => fields,
            #[cfg(feature = "python")]
            LmStep::Python { fields, .. } => fields,
        };
        demo.iter()
            .filter(|(k, _)| *k == AUGMENTED_KEY || fields.iter().any(|f| f == k))
            .map(|(k, v)| (k, v.clone()))
            .collect()
    }
}

/// The program's LM steps in chain order: native `Predict` and `ChainOfThought` steps, and
/// python steps running DSPy's `Predict` or `ChainOfThought`. Other native steps are run, not
/// compiled; a python step running another module is an error (its predictors are out of
/// reach), and so is a program with no LM step.
fn lm_steps<P: BaseProgram + ?Sized>(program: &P) -> Result<Vec<LmStep<'_>>> {
    let spec = program.program_spec();
    let natives = program.program_native_steps();
    #[cfg(feature = "python")]
    let pythons = program.program_python_steps();
    let mut steps = Vec::new();
    for step in &spec.steps {
        if let Some((_, module)) = natives.iter().find(|(name, _)| *name == step.name) {
            if let Some(predictor) = module.dyn_predictor() {
                let signature = predictor.own_signature().unwrap_or(&step.signature);
                steps.push(LmStep::Native {
                    name: step.name.clone(),
                    predictor,
                    fields: prompt_fields(signature, predictor.reasoning()),
                });
            }
            continue;
        }
        #[cfg(feature = "python")]
        if let Some(module) = pythons.iter().find(|m| m.step() == step.name) {
            let class = module.current_class()?;
            if !matches!(class.as_str(), "Predict" | "ChainOfThought") {
                return Err(Error::compile(format!(
                    "python step `{}` of program `{}` runs `{class}`, whose predictors a whole-program compile cannot reach; compile it on its own with `compile_step`, or make it a Predict or ChainOfThought step",
                    step.name, spec.name
                )));
            }
            let fields = prompt_fields(module.signature(), class == "ChainOfThought");
            steps.push(LmStep::Python {
                name: step.name.clone(),
                module,
                class,
                fields,
            });
        }
    }
    if steps.is_empty() {
        return Err(Error::compile(format!(
            "program `{}` has no LM step to compile: a whole-program compile gives demos to native Predict and ChainOfThought steps and to python Predict and ChainOfThought steps",
            spec.name
        )));
    }
    Ok(steps)
}

/// Checks a train or validation set against the program: at most [`MAX_TRAIN_EXAMPLES`], and
/// every example with every program input, of its declared type, and no other input.
fn check_examples<P: BaseProgram + ?Sized>(
    program: &P,
    which: &str,
    examples: &[Example],
) -> Result<()> {
    let spec = program.program_spec();
    let inputs = spec.input_fields();
    let listed: Vec<String> = inputs.iter().map(|f| format!("`{}`", f.name)).collect();
    let listed = listed.join(", ");
    if examples.len() > MAX_TRAIN_EXAMPLES {
        return Err(Error::limit(
            "MAX_TRAIN_EXAMPLES",
            format!(
                "the {which} to compile program `{}` holds {} examples, over the limit of {MAX_TRAIN_EXAMPLES} (MAX_TRAIN_EXAMPLES)",
                spec.name,
                examples.len()
            ),
        ));
    }
    for (index, example) in examples.iter().enumerate() {
        for field in &inputs {
            let value = example.input(&field.name).ok_or_else(|| {
                Error::compile(format!(
                    "{which} example {index} has no input `{}` of program `{}` (its inputs: {listed})",
                    field.name, spec.name
                ))
            })?;
            field.conform(value.clone()).map_err(|error| Error::Field {
                context: format!("{which} example {index} of program `{}`", spec.name),
                error: Box::new(error),
            })?;
        }
        if let Some(other) = example
            .inputs()
            .keys()
            .find(|name| !inputs.iter().any(|f| f.name == **name))
        {
            return Err(Error::compile(format!(
                "{which} example {index} has input `{other}`, which is no input of program `{}` (its inputs: {listed})",
                spec.name
            )));
        }
    }
    Ok(())
}

/// Compiles `program` (see [`AnyProgram::compile`](crate::AnyProgram::compile)).
pub(crate) async fn compile_program<P: BaseProgram + ?Sized>(
    program: &P,
    optimizer: &Optimizer,
    trainset: &Dataset,
    metric: &CompileMetric,
) -> Result<CompileReport> {
    let plan = Plan::of(optimizer)?;
    let steps = lm_steps(program)?;
    let train = trainset.examples();
    check_examples(program, "trainset", train)?;
    if train.is_empty() {
        return Err(Error::compile(format!(
            "the trainset to compile program `{}` is empty",
            program.program_spec().name
        )));
    }
    let valset = optimizer.valset_given().unwrap_or(train);
    check_examples(program, "valset", valset)?;
    if valset.is_empty() {
        return Err(Error::compile(format!(
            "the valset to compile program `{}` is empty",
            program.program_spec().name
        )));
    }
    let teacher = match optimizer.teacher_overrides() {
        Some(overrides) => overrides.validate(program.program_context(), program.program_spec())?,
        None => Overrides::new(),
    };
    let started = Instant::now();
    let scorer = Scorer::of(metric, program.program_context()).await?;
    let compiling = Compiling {
        program,
        steps: &steps,
        plan: &plan,
        scorer: &scorer,
        teacher: &teacher,
        train,
        valset,
    };
    let found = tokio::time::timeout(optimizer.timeout_value(), compiling.find())
        .await
        .map_err(|_| {
            Error::compile(format!(
                "compiling program `{}` took longer than its timeout of {:?}; nothing changed",
                program.program_spec().name,
                optimizer.timeout_value()
            ))
        })??;
    let demos = own_fields(&steps, &found.demos);
    apply(&steps, &demos, &optimizer.to_string()).await?;
    let after = score_on(program, valset, &scorer, BOOTSTRAP_CONCURRENCY, None).await;
    let mut eval_tokens = found.eval_tokens;
    eval_tokens.add(&after.tokens);
    Ok(CompileReport {
        step: program.program_spec().name.clone(),
        optimizer: optimizer.to_string(),
        metric: metric.name().to_owned(),
        class: "program".to_owned(),
        demos: demos
            .iter()
            .map(|(step, demos)| (step.clone(), u32::try_from(demos.len()).unwrap_or(u32::MAX)))
            .collect(),
        train_examples: train.len(),
        val_examples: valset.len(),
        tokens: found.tokens,
        duration: started.elapsed(),
        step_demos: demos,
        score_before: Some(found.before),
        score_after: Some(after.mean),
        eval_tokens,
        candidates: found.candidates,
    })
}

/// What compiling found, before anything changes.
struct Found {
    demos: DemoSets,
    before: f64,
    tokens: TokenUsage,
    eval_tokens: TokenUsage,
    candidates: Vec<f64>,
}

/// One compilation's inputs.
struct Compiling<'a, P: ?Sized> {
    program: &'a P,
    steps: &'a [LmStep<'a>],
    plan: &'a Plan,
    scorer: &'a Scorer,
    teacher: &'a Overrides,
    train: &'a [Example],
    valset: &'a [Example],
}

impl<P: BaseProgram + ?Sized> Compiling<'_, P> {
    fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name().to_owned()).collect()
    }

    /// The demos the plan gives every LM step, with the score before on the validation set.
    async fn find(&self) -> Result<Found> {
        let before = score_on(
            self.program,
            self.valset,
            self.scorer,
            BOOTSTRAP_CONCURRENCY,
            None,
        )
        .await;
        let mut found = Found {
            demos: DemoSets::new(),
            before: before.mean,
            tokens: TokenUsage::default(),
            eval_tokens: before.tokens,
            candidates: Vec::new(),
        };
        match self.plan {
            Plan::Labeled { k } => {
                found.demos = labeled_few_shot(&self.step_names(), self.train, *k, true);
            }
            Plan::Bootstrap(settings) => {
                let bootstrapped = self.bootstrap(settings, self.train, true).await?;
                found.tokens = bootstrapped.tokens;
                found.demos = bootstrapped.demos;
            }
            Plan::RandomSearch {
                bootstrap,
                candidates,
                stop_at_score,
                labeled_sample,
            } => {
                self.random_search(
                    &mut found,
                    bootstrap,
                    *candidates,
                    *stop_at_score,
                    *labeled_sample,
                )
                .await?;
            }
        }
        Ok(found)
    }

    async fn bootstrap(
        &self,
        settings: &BootstrapSettings,
        train: &[Example],
        progress: bool,
    ) -> Result<super::bootstrap::Bootstrapped> {
        let names = self.step_names();
        Bootstrap {
            program: self.program,
            lm_steps: &names,
            scorer: self.scorer,
            teacher: self.teacher,
            settings,
            progress,
        }
        .run(train)
        .await
    }

    /// DSPy's `BootstrapFewShotWithRandomSearch`: candidate demo sets (none, labeled only,
    /// bootstrapped from the train set in order, then from seeded shuffles with a seeded
    /// number of bootstrapped demos), each scored on the validation set; the best is kept
    /// (the first of equals), and the search stops early at `stop_at_score`.
    async fn random_search(
        &self,
        found: &mut Found,
        settings: &BootstrapSettings,
        candidates: usize,
        stop_at_score: Option<f64>,
        labeled_sample: bool,
    ) -> Result<()> {
        let names = self.step_names();
        let mut sets: Vec<DemoSets> = vec![
            names.iter().map(|n| (n.clone(), Vec::new())).collect(),
            labeled_few_shot(
                &names,
                self.train,
                settings.max_labeled_demos,
                labeled_sample,
            ),
        ];
        let unshuffled = self.bootstrap(settings, self.train, false).await?;
        found.tokens.add(&unshuffled.tokens);
        sets.push(unshuffled.demos);
        for seed in 0..candidates {
            let mut rng = crate::util::rng::SeededRng::new(seed as u64);
            let mut train = self.train.to_vec();
            rng.shuffle(&mut train);
            let size = 1 + rng.index(settings.max_bootstrapped_demos.max(1));
            let candidate_settings = BootstrapSettings {
                max_bootstrapped_demos: size,
                ..settings.clone()
            };
            let bootstrapped = self.bootstrap(&candidate_settings, &train, false).await?;
            found.tokens.add(&bootstrapped.tokens);
            sets.push(bootstrapped.demos);
        }
        let scores = self.score_candidates(&sets, stop_at_score).await;
        let best = scores
            .iter()
            .enumerate()
            .fold(None::<(usize, f64)>, |best, (i, (score, _))| match best {
                Some((_, top)) if top >= *score => best,
                _ => Some((i, *score)),
            })
            .map_or(0, |(i, _)| i);
        for (_, tokens) in &scores {
            found.eval_tokens.add(tokens);
        }
        found.candidates = scores.iter().map(|(score, _)| *score).collect();
        found.demos = sets.swap_remove(best);
        Ok(())
    }

    /// Each candidate's mean score on the validation set, in order, stopping after the first
    /// that reaches `stop_at_score`. Up to [`CANDIDATE_CONCURRENCY`] candidates are scored at
    /// once, every run with its candidate's demos for that run only (native steps prompt with
    /// them in Rust, python steps get them with their worker call), so the program itself is
    /// never changed while candidates are scored.
    async fn score_candidates(
        &self,
        sets: &[DemoSets],
        stop_at_score: Option<f64>,
    ) -> Vec<(f64, TokenUsage)> {
        let mut candidates = sets.iter().map(|set| {
            let demos = Arc::new(own_fields(self.steps, set));
            score_on(
                self.program,
                self.valset,
                self.scorer,
                BOOTSTRAP_CONCURRENCY,
                Some(demos),
            )
        });
        let mut in_flight = FuturesOrdered::new();
        let mut scores = Vec::new();
        loop {
            while in_flight.len() < CANDIDATE_CONCURRENCY {
                let Some(candidate) = candidates.next() else {
                    break;
                };
                in_flight.push_back(candidate);
            }
            let Some(scored) = in_flight.next().await else {
                break;
            };
            let reached = stop_at_score.is_some_and(|stop| scored.mean >= stop);
            scores.push((scored.mean, scored.tokens));
            if reached {
                break;
            }
        }
        scores
    }
}

/// Each step's demos with only the fields of its prompt.
fn own_fields(steps: &[LmStep<'_>], demos: &DemoSets) -> DemoSets {
    steps
        .iter()
        .map(|step| {
            let kept = demos
                .get(step.name())
                .into_iter()
                .flatten()
                .map(|demo| step.own_fields(demo))
                .collect();
            (step.name().to_owned(), kept)
        })
        .collect()
}

/// Gives every LM step its demos (`own_fields` first): a native step keeps its instructions and field texts with
/// the new demos; a python step's DSPy state (its compiled state's, or a fresh one) takes them,
/// checked in a worker for every python step before any step changes.
#[cfg_attr(not(feature = "python"), allow(irrefutable_let_patterns))]
async fn apply(steps: &[LmStep<'_>], demos: &DemoSets, how: &str) -> Result<()> {
    let demos = &own_fields(steps, demos);
    let demos_of = |name: &str| demos.get(name).cloned().unwrap_or_default();
    #[cfg(feature = "python")]
    let mut python = Vec::new();
    #[cfg(feature = "python")]
    for step in steps {
        if let LmStep::Python {
            name,
            module,
            class,
            ..
        } = step
        {
            let state = super::dspy::python_state_with_demos(
                module,
                class,
                class == "ChainOfThought",
                &demos_of(name),
            );
            let compiled = CompiledState {
                class: class.clone(),
                optimizer: how.to_owned(),
                compiled_at: rfc3339(SystemTime::now()),
                state,
            };
            module.check_state(&compiled).await?;
            python.push((*module, compiled));
        }
    }
    #[cfg(not(feature = "python"))]
    let _ = (how, SystemTime::now());
    for step in steps {
        if let LmStep::Native {
            name, predictor, ..
        } = step
        {
            predictor.set_predictor_state(PredictorState {
                demos: demos_of(name),
                ..predictor.predictor_state()
            });
        }
    }
    #[cfg(feature = "python")]
    for (module, compiled) in python {
        module.set_compiled_state(Some(compiled)).await?;
    }
    Ok(())
}
