//! DSPy's saved state (the JSON file `module.save("program.json")` writes) read into a step and
//! written from one: per predictor its demos, its signature's instructions and its fields'
//! prefixes and descriptions. A native `Predict` step takes a `dspy.Predict`'s file, a native
//! `ChainOfThought` step a `dspy.ChainOfThought`'s; a python step takes its module's, loaded by
//! DSPy's own `load_state` in the worker.

use std::collections::BTreeMap;
use std::path::Path;
#[cfg(feature = "python")]
use std::time::SystemTime;

use dspex_core::Signature;
use serde_json::{Map, Value as Json, json};
use tracing::warn;

use crate::data::Fields;
use crate::error::{Error, Result};
use crate::lm::{
    FieldText, PredictorState, default_instructions, placeholder_description, with_reasoning,
};
use crate::program::compiled::MAX_COMPILED_STATE_BYTES;
use crate::program::{BaseProgram, Predictor};
#[cfg(feature = "python")]
use crate::program::{CompiledState, PythonModule};
#[cfg(feature = "python")]
use crate::util::time::rfc3339;

/// Bytes of a DSPy state file: the largest `load_dspy_state` reads.
pub const MAX_DSPY_STATE_BYTES: usize = MAX_COMPILED_STATE_BYTES;

/// The DSPy version whose files this build reads and writes; a file saved by another major
/// version loads with a warning, as DSPy's own `load` warns.
pub const DSPY_VERSION: &str = "3.4.1";

/// The name DSPy gives the predictor of a `ChainOfThought`.
const CHAIN_OF_THOUGHT_PREDICTOR: &str = "predict";

/// The demo key DSPy's bootstrapping adds to the demos it made.
const AUGMENTED_KEY: &str = "augmented";

/// A step that DSPy state goes into or comes from.
enum Target<'a> {
    Native {
        predictor: &'a dyn Predictor,
        /// The signature of its prompt (with `reasoning` for `ChainOfThought`).
        prompt: Signature,
        /// The signature the step declares (for DSPy's default instructions).
        declared: Signature,
    },
    #[cfg(feature = "python")]
    Python(&'a PythonModule),
}

fn target<'a, P: BaseProgram + ?Sized>(program: &'a P, step: &str) -> Result<Target<'a>> {
    let spec = program.program_spec();
    if let Some((_, module)) = program
        .program_native_steps()
        .into_iter()
        .find(|(name, _)| *name == step)
    {
        let predictor = module.dyn_predictor().ok_or_else(|| {
            Error::program_state(format!(
                "step `{step}` of program `{}` is a native step that is no Predict or ChainOfThought: it holds no DSPy state",
                spec.name
            ))
        })?;
        let declared = match predictor.own_signature() {
            Some(signature) => signature.clone(),
            None => spec
                .steps
                .iter()
                .find(|s| s.name == step)
                .map(|s| s.signature.clone())
                .ok_or_else(|| Error::Internal(format!("no spec for step `{step}`")))?,
        };
        let prompt = if predictor.reasoning() {
            with_reasoning(&declared)
        } else {
            declared.clone()
        };
        return Ok(Target::Native {
            predictor,
            prompt,
            declared,
        });
    }
    #[cfg(feature = "python")]
    if let Some(module) = program
        .program_python_steps()
        .into_iter()
        .find(|m| m.step() == step)
    {
        return Ok(Target::Python(module));
    }
    let names: Vec<String> = spec.steps.iter().map(|s| format!("`{}`", s.name)).collect();
    Err(Error::program_state(format!(
        "program `{}` has no step `{step}`; its steps are {}",
        spec.name,
        names.join(", ")
    )))
}

/// Loads the DSPy state file at `path` into step `step` of `program` (see
/// [`AnyProgram::load_dspy_state`](crate::AnyProgram::load_dspy_state)).
pub(crate) async fn load<P: BaseProgram + ?Sized>(
    program: &P,
    step: &str,
    path: &Path,
) -> Result<()> {
    let located = |e: Error| match e {
        Error::ProgramState { message, source } => Error::ProgramState {
            message: format!("DSPy state {}: {message}", path.display()),
            source,
        },
        e => e,
    };
    let target = target(program, step).map_err(located)?;
    let state = read_file(path).map_err(located)?;
    match target {
        Target::Native {
            predictor,
            prompt,
            declared,
        } => {
            let learned =
                native_state(predictor, step, &prompt, &declared, state).map_err(located)?;
            predictor.set_predictor_state(learned);
            Ok(())
        }
        #[cfg(feature = "python")]
        Target::Python(module) => {
            // DSPy's own `load_state` takes any shape; the known predictors are checked first,
            // so that a file of another module is refused naming the difference.
            let class = module.current_class()?;
            if let kind @ ("Predict" | "ChainOfThought") = class.as_str() {
                predictor_part(step, kind, kind == "ChainOfThought", state.clone())
                    .map_err(located)?;
            }
            let state = python_state(state);
            let compiled = CompiledState {
                class,
                optimizer: format!("DSPy state from {}", path.display()),
                compiled_at: rfc3339(SystemTime::now()),
                state,
            };
            module.check_state(&compiled).await.map_err(located)?;
            module.set_compiled_state(Some(compiled)).await
        }
    }
}

/// Writes step `step` of `program` to `path` as DSPy's `module.save(path)` writes a module's
/// state (see [`AnyProgram::save_dspy_state`](crate::AnyProgram::save_dspy_state)).
pub(crate) async fn save<P: BaseProgram + ?Sized>(
    program: &P,
    step: &str,
    path: &Path,
) -> Result<()> {
    let mut state = match target(program, step)? {
        Target::Native {
            predictor,
            prompt,
            declared,
        } => module_json(
            predictor.reasoning(),
            &predictor.predictor_state(),
            &prompt,
            &declared,
        ),
        #[cfg(feature = "python")]
        Target::Python(module) => {
            // A step never compiled nor loaded saves its module's state as created.
            let state = match module.compiled_state() {
                Some(compiled) => compiled.state,
                None => module.initial_state().await?,
            };
            match state {
                Json::Object(map) => map,
                _ => {
                    return Err(Error::program_state(format!(
                        "the state of step `{step}` is not a JSON object"
                    )));
                }
            }
        }
    };
    state.insert(
        "metadata".to_owned(),
        json!({"dependency_versions": {"dspy": DSPY_VERSION}}),
    );
    let text = serde_json::to_string_pretty(&Json::Object(state)).unwrap_or_default();
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::program_state_with(format!("cannot write {}", path.display()), e)
        })
}

/// A module's state as DSPy dumps it, from one predictor's: a `Predict`'s own (flat), or a
/// `ChainOfThought`'s one predictor `predict` (`reasoning`).
fn module_json(
    reasoning: bool,
    state: &PredictorState,
    prompt: &Signature,
    declared: &Signature,
) -> Map<String, Json> {
    let predictor_state = predictor_json(state, prompt, declared);
    if reasoning {
        Map::from_iter([(CHAIN_OF_THOUGHT_PREDICTOR.to_owned(), predictor_state)])
    } else {
        match predictor_state {
            Json::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// The learned state of native step `step` as DSPy dumps it, if the step is a native
/// `Predict` or `ChainOfThought` that learned anything (demos, instructions, field texts).
pub(super) fn native_state_json<P: BaseProgram + ?Sized>(
    program: &P,
    step: &str,
) -> Option<Map<String, Json>> {
    match target(program, step).ok()? {
        Target::Native {
            predictor,
            prompt,
            declared,
        } => {
            let state = predictor.predictor_state();
            (state != PredictorState::default())
                .then(|| module_json(predictor.reasoning(), &state, &prompt, &declared))
        }
        #[cfg(feature = "python")]
        Target::Python(_) => None,
    }
}

/// Reads `state` (as [`native_state_json`] writes it) for native step `step`, changing
/// nothing: the predictor and the state to give it.
pub(super) fn read_native_state<'a, P: BaseProgram + ?Sized>(
    program: &'a P,
    step: &str,
    state: Map<String, Json>,
) -> Result<(&'a dyn Predictor, PredictorState)> {
    match target(program, step)? {
        Target::Native {
            predictor,
            prompt,
            declared,
        } => {
            let learned = native_state(predictor, step, &prompt, &declared, state)?;
            Ok((predictor, learned))
        }
        #[cfg(feature = "python")]
        Target::Python(_) => Err(Error::program_state(format!(
            "holds a native step's state for step `{step}`, which is a python step"
        ))),
    }
}

/// The DSPy state of python step `module` (a `Predict` or a `ChainOfThought`, per
/// `reasoning`) with `demos` as its predictor's demos: its compiled state's, demos replaced,
/// when it has one of that class, else DSPy's fresh state of the step's signature.
#[cfg(feature = "python")]
pub(super) fn python_state_with_demos(
    module: &PythonModule,
    class: &str,
    reasoning: bool,
    demos: &[Fields],
) -> Json {
    let demos_json = Json::Array(demos.iter().map(demo_json).collect());
    if let Some(compiled) = module.compiled_state().filter(|c| c.class == class) {
        let mut state = compiled.state;
        let predictor = if reasoning {
            state.get_mut(CHAIN_OF_THOUGHT_PREDICTOR)
        } else {
            Some(&mut state)
        };
        if let Some(Json::Object(predictor)) = predictor {
            predictor.insert("demos".to_owned(), demos_json);
            return state;
        }
    }
    let declared = module.signature();
    let prompt = if reasoning {
        with_reasoning(declared)
    } else {
        declared.clone()
    };
    let fresh = PredictorState {
        demos: demos.to_vec(),
        ..PredictorState::default()
    };
    Json::Object(module_json(reasoning, &fresh, &prompt, declared))
}

/// The file's state, without its `metadata` (checked: a file of another DSPy major version
/// is loaded with a warning). Directories and pickles are refused, and the size is bounded.
fn read_file(path: &Path) -> Result<Map<String, Json>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::program_state_with("cannot read the file", e))?;
    if meta.is_dir() {
        return Err(Error::program_state(
            "is a directory: DSPy's `save_program=True` writes a whole program as a pickle, which dspex never unpickles; save the state only, with `module.save(\"program.json\")`",
        ));
    }
    if path.extension().is_some_and(|e| e == "pkl") {
        return Err(Error::program_state(
            "is a pickle, which dspex never unpickles; save the state as JSON, with `module.save(\"program.json\")`",
        ));
    }
    if meta.len() > MAX_DSPY_STATE_BYTES as u64 {
        return Err(Error::limit(
            "MAX_DSPY_STATE_BYTES",
            format!(
                "DSPy state {} is {} bytes, over the limit of {MAX_DSPY_STATE_BYTES} (MAX_DSPY_STATE_BYTES)",
                path.display(),
                meta.len()
            ),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::program_state_with("cannot read the file", e))?;
    let Json::Object(mut state) =
        serde_json::from_str(&text).map_err(|e| Error::program_state_with("is not JSON", e))?
    else {
        return Err(Error::program_state(
            "is not a JSON object, as DSPy's `module.save` writes",
        ));
    };
    if let Some(version) = state
        .remove("metadata")
        .as_ref()
        .and_then(other_major_version)
    {
        warn!(
            path = %path.display(),
            saved_with = version,
            reads = DSPY_VERSION,
            "a DSPy state saved by another major version of DSPy: its prompts may differ"
        );
    }
    Ok(state)
}

/// The DSPy version a file's `metadata` names, when its major version is not
/// [`DSPY_VERSION`]'s (the file loads, with a warning).
fn other_major_version(metadata: &Json) -> Option<&str> {
    let version = metadata
        .pointer("/dependency_versions/dspy")
        .and_then(Json::as_str)?;
    let major = |v: &str| v.split('.').next().map(str::to_owned);
    (major(version) != major(DSPY_VERSION)).then_some(version)
}

/// The predictor state of a native step from the file's state: a `Predict`'s own (flat) state,
/// or a `ChainOfThought`'s one predictor `predict`.
fn native_state(
    predictor: &dyn Predictor,
    step: &str,
    prompt: &Signature,
    declared: &Signature,
    state: Map<String, Json>,
) -> Result<PredictorState> {
    let kind = predictor.module_kind();
    let part = predictor_part(step, kind, predictor.reasoning(), state)?;
    predictor_state(step, kind, prompt, declared, part)
}

/// The one predictor's state in a file for step `step`, a `Predict` (`kind`) or, with
/// `reasoning`, a `ChainOfThought`: a `Predict`'s own (flat) state, or a `ChainOfThought`'s one
/// predictor `predict`. A file of another module is an error naming the difference.
fn predictor_part(
    step: &str,
    kind: &str,
    reasoning: bool,
    mut state: Map<String, Json>,
) -> Result<Json> {
    let flat = state.contains_key("signature");
    Ok(if reasoning {
        if flat {
            return Err(Error::program_state(format!(
                "holds a single predictor's state (a `dspy.Predict`'s); step `{step}` is a ChainOfThought, which takes a `dspy.ChainOfThought`'s (one predictor `{CHAIN_OF_THOUGHT_PREDICTOR}`)"
            )));
        }
        if let Some(unknown) = state.keys().find(|k| *k != CHAIN_OF_THOUGHT_PREDICTOR) {
            return Err(Error::program_state(format!(
                "has predictor `{unknown}`, which step `{step}` (a ChainOfThought, one predictor `{CHAIN_OF_THOUGHT_PREDICTOR}`) does not have"
            )));
        }
        state
            .remove(CHAIN_OF_THOUGHT_PREDICTOR)
            .ok_or_else(|| {
                Error::program_state(format!(
                    "has no predictor `{CHAIN_OF_THOUGHT_PREDICTOR}`, which step `{step}` (a ChainOfThought) needs"
                ))
            })?
    } else {
        if !flat {
            let names: Vec<String> = state.keys().map(|k| format!("`{k}`")).collect();
            return Err(Error::program_state(format!(
                "holds the predictors {} of a module; step `{step}` is a {kind}, which takes a single `dspy.Predict`'s state",
                names.join(", ")
            )));
        }
        Json::Object(state)
    })
}

/// Reads one predictor's state (`demos`, `signature`, `lm`, `traces`, `train`) for a step whose
/// prompt has `prompt`'s fields.
fn predictor_state(
    step: &str,
    kind: &str,
    prompt: &Signature,
    declared: &Signature,
    part: Json,
) -> Result<PredictorState> {
    let Json::Object(mut part) = part else {
        return Err(Error::program_state(
            "a predictor's state is not a JSON object",
        ));
    };
    if let Some(unknown) = part
        .keys()
        .find(|k| !["demos", "signature", "lm", "traces", "train"].contains(&k.as_str()))
    {
        return Err(Error::program_state(format!(
            "a predictor's state has key `{unknown}`; DSPy's has `demos`, `signature`, `lm`, `traces` and `train`"
        )));
    }
    if part.get("lm").is_some_and(|lm| !lm.is_null()) {
        warn!(
            step,
            "the DSPy state names an LM of its own: a native step calls the context's LM, so it is ignored"
        );
    }
    let names: Vec<&str> = prompt
        .inputs
        .iter()
        .chain(&prompt.outputs)
        .map(|f| f.name.as_str())
        .collect();
    let listed = || {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let signature = part.remove("signature").unwrap_or(Json::Null);
    let instructions = signature
        .get("instructions")
        .and_then(Json::as_str)
        .ok_or_else(|| Error::program_state("its signature has no `instructions` string"))?;
    let fields = signature
        .get("fields")
        .and_then(Json::as_array)
        .ok_or_else(|| Error::program_state("its signature has no `fields` list"))?;
    if fields.len() != names.len() {
        return Err(Error::program_state(format!(
            "its signature has {} fields; step `{step}` (a {kind}) has {}: {}",
            fields.len(),
            names.len(),
            listed()
        )));
    }
    let mut texts = BTreeMap::new();
    for (name, field) in names.iter().zip(fields) {
        let text = |key: &str| {
            field
                .get(key)
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::program_state(format!(
                        "field `{name}` of its signature has no `{key}` string"
                    ))
                })
        };
        texts.insert(
            (*name).to_owned(),
            FieldText {
                prefix: text("prefix")?,
                description: text("description")?,
            },
        );
    }
    let demos = match part.remove("demos") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(demos)) => demos,
        Some(_) => return Err(Error::program_state("its `demos` is not a list")),
    };
    let demos = demos
        .into_iter()
        .enumerate()
        .map(|(i, demo)| {
            let Json::Object(demo) = demo else {
                return Err(Error::program_state(format!(
                    "demo {} is not a JSON object",
                    i + 1
                )));
            };
            if let Some(other) = demo
                .keys()
                .find(|k| *k != AUGMENTED_KEY && !names.contains(&k.as_str()))
            {
                return Err(Error::program_state(format!(
                    "demo {} has field `{other}`, which step `{step}` does not have (its fields: {})",
                    i + 1,
                    listed()
                )));
            }
            Ok(demo.into_iter().collect::<Fields>())
        })
        .collect::<Result<Vec<_>>>()?;
    let default = default_instructions(declared);
    Ok(PredictorState {
        instructions: (instructions != default).then(|| instructions.to_owned()),
        demos,
        fields: texts,
    })
}

/// A predictor's state as DSPy's `Predict.dump_state()` writes it.
fn predictor_json(state: &PredictorState, prompt: &Signature, declared: &Signature) -> Json {
    let fields: Vec<Json> = prompt
        .inputs
        .iter()
        .chain(&prompt.outputs)
        .map(|f| match state.fields.get(&f.name) {
            Some(text) => json!({"prefix": text.prefix, "description": text.description}),
            None => json!({
                "prefix": default_prefix(&f.name),
                "description": placeholder_description(&f.name),
            }),
        })
        .collect();
    let demos: Vec<Json> = state.demos.iter().map(demo_json).collect();
    json!({
        "traces": [],
        "train": [],
        "demos": demos,
        "signature": {
            "instructions": state.instructions.clone().unwrap_or_else(|| default_instructions(declared)),
            "fields": fields,
        },
        "lm": null,
    })
}

/// A demo as a JSON object.
fn demo_json(demo: &Fields) -> Json {
    Json::Object(
        demo.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect(),
    )
}

/// DSPy's default prefix of a field: its name's words capitalized, then a colon
/// (`question_type` -> `Question Type:`).
fn default_prefix(name: &str) -> String {
    let words: Vec<String> = name
        .split('_')
        .map(|word| {
            if word.chars().any(char::is_lowercase) {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|c| {
                        c.to_uppercase()
                            .chain(chars.flat_map(char::to_lowercase))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                word.to_owned()
            }
        })
        .collect();
    format!("{}:", words.join(" "))
}

/// A python step's state from the file: DSPy loads it as saved, but without an LM of its own
/// (the worker's modules use the LM of each call).
#[cfg(feature = "python")]
fn python_state(mut state: Map<String, Json>) -> Json {
    let clear_lm = |part: &mut Map<String, Json>| {
        if let Some(lm) = part.get_mut("lm")
            && !lm.is_null()
        {
            warn!(
                "the DSPy state names an LM of its own: a python step uses the context's LM, so it is ignored"
            );
            *lm = Json::Null;
        }
    };
    if state.contains_key("signature") {
        clear_lm(&mut state);
    } else {
        for part in state.values_mut() {
            if let Json::Object(part) = part {
                clear_lm(part);
            }
        }
    }
    Json::Object(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_another_major_dspy_version_is_named_for_the_warning() {
        let saved_with = |dspy: &str| serde_json::json!({"dependency_versions": {"dspy": dspy}});
        assert_eq!(other_major_version(&saved_with("2.6.27")), Some("2.6.27"));
        assert_eq!(other_major_version(&saved_with("4.0.0")), Some("4.0.0"));
        assert_eq!(other_major_version(&saved_with(DSPY_VERSION)), None);
        assert_eq!(other_major_version(&saved_with("3.0.1")), None);
        assert_eq!(other_major_version(&serde_json::json!({})), None);
    }

    #[test]
    fn default_prefixes_are_dspys() {
        assert_eq!(default_prefix("question"), "Question:");
        assert_eq!(default_prefix("question_type"), "Question Type:");
        assert_eq!(default_prefix("reasoning"), "Reasoning:");
    }
}
