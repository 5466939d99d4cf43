//! Compiling a python step in its worker with one of DSPy's optimizers: the train and
//! validation sets checked against the step's signature and sent typed, a Rust metric
//! registered as a callable for the compilation only, and the compiled state loaded into the
//! step's module everywhere.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use dspex_core::{Signature, SignatureField, optimizers};

use super::optimizer::{CompileMetric, CompileReport, MAX_TRAIN_EXAMPLES, Optimizer};
use crate::error::{Error, Result};
use crate::eval::{Example, TokenUsage};
use crate::program::{CompileTarget, CompiledState, PythonModule, check_state_size, next_call_id};
use crate::util::time::rfc3339;
use crate::wire::convert::{field_to_proto, module_config_to_proto};
use crate::wire::limits::MAX_MODULE_MESSAGE_BYTES;
use crate::wire::proto as pb;
use crate::worker::lm_to_proto;

/// Compiles python step `module` (its module of its class now) with `optimizer` on `trainset`,
/// scored by `metric`, in a worker; then loads the compiled state into the step's module
/// everywhere. Nothing changes when it fails.
pub(crate) async fn compile_python_step(
    module: &PythonModule,
    optimizer: &Optimizer,
    trainset: &[Example],
    metric: &CompileMetric,
) -> Result<CompileReport> {
    let settings = optimizer.check()?;
    let step = module.step();
    let signature = module.signature();
    let train = train_to_proto(step, signature, "trainset", trainset)?;
    if train.is_empty() {
        return Err(Error::compile(format!(
            "the trainset to compile step `{step}` is empty"
        )));
    }
    let val = train_to_proto(step, signature, "valset", optimizer.valset_examples())?;
    let reflection_lm = optimizer
        .reflection_lm_config()
        .map(|lm| {
            lm.check_tape().and_then(|()| lm_to_proto(lm)).map_err(|e| {
                Error::compile(format!(
                    "the reflection LM of optimizer `{}`: {e}",
                    optimizer.name()
                ))
            })
        })
        .transpose()?;
    let CompileTarget {
        worker,
        module_id,
        class,
        bindings,
    } = module.compile_target().await?;
    let mut request = pb::CompileModuleRequest {
        module_id,
        optimizer: optimizer.name().to_owned(),
        settings: settings
            .iter()
            .map(|(key, value)| {
                let wire = module_config_to_proto(key, value)
                    .map_err(|e| Error::compile(format!("optimizer setting {e}")))?;
                Ok((key.clone(), wire))
            })
            .collect::<Result<_>>()?,
        trainset: train,
        valset: val,
        metric: None,
        bindings,
        call_id: next_call_id(),
        reflection_lm,
    };
    request.metric = Some(match metric {
        CompileMetric::Python(path) => pb::compile_module_request::Metric::MetricPath(path.clone()),
        CompileMetric::Rust(_) | CompileMetric::RustFeedback(_) => {
            pb::compile_module_request::Metric::MetricCallback(format!(
                "dspex.metric.{}",
                request.call_id
            ))
        }
    });
    let bytes = prost::Message::encoded_len(&request);
    if bytes > MAX_MODULE_MESSAGE_BYTES {
        return Err(Error::limit(
            "MAX_MODULE_MESSAGE_BYTES",
            format!(
                "the compilation of step `{step}` is {bytes} bytes on the wire, over the limit of {MAX_MODULE_MESSAGE_BYTES} (MAX_MODULE_MESSAGE_BYTES): use fewer or shorter examples"
            ),
        ));
    }
    let (train_examples, val_examples) = (request.trainset.len(), request.valset.len());
    // A Rust metric is a callable of the session for this compilation only.
    let reflective = optimizers::optimizer(optimizer.name()).is_some_and(|o| o.reflective);
    let registered = match &request.metric {
        Some(pb::compile_module_request::Metric::MetricCallback(name)) => {
            match metric.callback(name.clone(), reflective) {
                Some(callback) => {
                    module.context().register_callback(callback).await?;
                    Some(name.clone())
                }
                None => None,
            }
        }
        _ => None,
    };
    let reply = worker
        .compile(step, request, optimizer.timeout_value())
        .await;
    if let Some(name) = registered {
        module.context().unregister_callback(&name);
    }
    let reply = reply?;
    check_state_size(step, reply.state_json.len())?;
    let state: serde_json::Value = serde_json::from_str(&reply.state_json).map_err(|e| {
        Error::Internal(format!(
            "the worker returned a compiled state that is not JSON: {e}"
        ))
    })?;
    let compiled = CompiledState {
        class: class.clone(),
        optimizer: optimizer.to_string(),
        compiled_at: rfc3339(SystemTime::now()),
        state,
    };
    module.set_compiled_state(Some(compiled)).await?;
    Ok(CompileReport {
        step: step.to_owned(),
        optimizer: optimizer.to_string(),
        metric: metric.name().to_owned(),
        class,
        demos: reply.demos.into_iter().collect(),
        train_examples,
        val_examples,
        tokens: TokenUsage {
            lm_calls: reply.lm_requests,
            prompt_tokens: reply.prompt_tokens,
            completion_tokens: reply.completion_tokens,
            calls_without_usage: 0,
        },
        duration: Duration::from_micros(reply.duration_micros),
        step_demos: BTreeMap::new(),
        score_before: None,
        score_after: None,
        eval_tokens: TokenUsage::default(),
        candidates: Vec::new(),
    })
}

/// The examples of a train or validation set for the wire, checked against the step's
/// signature: at most [`MAX_TRAIN_EXAMPLES`]; every input of the step present; every field an
/// input or an output of the step, of its declared type. Errors name the set, the example and
/// the field.
fn train_to_proto(
    step: &str,
    signature: &Signature,
    which: &str,
    examples: &[Example],
) -> Result<Vec<pb::TrainExample>> {
    if examples.len() > MAX_TRAIN_EXAMPLES {
        return Err(Error::limit(
            "MAX_TRAIN_EXAMPLES",
            format!(
                "the {which} to compile step `{step}` holds {} examples, over the limit of {MAX_TRAIN_EXAMPLES} (MAX_TRAIN_EXAMPLES)",
                examples.len()
            ),
        ));
    }
    let wire = |index: usize,
                (fields, role): (&[SignatureField], &str),
                name: &str,
                value: &serde_json::Value| {
        let field = fields.iter().find(|f| f.name == name).ok_or_else(|| {
            Error::compile(format!(
                "{which} example {index}: step `{step}` ({signature}) has no {role} `{name}`"
            ))
        })?;
        field_to_proto(field, value).map_err(|error| Error::Field {
            context: format!("{which} example {index} of step `{step}`"),
            error: Box::new(error),
        })
    };
    examples
        .iter()
        .enumerate()
        .map(|(index, example)| {
            if let Some(missing) = signature.input_names().find(|n| example.input(n).is_none()) {
                return Err(Error::compile(format!(
                    "{which} example {index} has no input `{missing}` of step `{step}` ({signature})"
                )));
            }
            let inputs = example
                .inputs()
                .iter()
                .map(|(name, value)| Ok((name.clone(), wire(index, (&signature.inputs, "input"), name, value)?)))
                .collect::<Result<_>>()?;
            let labels = example
                .expected_values()
                .iter()
                .map(|(name, value)| Ok((name.clone(), wire(index, (&signature.outputs, "output"), name, value)?)))
                .collect::<Result<_>>()?;
            Ok(pb::TrainExample { inputs, labels })
        })
        .collect()
}
