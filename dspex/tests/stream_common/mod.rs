//! What the tests of streamed runs share (native ones here, python ones in the end-to-end
//! tests, which include this file): the chunks of a field, and the shape of a run's events.

#![allow(dead_code, unreachable_pub)]

use dspex::RunEvent;

/// The texts of the chunks of `field_name` of step `step_name`, in order.
pub fn chunks<'e, O>(events: &'e [RunEvent<O>], step_name: &str, field_name: &str) -> Vec<&'e str> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Chunk { step, field, text } if step == step_name && field == field_name => {
                Some(text.as_str())
            }
            _ => None,
        })
        .collect()
}

/// The chunks of `field_name` of step `step_name`, joined.
pub fn joined<O>(events: &[RunEvent<O>], step_name: &str, field_name: &str) -> String {
    chunks(events, step_name, field_name).concat()
}

/// The kinds of the events, chunks of a field counted once per run of chunks.
pub fn shape<O>(events: &[RunEvent<O>]) -> Vec<String> {
    let mut shape: Vec<String> = Vec::new();
    for event in events {
        let kind = match event {
            RunEvent::StepStarted { step } => format!("started {step}"),
            RunEvent::Chunk { step, field, .. } => format!("chunk {step}.{field}"),
            RunEvent::StepFinished { step, .. } => format!("finished {step}"),
            RunEvent::Finished { .. } => "done".to_owned(),
            _ => "other".to_owned(),
        };
        if shape.last() != Some(&kind) {
            shape.push(kind);
        }
    }
    shape
}
