//! What a tuner optimizes: one or more [`Objective`]s, each a [`Measure`] (a metric's mean
//! score, or a [`Cost`]) to maximize or minimize, and the comparisons built on them (which
//! trial dominates which, the non-dominated sorting of multi-objective TPE).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::trial::Trial;
use crate::data::Fields;
use crate::error::{Error, Result};
use crate::eval::{Example, ExampleResult, Metric, checked_score, mean_and_std_error};

/// The most objectives a tuner may have.
pub const MAX_OBJECTIVES: usize = 16;

/// Whether an objective is to be made as large or as small as possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Larger is better (a metric's score).
    Maximize,
    /// Smaller is better (a cost).
    Minimize,
}

impl Direction {
    /// `maximize` or `minimize`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Maximize => "maximize",
            Direction::Minimize => "minimize",
        }
    }

    /// `value` as a loss: smaller is better whatever the direction.
    pub(crate) fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Maximize => -value,
            Direction::Minimize => value,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CostKind {
    Tokens,
    Latency,
}

/// What a trial costs, measured on the examples it was evaluated on.
///
/// ```
/// use dspex::tune::Cost;
///
/// assert_eq!(Cost::tokens().name(), "tokens");
/// assert_eq!(Cost::latency().name(), "latency");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cost(CostKind);

impl Cost {
    /// LM tokens (prompt plus completion, of every LM call the runs' traces record) per
    /// example, on average.
    pub fn tokens() -> Self {
        Cost(CostKind::Tokens)
    }

    /// Seconds per example, on average (from the start of an example's run to its score).
    pub fn latency() -> Self {
        Cost(CostKind::Latency)
    }

    /// `tokens` or `latency`.
    pub fn name(&self) -> &'static str {
        match self.0 {
            CostKind::Tokens => "tokens",
            CostKind::Latency => "latency",
        }
    }

    /// The cost of a finished trial (0 for one that evaluated no example).
    pub fn of(&self, trial: &Trial) -> f64 {
        match self.0 {
            CostKind::Tokens if trial.examples > 0 => {
                #[allow(clippy::cast_precision_loss)]
                let per_example = trial.tokens.total() as f64 / trial.examples as f64;
                per_example
            }
            CostKind::Tokens => 0.0,
            CostKind::Latency => trial.latency.as_secs_f64(),
        }
    }

    /// The cost of a trial's example results.
    fn of_results(&self, results: &[ExampleResult]) -> f64 {
        if results.is_empty() {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let n = results.len() as f64;
        match self.0 {
            #[allow(clippy::cast_precision_loss)]
            CostKind::Tokens => results.iter().map(|r| r.tokens.total() as f64).sum::<f64>() / n,
            CostKind::Latency => results.iter().map(|r| r.latency.as_secs_f64()).sum::<f64>() / n,
        }
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone)]
enum MeasureKind {
    Metric(Arc<dyn Metric>),
    Cost(Cost),
}

/// What an [`Objective`] measures: a metric's mean score over the examples, or a [`Cost`].
/// Any [`Metric`] and any [`Cost`] converts into one.
#[derive(Clone)]
pub struct Measure(MeasureKind);

impl<M: Metric + 'static> From<M> for Measure {
    fn from(metric: M) -> Self {
        Measure(MeasureKind::Metric(Arc::new(metric)))
    }
}

impl From<Cost> for Measure {
    fn from(cost: Cost) -> Self {
        Measure(MeasureKind::Cost(cost))
    }
}

impl Measure {
    /// The metric's name, or the cost's.
    pub fn name(&self) -> &str {
        match &self.0 {
            MeasureKind::Metric(m) => m.name(),
            MeasureKind::Cost(c) => c.name(),
        }
    }
}

impl fmt::Debug for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            MeasureKind::Metric(m) => write!(f, "Metric({})", m.name()),
            MeasureKind::Cost(c) => write!(f, "Cost({c})"),
        }
    }
}

/// One thing a tuner optimizes: a [`Measure`] and its [`Direction`].
///
/// ```
/// use dspex::eval::ExactMatch;
/// use dspex::tune::{Cost, Direction, Objective};
///
/// let good = Objective::maximize(ExactMatch::new("answer"));
/// let cheap = Objective::minimize(Cost::tokens());
/// assert_eq!(good.to_string(), "maximize exact_match(answer)");
/// assert_eq!(cheap.direction(), Direction::Minimize);
/// ```
#[derive(Debug, Clone)]
pub struct Objective {
    direction: Direction,
    measure: Measure,
}

impl Objective {
    /// Makes `measure` as large as possible.
    pub fn maximize(measure: impl Into<Measure>) -> Self {
        Self {
            direction: Direction::Maximize,
            measure: measure.into(),
        }
    }

    /// Makes `measure` as small as possible.
    pub fn minimize(measure: impl Into<Measure>) -> Self {
        Self {
            direction: Direction::Minimize,
            measure: measure.into(),
        }
    }

    /// Its direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// What it measures.
    pub fn measure(&self) -> &Measure {
        &self.measure
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.direction, self.measure.name())
    }
}

/// A tuner's objectives, checked: 1 to [`MAX_OBJECTIVES`] of them, at least one a metric.
#[derive(Clone)]
pub(crate) struct Objectives {
    list: Vec<Objective>,
    /// The distinct metrics, in order of first use; the first scores the examples.
    metrics: Vec<Arc<dyn Metric>>,
}

impl Objectives {
    pub(crate) fn new(list: Vec<Objective>) -> Self {
        let mut metrics: Vec<Arc<dyn Metric>> = Vec::new();
        for o in &list {
            if let MeasureKind::Metric(m) = &o.measure.0
                && !metrics.iter().any(|known| Arc::ptr_eq(known, m))
            {
                metrics.push(Arc::clone(m));
            }
        }
        Self { list, metrics }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.list.is_empty() || self.list.len() > MAX_OBJECTIVES {
            return Err(Error::tuning(format!(
                "a tuner needs 1 to {MAX_OBJECTIVES} objectives (MAX_OBJECTIVES), got {}",
                self.list.len()
            )));
        }
        if self.metrics.is_empty() {
            return Err(Error::tuning(
                "the objectives need at least one metric (`Objective::maximize(metric)`); costs alone score nothing".to_owned(),
            ));
        }
        Ok(())
    }

    pub(crate) fn list(&self) -> &[Objective] {
        &self.list
    }

    pub(crate) fn directions(&self) -> Vec<Direction> {
        self.list.iter().map(|o| o.direction).collect()
    }

    /// The name of the metric that scores the examples (the first metric objective's).
    pub(crate) fn metric_name(&self) -> String {
        self.metrics
            .first()
            .map_or_else(String::new, |m| m.name().to_owned())
    }

    /// The metric one trial's examples are scored with: the first metric, recording the
    /// others' scores on the side.
    pub(crate) fn scorer(&self) -> Scorer {
        Scorer {
            metrics: self.metrics.clone(),
            extra: Mutex::new(HashMap::new()),
        }
    }

    /// Every objective's value for a trial's example results, scored by `scorer`.
    pub(crate) fn values(
        &self,
        scorer: &Scorer,
        examples: &[Example],
        results: &[ExampleResult],
    ) -> Vec<f64> {
        let extra = scorer.extra.lock();
        let mean = |scores: Vec<f64>| mean_and_std_error(&scores).0;
        self.list
            .iter()
            .map(|o| match &o.measure.0 {
                MeasureKind::Cost(c) => c.of_results(results),
                MeasureKind::Metric(m) => {
                    let slot = self
                        .metrics
                        .iter()
                        .position(|known| Arc::ptr_eq(known, m))
                        .unwrap_or(0);
                    if slot == 0 {
                        mean(results.iter().map(|r| r.score).collect())
                    } else {
                        mean(
                            results
                                .iter()
                                .map(|r| {
                                    examples
                                        .get(r.index)
                                        .and_then(|e| extra.get(&address(e)))
                                        .and_then(|scores| scores.get(slot - 1))
                                        .copied()
                                        .unwrap_or(0.0)
                                })
                                .collect(),
                        )
                    }
                }
            })
            .collect()
    }
}

/// Where an example lives: the key of its extra scores during one trial (each example is
/// scored at most once per trial, and the data set outlives the trial).
fn address(example: &Example) -> usize {
    std::ptr::from_ref(example) as usize
}

/// The metric of one trial: scores with the first metric and keeps the other metrics' scores
/// (a failing one scores 0, as in an evaluation).
pub(crate) struct Scorer {
    metrics: Vec<Arc<dyn Metric>>,
    extra: Mutex<HashMap<usize, Vec<f64>>>,
}

impl Metric for Scorer {
    fn name(&self) -> &str {
        self.metrics.first().map_or("", |m| m.name())
    }

    fn score(&self, example: &Example, prediction: &Fields) -> Result<f64> {
        if self.metrics.len() > 1 {
            let others: Vec<f64> = self.metrics[1..]
                .iter()
                .map(|m| checked_score(m.as_ref(), example, prediction).unwrap_or(0.0))
                .collect();
            self.extra.lock().insert(address(example), others);
        }
        match self.metrics.first() {
            Some(first) => first.score(example, prediction),
            None => Ok(0.0),
        }
    }
}

/// Whether losses `a` dominate losses `b`: no worse in any objective, better in one.
pub(crate) fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// The non-domination rank of each point (0: not dominated by any), by repeated peeling.
pub(crate) fn nondomination_ranks(losses: &[&[f64]]) -> Vec<usize> {
    let n = losses.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            if dominates(losses[i], losses[j]) {
                dominates_list[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(losses[j], losses[i]) {
                dominates_list[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut ranks = vec![0usize; n];
    let mut front: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut rank = 0;
    while !front.is_empty() {
        let mut next = Vec::new();
        for &i in &front {
            ranks[i] = rank;
            for &j in &dominates_list[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        front = next;
        rank += 1;
    }
    ranks
}

/// NSGA-II's crowding distance of each point among `points` (infinite at the extremes of any
/// objective): how isolated it is, to keep a spread-out subset.
pub(crate) fn crowding_distances(points: &[&[f64]]) -> Vec<f64> {
    let n = points.len();
    let mut distance = vec![0.0; n];
    let objectives = points.first().map_or(0, |p| p.len());
    for column in (0..objectives).map(|m| points.iter().map(|p| p[m]).collect::<Vec<f64>>()) {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| column[a].total_cmp(&column[b]));
        let (Some(&lo), Some(&hi)) = (order.first(), order.last()) else {
            continue;
        };
        let range = column[hi] - column[lo];
        distance[lo] = f64::INFINITY;
        distance[hi] = f64::INFINITY;
        if range <= 0.0 {
            continue;
        }
        for w in order.windows(3) {
            distance[w[1]] += (column[w[2]] - column[w[0]]) / range;
        }
    }
    distance
}

/// An objective as a study records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SavedObjective {
    pub(crate) direction: Direction,
    pub(crate) measure: String,
}

impl Serialize for Direction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Direction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "maximize" => Ok(Direction::Maximize),
            "minimize" => Ok(Direction::Minimize),
            other => Err(serde::de::Error::custom(format!(
                "unknown direction `{other}`; expected `maximize` or `minimize`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_peel_fronts_and_crowding_prefers_the_extremes() {
        let points: Vec<Vec<f64>> = vec![
            vec![1.0, 5.0],
            vec![2.0, 2.0],
            vec![5.0, 1.0],
            vec![3.0, 3.0],
            vec![6.0, 6.0],
            vec![2.0, 2.0],
        ];
        let refs: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
        assert_eq!(nondomination_ranks(&refs), vec![0, 0, 0, 1, 2, 0]);
        assert!(dominates(&[1.0, 1.0], &[1.0, 2.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]));
        let front: Vec<&[f64]> = vec![&[1.0, 5.0], &[2.0, 2.0], &[5.0, 1.0], &[2.5, 1.9]];
        let d = crowding_distances(&front);
        assert!(d[0].is_infinite() && d[2].is_infinite());
        assert!(d[1].is_finite() && d[3].is_finite());
    }
}
