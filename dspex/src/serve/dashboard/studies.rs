//! The tuning studies the dashboard shows: each one's trials, the best so far, and its plots,
//! SVG drawn by `plotters` (the score of each trial with the best so far, and each variable
//! against the score).

use std::collections::BTreeSet;
use std::ops::Range;

use dspex_core::Value;
use plotters::prelude::*;
use serde_json::{Value as Json, json};

use crate::error::{Error, Result};
use crate::tune::{Direction, MAX_STUDY_NAME_BYTES, Study, Trial, TrialState};
use crate::util::value_json::to_json;

/// The size of a plot, in pixels (the page scales it to its column).
const PLOT_SIZE: (u32, u32) = (640, 320);

/// The longest label of a non-numeric value on a plot's axis, in characters.
const MAX_LABEL_CHARS: usize = 16;

/// Refuses a study name that is empty, too long, not of letters, digits, `_`, `-`, `.`, or
/// given twice.
pub(crate) fn check_names(studies: &[(String, Study)]) -> Result<()> {
    let refuse = |message: String| Error::InvalidOption {
        option: "study".to_owned(),
        message,
    };
    let mut seen = BTreeSet::new();
    for (name, _) in studies {
        let usable = !name.is_empty()
            && name.len() <= MAX_STUDY_NAME_BYTES
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !usable {
            return Err(refuse(format!(
                "`{name}` is not a study name: use 1 to {MAX_STUDY_NAME_BYTES} ASCII letters, digits, `_`, `-` and `.`"
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(refuse(format!("`{name}` is shown twice")));
        }
    }
    Ok(())
}

/// What a live stream compares to tell that a study changed: each trial's state.
pub(crate) async fn fingerprint(studies: &[(String, Study)]) -> Vec<Vec<TrialState>> {
    let mut out = Vec::with_capacity(studies.len());
    for (_, study) in studies {
        let states = study.trials().await.map_or_else(
            |_| Vec::new(),
            |trials| trials.iter().map(|t| t.state).collect(),
        );
        out.push(states);
    }
    out
}

/// One study as the page shows it: its trials, the best, and its plots; a study that cannot
/// be read shows the error.
pub(crate) async fn study_json(name: &str, study: &Study) -> Json {
    let read = async { Ok::<_, Error>((study.trials().await?, study.direction().await?)) };
    let (trials, direction) = match read.await {
        Ok((trials, direction)) => (trials, direction.unwrap_or(Direction::Maximize)),
        Err(error) => {
            return json!({"name": name, "where": study.to_string(), "error": error.report()});
        }
    };
    let ranked: Vec<&Trial> = trials.iter().filter(|t| t.evaluated_in_full()).collect();
    let best = ranked
        .iter()
        .copied()
        .reduce(|best, t| {
            if direction.loss(t.score) < direction.loss(best.score) {
                t
            } else {
                best
            }
        })
        .map(|t| t.index);
    let plots = plots(&trials, direction).unwrap_or_else(|message| json!({"error": message}));
    json!({
        "name": name,
        "where": study.to_string(),
        "direction": direction.name(),
        "trials": trials.iter().map(trial_json).collect::<Vec<_>>(),
        "best": best,
        "plots": plots,
    })
}

fn trial_json(trial: &Trial) -> Json {
    json!({
        "index": trial.index,
        "state": trial.state.name(),
        "score": trial.score,
        "values": trial.values,
        "assignment": trial.assignment.iter()
            .map(|(name, value)| (name.clone(), to_json(value)))
            .collect::<serde_json::Map<_, _>>(),
        "complete": trial.complete,
        "examples": trial.examples,
        "errors": trial.errors,
        "duration": trial.duration.as_secs_f64(),
        "first_error": trial.first_error,
    })
}

/// The finished trials' scores, in trial order: `(index, score)`.
fn scores(trials: &[Trial]) -> Vec<(f64, f64)> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Finished && t.score.is_finite())
        .map(|t| (t.index as f64, t.score))
        .collect()
}

/// The best score so far at each finished trial.
fn best_so_far(points: &[(f64, f64)], direction: Direction) -> Vec<(f64, f64)> {
    let mut best: Option<f64> = None;
    points
        .iter()
        .map(|&(x, y)| {
            let b = match best {
                Some(b) if direction.loss(b) <= direction.loss(y) => b,
                _ => y,
            };
            best = Some(b);
            (x, b)
        })
        .collect()
}

/// A range holding every value, padded so that no point sits on the frame.
fn padded(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { (hi - lo) * 0.08 } else { 0.5 };
    (lo - pad)..(hi + pad)
}

/// Every plot of a study: `{"score": svg, "variables": [{"name", "svg"}]}`.
fn plots(trials: &[Trial], direction: Direction) -> std::result::Result<Json, String> {
    let points = scores(trials);
    let score = score_plot(&points, &best_so_far(&points, direction))?;
    let finished: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.state == TrialState::Finished && t.score.is_finite())
        .collect();
    let names: BTreeSet<&String> = finished.iter().flat_map(|t| t.assignment.keys()).collect();
    let mut variables = Vec::new();
    for name in names {
        let values: Vec<(&Value, f64)> = finished
            .iter()
            .filter_map(|t| Some((t.assignment.get(name)?, t.score)))
            .collect();
        variables.push(json!({"name": name, "svg": variable_plot(name, &values)?}));
    }
    Ok(json!({"score": score, "variables": variables}))
}

/// A plotters error as text.
fn drawing<E: std::fmt::Display>(e: E) -> String {
    format!("the plot could not be drawn: {e}")
}

/// What a plot's x axis holds.
enum XAxis<'a> {
    /// Trial numbers: labelled at whole numbers only.
    Trials,
    /// A numeric variable's values.
    Numbers,
    /// Non-numeric values, each at a whole number of its own, labelled with them.
    Categories(&'a [String]),
}

impl XAxis<'_> {
    fn label(&self, x: &f64) -> String {
        let whole = (x - x.round()).abs() < 1e-9 && *x >= 0.0;
        match self {
            XAxis::Numbers => format!("{}", (x * 1e6).round() / 1e6),
            XAxis::Trials if whole => format!("{}", x.round()),
            XAxis::Categories(names) if whole => {
                names.get(x.round() as usize).cloned().unwrap_or_default()
            }
            _ => String::new(),
        }
    }
}

/// A scatter plot of `points` (a circle each) in `color`, with `line` drawn over them, the x
/// axis described by `x_desc` and labelled as `axis` says, the y axis the score.
fn scatter(
    points: &[(f64, f64)],
    line: &[(f64, f64)],
    x_desc: &str,
    color: RGBColor,
    axis: XAxis<'_>,
) -> std::result::Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let x = padded(points.iter().map(|p| p.0));
        let y = padded(points.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(x, y)
            .map_err(drawing)?;
        let label = |x: &f64| axis.label(x);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_desc)
            .y_desc("score")
            .x_label_formatter(&label);
        if let XAxis::Categories(names) = axis {
            mesh.x_labels(names.len().max(1) * 2 + 1);
        }
        mesh.draw().map_err(drawing)?;
        if !line.is_empty() {
            chart
                .draw_series(LineSeries::new(line.iter().copied(), RED.stroke_width(2)))
                .map_err(drawing)?;
        }
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 5, color.mix(0.8).filled())),
            )
            .map_err(drawing)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// The score of each finished trial (a point each) and the best so far (a line).
fn score_plot(points: &[(f64, f64)], best: &[(f64, f64)]) -> std::result::Result<String, String> {
    scatter(points, best, "trial", BLUE, XAxis::Trials)
}

/// A value's label on an axis: numbers as numbers, others as short text.
fn label(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => to_json(other).to_string(),
    };
    if text.chars().count() > MAX_LABEL_CHARS {
        let short: String = text.chars().take(MAX_LABEL_CHARS - 1).collect();
        format!("{short}…")
    } else {
        text
    }
}

/// A variable's value in each finished trial against its score: numbers on a numeric axis,
/// other values (strings, booleans) each at a place of their own, labelled.
fn variable_plot(name: &str, values: &[(&Value, f64)]) -> std::result::Result<String, String> {
    let numeric = |v: &Value| match v {
        Value::Float(x) => Some(*x),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    };
    let all_numeric = values.iter().all(|(v, _)| numeric(v).is_some());
    let categories: Vec<String> = if all_numeric {
        Vec::new()
    } else {
        let set: BTreeSet<String> = values.iter().map(|(v, _)| label(v)).collect();
        set.into_iter().collect()
    };
    let points: Vec<(f64, f64)> = values
        .iter()
        .map(|(v, score)| {
            let x = match numeric(v) {
                Some(x) if all_numeric => x,
                _ => categories.iter().position(|c| *c == label(v)).unwrap_or(0) as f64,
            };
            (x, *score)
        })
        .collect();
    let axis = if all_numeric {
        XAxis::Numbers
    } else {
        XAxis::Categories(&categories)
    };
    scatter(&points, &[], name, GREEN, axis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_so_far_follows_the_direction() {
        let points = [(0.0, 0.5), (1.0, 0.2), (2.0, 0.9)];
        let up: Vec<f64> = best_so_far(&points, Direction::Maximize)
            .iter()
            .map(|p| p.1)
            .collect();
        let down: Vec<f64> = best_so_far(&points, Direction::Minimize)
            .iter()
            .map(|p| p.1)
            .collect();
        assert_eq!(up, [0.5, 0.5, 0.9]);
        assert_eq!(down, [0.5, 0.2, 0.2]);
    }

    #[test]
    fn a_plot_has_one_point_per_value_and_escapes_its_labels() {
        let a = Value::String("<script>".to_owned());
        let b = Value::String("plain".to_owned());
        let svg = variable_plot("style", &[(&a, 0.1), (&b, 0.7), (&a, 0.3)]).expect("drawn");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(!svg.contains("<script>"), "labels are escaped: {svg}");
        let svg = score_plot(&[(0.0, 1.0), (1.0, 2.0)], &[(0.0, 1.0), (1.0, 2.0)]).expect("drawn");
        assert_eq!(svg.matches("<circle").count(), 2);
    }

    #[test]
    fn study_names_are_checked() {
        let named = |name: &str| vec![(name.to_owned(), Study::memory())];
        assert!(check_names(&named("qa-tuning.v2")).is_ok());
        let long = "x".repeat(MAX_STUDY_NAME_BYTES);
        assert!(check_names(&named(&long)).is_ok());
        let over = "x".repeat(MAX_STUDY_NAME_BYTES + 1);
        assert!(check_names(&named(&over)).is_err());
        let error = check_names(&named("a b")).expect_err("a space").to_string();
        assert!(error.contains("`a b` is not a study name"), "{error}");
        let twice = vec![
            ("a".to_owned(), Study::memory()),
            ("a".to_owned(), Study::memory()),
        ];
        assert!(check_names(&twice).is_err());
    }
}
