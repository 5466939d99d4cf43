//! Samplers: how the next trial's values are chosen (grid, random, TPE). Each proposes values
//! inside the space's domains only, so every proposal is valid by construction.

use std::fmt;

use dspex_core::Value;

use super::space::{Dimension, Domain, SearchSpace};
use super::tpe::{Parzen, TpeConfig, gamma};
use crate::error::{Error, Result};
use crate::util::rng::SeededRng;

/// The largest grid a grid search may enumerate.
pub const MAX_GRID_POINTS: usize = 1_000_000;

/// How trials choose their values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Every point of a grid, in an order shuffled by the seed (as Optuna's `GridSampler`):
    /// `points` values per float range (evenly spaced, in the logarithm for a log scale, ends
    /// included), every integer of a range with at most `points` of them (else `points` evenly
    /// spaced ones), every categorical value. The search stops when the grid is exhausted.
    Grid {
        /// Values per float (and wide integer) range; at least 2.
        points: usize,
    },
    /// Independent uniform draws (in the logarithm for a log scale).
    Random,
    /// The Tree-structured Parzen Estimator, with Optuna's defaults unless configured.
    Tpe(TpeConfig),
}

impl Sampler {
    /// A grid with `points` values per range.
    pub fn grid(points: usize) -> Self {
        Sampler::Grid { points }
    }

    /// TPE with Optuna's defaults.
    pub fn tpe() -> Self {
        Sampler::Tpe(TpeConfig::default())
    }

    /// The sampler's short name: `grid`, `random`, `tpe`.
    pub fn name(&self) -> &'static str {
        match self {
            Sampler::Grid { .. } => "grid",
            Sampler::Random => "random",
            Sampler::Tpe(_) => "tpe",
        }
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sampler::Grid { points } => write!(f, "grid({points} points per range)"),
            Sampler::Random => f.write_str("random"),
            Sampler::Tpe(c) => write!(
                f,
                "tpe(startup {}, {} candidates)",
                c.n_startup_trials, c.n_ei_candidates
            ),
        }
    }
}

/// A finished trial as a sampler sees it: its values (one per dimension, in order) and how
/// good it was (trials that reached a higher minibatch rung rank above all lower ones, then by
/// score).
pub(crate) struct Observed<'a> {
    pub(crate) values: &'a [Value],
    pub(crate) rung: usize,
    pub(crate) score: f64,
}

/// A sampler with its state: its random stream and, for a grid, its order.
pub(crate) struct Proposer {
    sampler: Sampler,
    rng: SeededRng,
    grid: Option<Vec<Vec<Value>>>,
    next_grid_point: usize,
}

impl Proposer {
    /// A proposer for `space`, seeded; checks the sampler's settings.
    pub(crate) fn new(sampler: Sampler, space: &SearchSpace, seed: u64) -> Result<Self> {
        let mut rng = SeededRng::new(seed);
        let grid = match sampler {
            Sampler::Grid { points } => {
                if points < 2 {
                    return Err(Error::tuning(format!(
                        "a grid needs at least 2 points per range, got {points}"
                    )));
                }
                let mut grid = grid(space.dimensions(), points)?;
                rng.shuffle(&mut grid);
                Some(grid)
            }
            Sampler::Tpe(c) => {
                if c.n_ei_candidates == 0 || !(c.prior_weight > 0.0 && c.prior_weight.is_finite()) {
                    return Err(Error::tuning(format!(
                        "TPE needs at least one candidate and a positive prior weight, got {} and {}",
                        c.n_ei_candidates, c.prior_weight
                    )));
                }
                None
            }
            Sampler::Random => None,
        };
        Ok(Self {
            sampler,
            rng,
            grid,
            next_grid_point: 0,
        })
    }

    /// How many trials the sampler can propose at most (the grid's size), if bounded.
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.grid.as_ref().map(Vec::len)
    }

    /// The next trial's values, one per dimension; `None` when a grid is exhausted.
    pub(crate) fn propose(
        &mut self,
        space: &SearchSpace,
        history: &[Observed<'_>],
    ) -> Option<Vec<Value>> {
        let dims = space.dimensions();
        match self.sampler {
            Sampler::Grid { .. } => {
                let point = self.grid.as_ref()?.get(self.next_grid_point)?.clone();
                self.next_grid_point += 1;
                Some(point)
            }
            Sampler::Random => Some(
                dims.iter()
                    .map(|d| random(&d.domain, &mut self.rng))
                    .collect(),
            ),
            Sampler::Tpe(config) => {
                if history.len() < config.n_startup_trials {
                    return Some(
                        dims.iter()
                            .map(|d| random(&d.domain, &mut self.rng))
                            .collect(),
                    );
                }
                Some(tpe(dims, history, &config, &mut self.rng))
            }
        }
    }
}

/// A uniform draw from a domain.
fn random(domain: &Domain, rng: &mut SeededRng) -> Value {
    match domain {
        Domain::Float { low, high, log } => {
            let u = rng.unit();
            let x = if *log {
                (low.ln() + u * (high.ln() - low.ln())).exp()
            } else {
                low + u * (high - low)
            };
            Value::Float(x.clamp(*low, *high))
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        Domain::Int { low, high, log } => {
            if *log {
                let (a, b) = ((*low as f64 - 0.5).ln(), (*high as f64 + 0.5).ln());
                let x = (a + rng.unit() * (b - a)).exp().round() as i64;
                Value::Integer(x.clamp(*low, *high))
            } else {
                let span = high.abs_diff(*low).saturating_add(1);
                Value::Integer(low.wrapping_add_unsigned(rng.below(span)))
            }
        }
        Domain::Categorical(values) => values[rng.index(values.len())].clone(),
    }
}

/// A value in the TPE's internal representation: the number, or the category's index.
#[allow(clippy::cast_precision_loss)]
fn internal(domain: &Domain, value: &Value) -> f64 {
    match (domain, value) {
        (Domain::Float { .. }, Value::Float(x)) => *x,
        (Domain::Int { .. }, Value::Integer(i)) => *i as f64,
        (Domain::Categorical(values), v) => values.iter().position(|c| c == v).unwrap_or(0) as f64,
        _ => 0.0,
    }
}

/// The value of an internal representation.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn value_of(domain: &Domain, x: f64) -> Value {
    match domain {
        Domain::Float { .. } => Value::Float(x),
        Domain::Int { .. } => Value::Integer(x as i64),
        Domain::Categorical(values) => values[(x as usize).min(values.len() - 1)].clone(),
    }
}

/// One TPE proposal: each dimension independently (Optuna's default, `multivariate=False`).
fn tpe(
    dims: &[Dimension],
    history: &[Observed<'_>],
    config: &TpeConfig,
    rng: &mut SeededRng,
) -> Vec<Value> {
    // Best first: higher rung, then higher score; ties keep trial order (a stable sort).
    let mut ranked: Vec<usize> = (0..history.len()).collect();
    ranked.sort_by(|&a, &b| {
        let (a, b) = (&history[a], &history[b]);
        b.rung.cmp(&a.rung).then(b.score.total_cmp(&a.score))
    });
    let n_below = gamma(history.len()).min(history.len());
    let mut below: Vec<usize> = ranked[..n_below].to_vec();
    let mut above: Vec<usize> = ranked[n_below..].to_vec();
    below.sort_unstable();
    above.sort_unstable();
    dims.iter()
        .enumerate()
        .map(|(d, dim)| {
            let observations = |trials: &[usize]| -> Vec<f64> {
                trials
                    .iter()
                    .map(|&t| internal(&dim.domain, &history[t].values[d]))
                    .collect()
            };
            let l = Parzen::new(&dim.domain, &observations(&below), config.prior_weight);
            let g = Parzen::new(&dim.domain, &observations(&above), config.prior_weight);
            let mut best = (f64::NEG_INFINITY, None);
            for _ in 0..config.n_ei_candidates {
                let x = l.sample(rng, &dim.domain);
                let score = l.log_pdf(x) - g.log_pdf(x);
                if best.1.is_none() || score > best.0 {
                    best = (score, Some(x));
                }
            }
            value_of(&dim.domain, best.1.unwrap_or_default())
        })
        .collect()
}

/// Every grid point, in dimension order (the last dimension varies fastest).
fn grid(dims: &[Dimension], points: usize) -> Result<Vec<Vec<Value>>> {
    let axes: Vec<Vec<Value>> = dims.iter().map(|d| axis(&d.domain, points)).collect();
    let size = axes
        .iter()
        .try_fold(1usize, |acc, a| acc.checked_mul(a.len()))
        .filter(|&n| n <= MAX_GRID_POINTS)
        .ok_or_else(|| {
            Error::tuning(format!(
                "the grid has more than {MAX_GRID_POINTS} points; use fewer points per range, fix or narrow variables, or another sampler"
            ))
        })?;
    let mut out = Vec::with_capacity(size);
    for mut i in 0..size {
        let mut point = vec![Value::Boolean(false); axes.len()];
        for (slot, axis) in point.iter_mut().zip(&axes).rev() {
            *slot = axis[i % axis.len()].clone();
            i /= axis.len();
        }
        out.push(point);
    }
    Ok(out)
}

/// The grid values of one domain.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]
fn axis(domain: &Domain, points: usize) -> Vec<Value> {
    let spaced = |low: f64, high: f64, log: bool| -> Vec<f64> {
        let (a, b) = if log {
            (low.ln(), high.ln())
        } else {
            (low, high)
        };
        (0..points)
            .map(|i| {
                let t = a + (b - a) * i as f64 / (points - 1) as f64;
                let x = if log { t.exp() } else { t };
                x.clamp(low, high)
            })
            .collect()
    };
    match domain {
        Domain::Float { low, high, log } => {
            let mut values = spaced(*low, *high, *log);
            values.dedup();
            values.into_iter().map(Value::Float).collect()
        }
        Domain::Int { low, high, log } => {
            if high.abs_diff(*low) < points as u64 {
                (*low..=*high).map(Value::Integer).collect()
            } else {
                let mut values: Vec<i64> = spaced(*low as f64, *high as f64, *log)
                    .into_iter()
                    .map(|x| (x.round() as i64).clamp(*low, *high))
                    .collect();
                values.dedup();
                values.into_iter().map(Value::Integer).collect()
            }
        }
        Domain::Categorical(values) => values.clone(),
    }
}

#[cfg(test)]
mod tests {
    use dspex_core::program::ProgramSpec;
    use dspex_core::{Constraints, VarType, VariableSpec};
    use proptest::prelude::*;

    use super::*;
    use crate::tune::TpeConfig;

    /// A declared variable with random constraints, and whether to log-scale it.
    fn variable(index: usize) -> impl Strategy<Value = (VariableSpec, bool)> {
        let name = format!("v{index}");
        prop_oneof![
            (-1e3..1e3f64, 1e-6..1e3f64, any::<bool>()).prop_map({
                let name = name.clone();
                move |(min, width, log)| {
                    let (min, log) = if log {
                        (min.abs() + 1e-3, true)
                    } else {
                        (min, false)
                    };
                    let spec = VariableSpec::new(&name, VarType::Float, min)
                        .with_constraints(Constraints::range(min, min + width));
                    (spec, log)
                }
            }),
            (-1000i64..1000, 0i64..5000, any::<bool>()).prop_map({
                let name = name.clone();
                move |(min, width, log)| {
                    let (min, log) = if log {
                        (min.abs() + 1, true)
                    } else {
                        (min, false)
                    };
                    let spec = VariableSpec::new(&name, VarType::Integer, min)
                        .with_constraints(Constraints::range(min, min + width));
                    (spec, log)
                }
            }),
            (1usize..6).prop_map({
                let name = name.clone();
                move |n| {
                    let choices: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
                    let spec = VariableSpec::new(&name, VarType::Choice, "c0")
                        .with_constraints(Constraints::choices(choices));
                    (spec, false)
                }
            }),
            Just((VariableSpec::new(&name, VarType::Boolean, false), false)),
            Just((VariableSpec::new(&name, VarType::Module, "Predict"), false)),
        ]
    }

    fn declaration() -> impl Strategy<Value = Vec<(VariableSpec, bool)>> {
        (1usize..5).prop_flat_map(|n| (0..n).map(variable).collect::<Vec<_>>())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_proposal_passes_validation(declared in declaration(), seed in any::<u64>()) {
            let spec = ProgramSpec {
                name: "P".to_owned(),
                signature: None,
                variables: declared.iter().map(|(v, _)| v.clone()).collect(),
                steps: Vec::new(),
            };
            let mut space = SearchSpace::of_spec(&spec);
            for (var, log) in &declared {
                if *log {
                    space = space.log_scale(&var.name).unwrap();
                }
            }
            let samplers = [
                Sampler::grid(3),
                Sampler::Random,
                Sampler::Tpe(TpeConfig { n_startup_trials: 3, ..TpeConfig::default() }),
            ];
            for sampler in samplers {
                let mut proposer = Proposer::new(sampler, &space, seed).unwrap();
                let mut past: Vec<(Vec<Value>, f64)> = Vec::new();
                let mut scores = SeededRng::new(seed ^ 1);
                for _ in 0..25 {
                    let history: Vec<Observed<'_>> = past
                        .iter()
                        .map(|(v, s)| Observed { values: v, rung: 0, score: *s })
                        .collect();
                    let Some(values) = proposer.propose(&space, &history) else { break };
                    prop_assert_eq!(values.len(), space.dimensions().len());
                    for (dim, value) in space.dimensions().iter().zip(&values) {
                        prop_assert!(
                            space.check(&dim.name, value).is_ok(),
                            "{} proposed {} for `{}` over {}", sampler, value, dim.name, dim.domain
                        );
                    }
                    past.push((values, scores.unit()));
                }
            }
        }
    }
}
