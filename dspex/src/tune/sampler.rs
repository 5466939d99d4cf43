//! Samplers: how the next trial's values are chosen (grid, random, TPE). Each proposes values
//! inside the space's domains only, so every proposal is valid by construction, and never an
//! assignment the study holds already.

use std::fmt;

use dspex_core::Value;

use super::space::{Dimension, Domain, SearchSpace};
use super::tpe::{Scored, TpeConfig};
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
    /// Among trials that tie, the result keeps the one first in the grid's enumeration order
    /// (the order of [`Trial::grid_point`](super::Trial::grid_point)), whatever the seed.
    Grid {
        /// Values per float (and wide integer) range; at least 2.
        points: usize,
    },
    /// Independent uniform draws (in the logarithm for a log scale), as Optuna's
    /// `RandomSampler`.
    Random,
    /// The Tree-structured Parzen Estimator: [`TpeConfig::default()`] is Optuna 5's default
    /// `TPESampler()`, [`TpeConfig::independent()`] its `TPESampler(multivariate=False)`.
    Tpe(TpeConfig),
}

impl Sampler {
    /// A grid with `points` values per range.
    pub fn grid(points: usize) -> Self {
        Sampler::Grid { points }
    }

    /// TPE with one joint estimator over all variables and the constant liar: Optuna 5's
    /// default `TPESampler()` for one objective.
    pub fn tpe() -> Self {
        Sampler::Tpe(TpeConfig::default())
    }

    /// TPE with one estimator per variable and the constant liar: Optuna 5's
    /// `TPESampler(multivariate=False)`.
    pub fn tpe_independent() -> Self {
        Sampler::Tpe(TpeConfig::independent())
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
                "tpe({}startup {}, {} candidates{})",
                if c.multivariate { "multivariate, " } else { "" },
                c.n_startup_trials,
                c.n_ei_candidates,
                if c.constant_liar {
                    ""
                } else {
                    ", no constant liar"
                }
            ),
        }
    }
}

/// A finished trial as a sampler sees it: its number, its values (one per dimension, in
/// order), the minibatch rung it reached and its objectives as losses (smaller is better).
pub(crate) struct Observed<'a> {
    pub(crate) number: usize,
    pub(crate) values: &'a [Value],
    pub(crate) rung: usize,
    pub(crate) losses: &'a [f64],
}

/// What a proposal is made from: the finished trials, the running ones (number and values),
/// how many trials the study holds (in every state), how many objectives there are, and
/// which assignments the study holds already.
pub(crate) struct Seen<'a> {
    pub(crate) finished: &'a [Observed<'a>],
    pub(crate) pending: &'a [(usize, &'a [Value])],
    pub(crate) known: usize,
    pub(crate) objectives: usize,
    pub(crate) is_taken: &'a dyn Fn(&[Value]) -> bool,
}

/// How many random (or TPE) proposals in a row may be assignments the study holds already
/// before the proposer enumerates a finite space for one it does not hold.
pub(crate) const MAX_PROPOSAL_ATTEMPTS: u64 = 64;

/// A sampler with its state: for a grid, its axes and seed-shuffled order; for a finite space,
/// its enumeration (the fallback when proposals keep repeating assignments the study holds).
pub(crate) struct Proposer {
    sampler: Sampler,
    seed: u64,
    grid: Option<Grid>,
    finite: Option<Grid>,
}

/// The points of a grid (or of a finite space), enumerated in dimension order (the last
/// dimension varies fastest), visited in `order`.
struct Grid {
    axes: Vec<Vec<Value>>,
    size: usize,
    /// Enumeration indices in visiting order (`None`: enumeration order).
    order: Option<Vec<usize>>,
    /// Every point before it in visiting order is held by the study.
    cursor: usize,
}

impl Grid {
    fn new(axes: Vec<Vec<Value>>) -> Result<Self> {
        let size = axes
            .iter()
            .try_fold(1usize, |acc, a| acc.checked_mul(a.len()))
            .filter(|&n| n <= MAX_GRID_POINTS)
            .ok_or_else(|| {
                Error::tuning(format!(
                    "the grid has more than {MAX_GRID_POINTS} points; use fewer points per range, fix or narrow variables, or another sampler"
                ))
            })?;
        Ok(Self {
            axes,
            size,
            order: None,
            cursor: 0,
        })
    }

    /// The point of enumeration index `i`.
    fn point(&self, mut i: usize) -> Vec<Value> {
        let mut point = vec![Value::Boolean(false); self.axes.len()];
        for (slot, axis) in point.iter_mut().zip(&self.axes).rev() {
            *slot = axis[i % axis.len()].clone();
            i /= axis.len();
        }
        point
    }

    /// The enumeration index of `values`, if it is a point of the grid.
    fn index(&self, values: &[Value]) -> Option<usize> {
        values
            .iter()
            .zip(&self.axes)
            .try_fold(0usize, |acc, (v, axis)| {
                Some(acc * axis.len() + axis.iter().position(|a| a == v)?)
            })
    }

    /// The next point in visiting order that the study does not hold.
    fn next(&mut self, is_taken: &dyn Fn(&[Value]) -> bool) -> Option<Vec<Value>> {
        while self.cursor < self.size {
            let i = self.order.as_ref().map_or(self.cursor, |o| o[self.cursor]);
            let point = self.point(i);
            if !is_taken(&point) {
                return Some(point);
            }
            self.cursor += 1;
        }
        None
    }
}

impl Proposer {
    /// A proposer for `space`, seeded; checks the sampler's settings.
    pub(crate) fn new(sampler: Sampler, space: &SearchSpace, seed: u64) -> Result<Self> {
        let dims = space.dimensions();
        let grid = match sampler {
            Sampler::Grid { points } => {
                if points < 2 {
                    return Err(Error::tuning(format!(
                        "a grid needs at least 2 points per range, got {points}"
                    )));
                }
                let mut grid = Grid::new(dims.iter().map(|d| axis(&d.domain, points)).collect())?;
                let mut order: Vec<usize> = (0..grid.size).collect();
                SeededRng::new(seed).shuffle(&mut order);
                grid.order = Some(order);
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
        // A finite space (categories and integer ranges only, at most MAX_GRID_POINTS points)
        // is enumerated when random proposals keep landing on assignments the study holds.
        let finite = dims
            .iter()
            .map(|d| match &d.domain {
                Domain::Categorical(values) => Some(values.clone()),
                Domain::Int { low, high, .. } if high.abs_diff(*low) < MAX_GRID_POINTS as u64 => {
                    Some((*low..=*high).map(Value::Integer).collect())
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|axes| Grid::new(axes).ok());
        Ok(Self {
            sampler,
            seed,
            grid,
            finite,
        })
    }

    /// How many trials the sampler can propose at most (the grid's size), if bounded.
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.grid.as_ref().map(|g| g.size)
    }

    /// The position of `values` in the grid's enumeration order (grid sampler only).
    pub(crate) fn grid_point(&self, values: &[Value]) -> Option<usize> {
        self.grid.as_ref()?.index(values)
    }

    /// The next trial's values, one per dimension, never an assignment the study holds;
    /// `None` when there is none left (a grid, or a finite space, exhausted).
    ///
    /// The random draws of a proposal come from a generator seeded by the tuner's seed, the
    /// number of trials the study holds and the attempt: the same study gives the same
    /// proposal, and processes sharing a study with the same seed still propose different
    /// assignments once they see each other's trials.
    pub(crate) fn propose(&mut self, space: &SearchSpace, seen: &Seen<'_>) -> Option<Vec<Value>> {
        let dims = space.dimensions();
        if let Some(grid) = &mut self.grid {
            return grid.next(seen.is_taken);
        }
        for attempt in 0..MAX_PROPOSAL_ATTEMPTS {
            let mut rng = SeededRng::new(derive_seed(self.seed, seen.known as u64, attempt));
            let values = match self.sampler {
                Sampler::Tpe(config) if seen.finished.len() >= config.n_startup_trials => {
                    tpe(dims, seen, &config, &mut rng)
                }
                _ => dims.iter().map(|d| random(&d.domain, &mut rng)).collect(),
            };
            if !(seen.is_taken)(&values) {
                return Some(values);
            }
        }
        self.finite.as_mut()?.next(seen.is_taken)
    }
}

/// A seed for one proposal: `seed` mixed with `a` and `b` through SplitMix64's finalizer, so
/// that nearby inputs give unrelated streams.
fn derive_seed(seed: u64, a: u64, b: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(seed ^ mix(a ^ mix(b)))
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

/// One TPE proposal from what the study holds (see `tpe::propose`).
fn tpe(dims: &[Dimension], seen: &Seen<'_>, config: &TpeConfig, rng: &mut SeededRng) -> Vec<Value> {
    let domains: Vec<&Domain> = dims.iter().map(|d| &d.domain).collect();
    let point = |values: &[Value]| -> Vec<f64> {
        domains
            .iter()
            .zip(values)
            .map(|(d, v)| internal(d, v))
            .collect()
    };
    let scored: Vec<Scored<'_>> = seen
        .finished
        .iter()
        .map(|o| Scored {
            number: o.number,
            point: point(o.values),
            rung: o.rung,
            losses: o.losses,
        })
        .collect();
    let pending: Vec<(usize, Vec<f64>)> = seen
        .pending
        .iter()
        .map(|(n, values)| (*n, point(values)))
        .collect();
    let x = super::tpe::propose(&domains, &scored, &pending, seen.objectives, config, rng);
    domains.iter().zip(x).map(|(d, x)| value_of(d, x)).collect()
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
                Sampler::Tpe(TpeConfig { n_startup_trials: 3, ..TpeConfig::independent() }),
            ];
            for sampler in samplers {
                let mut proposer = Proposer::new(sampler, &space, seed).unwrap();
                let mut past: Vec<(Vec<Value>, [f64; 1])> = Vec::new();
                let mut scores = SeededRng::new(seed ^ 1);
                for _ in 0..25 {
                    let finished: Vec<Observed<'_>> = past
                        .iter()
                        .enumerate()
                        .map(|(number, (v, s))| Observed { number, values: v, rung: 0, losses: s })
                        .collect();
                    let taken = |values: &[Value]| past.iter().any(|(v, _)| v == values);
                    let seen = Seen {
                        finished: &finished,
                        pending: &[],
                        known: past.len(),
                        objectives: 1,
                        is_taken: &taken,
                    };
                    let Some(values) = proposer.propose(&space, &seen) else { break };
                    prop_assert!(!taken(&values), "{} proposed {:?} twice", sampler, values);
                    prop_assert_eq!(values.len(), space.dimensions().len());
                    for (dim, value) in space.dimensions().iter().zip(&values) {
                        prop_assert!(
                            space.check(&dim.name, value).is_ok(),
                            "{} proposed {} for `{}` over {}", sampler, value, dim.name, dim.domain
                        );
                    }
                    past.push((values, [scores.unit()]));
                }
            }
        }
    }

    #[test]
    fn a_finite_space_is_proposed_until_exhausted_then_nothing() {
        let spec = ProgramSpec {
            name: "P".to_owned(),
            signature: None,
            variables: vec![
                VariableSpec::new("a", VarType::Boolean, false),
                VariableSpec::new("k", VarType::Integer, 0)
                    .with_constraints(Constraints::range(0, 2)),
            ],
            steps: Vec::new(),
        };
        let space = SearchSpace::of_spec(&spec);
        for sampler in [
            Sampler::Random,
            Sampler::tpe(),
            Sampler::tpe_independent(),
            Sampler::grid(3),
        ] {
            let mut proposer = Proposer::new(sampler, &space, 3).unwrap();
            let mut held: Vec<Vec<Value>> = Vec::new();
            loop {
                let finished: Vec<Observed<'_>> = held
                    .iter()
                    .enumerate()
                    .map(|(number, v)| Observed {
                        number,
                        values: v,
                        rung: 0,
                        losses: &[0.0],
                    })
                    .collect();
                let taken = |values: &[Value]| held.iter().any(|v| v == values);
                let seen = Seen {
                    finished: &finished,
                    pending: &[],
                    known: held.len(),
                    objectives: 1,
                    is_taken: &taken,
                };
                let Some(values) = proposer.propose(&space, &seen) else {
                    break;
                };
                assert!(!taken(&values), "{sampler}: {values:?} twice");
                held.push(values);
            }
            // Two booleans times three integers: every point once, then nothing.
            assert_eq!(held.len(), 6, "{sampler}");
        }
    }

    #[test]
    fn derived_seeds_differ_for_nearby_inputs() {
        let seeds: std::collections::HashSet<u64> = (0..50)
            .flat_map(|a| (0..4).map(move |b| derive_seed(7, a, b)))
            .collect();
        assert_eq!(seeds.len(), 200);
        assert_ne!(derive_seed(1, 0, 0), derive_seed(2, 0, 0));
    }
}
