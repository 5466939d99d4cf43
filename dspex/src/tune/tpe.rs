//! The Tree-structured Parzen Estimator, following Optuna's `TPESampler` (Optuna 5).
//!
//! [`TpeConfig::default()`] is Optuna 5's default `TPESampler()` for one objective
//! (`multivariate=True`, `constant_liar=True`): `n_startup_trials = 10` random trials first;
//! then the finished trials are split into the best `gamma(n) = min(ceil(0.1 n), 25)` ("below")
//! and the rest ("above"), trials still running going "above" (the constant liar: a pending
//! trial is taken for a bad one, so that concurrent proposals spread out); each side becomes a
//! Parzen estimator (a mixture with one product kernel per trial over all variables, weighted
//! by Optuna's `default_weights`, plus a prior kernel of weight 1); 24 candidates are drawn from
//! the "below" mixture (each taking all its values from one trial's kernel) and the one
//! maximizing `log l(x) - log g(x)` is proposed. [`TpeConfig::independent()`] is Optuna 5's
//! `TPESampler(multivariate=False)`: one mixture per variable, each variable proposed on its
//! own.
//!
//! Numeric kernels are normal distributions truncated to the range (in the logarithm for a log
//! scale; integers widen the range by half a step and round), their widths set by the distance to
//! the neighbouring observations and clipped to `[range / min(100, kernels + 1), range]`
//! ("magic clip", endpoints not considered). Categorical kernels put weight
//! `1 + prior/kernels` on the observed choice and `prior/kernels` on each other one.
//!
//! With several objectives (Optuna's MOTPE idea), "below" holds `ceil(0.1 n)` trials taken by
//! non-domination rank, all weighing the same; the last rank that does not fit whole is cut by
//! crowding distance (where Optuna solves a hypervolume subset selection). Trials cut by
//! successive halving rank below every trial that went further, as Optuna's pruned trials do.

use super::objective::{crowding_distances, nondomination_ranks};
use super::space::Domain;
use crate::util::rng::SeededRng;

/// The settings of the TPE sampler; [`Default`] is Optuna 5's default `TPESampler()` for one
/// objective (`multivariate=True`, `constant_liar=True`).
///
/// ```
/// use dspex::tune::{Sampler, TpeConfig};
///
/// assert_eq!(Sampler::tpe().to_string(), "tpe(multivariate, startup 10, 24 candidates)");
/// // Optuna 5's `TPESampler(multivariate=False)`:
/// let independent = Sampler::Tpe(TpeConfig::independent());
/// assert_eq!(independent.to_string(), "tpe(startup 10, 24 candidates)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeConfig {
    /// Random trials before the estimators are used.
    pub n_startup_trials: usize,
    /// Candidates drawn from the "below" estimator per proposal.
    pub n_ei_candidates: usize,
    /// Weight of the prior kernel.
    pub prior_weight: f64,
    /// One joint estimator over all variables (Optuna's `multivariate=True`) instead of one
    /// per variable.
    pub multivariate: bool,
    /// Trials still running count as bad ones ("above"), so that proposals made while others
    /// run do not all land on the same spot (Optuna's `constant_liar=True`).
    pub constant_liar: bool,
}

impl Default for TpeConfig {
    fn default() -> Self {
        Self {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            prior_weight: 1.0,
            multivariate: true,
            constant_liar: true,
        }
    }
}

impl TpeConfig {
    /// The defaults with one estimator per variable: Optuna 5's
    /// `TPESampler(multivariate=False)`.
    pub fn independent() -> Self {
        Self {
            multivariate: false,
            ..Self::default()
        }
    }
}

/// How many of `n` finished trials are "below" (the good ones): Optuna's `default_gamma` for
/// one objective, `default_gamma_multiobjective` (no cap) for several.
pub(crate) fn gamma(n: usize, objectives: usize) -> usize {
    if objectives > 1 {
        n.div_ceil(10)
    } else {
        n.div_ceil(10).min(25)
    }
}

/// Optuna's `default_weights`: equal weights up to 25 observations; beyond, the oldest ramp up
/// linearly from `1/n` and the newest 25 weigh 1.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut weights: Vec<f64> = (0..ramp)
        .map(|i| {
            let start = 1.0 / n as f64;
            if ramp == 1 {
                start
            } else {
                start + (1.0 - start) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    weights.extend(std::iter::repeat_n(1.0, 25));
    weights
}

/// A finished trial as TPE sees it: its number, its values in the internal representation
/// (one per dimension), the minibatch rung it reached and its objectives as losses.
pub(crate) struct Scored<'a> {
    pub(crate) number: usize,
    pub(crate) point: Vec<f64>,
    pub(crate) rung: usize,
    pub(crate) losses: &'a [f64],
}

/// Splits finished trials into "below" (the best `n_below`) and "above", both returned as
/// indices into `trials` in trial-number order. Trials that reached a higher rung come first;
/// within a rung, one objective ranks by loss (ties keep trial order), several by
/// non-domination rank, the rank that does not fit whole cut by crowding distance.
pub(crate) fn split(trials: &[Scored<'_>], n_below: usize) -> (Vec<usize>, Vec<usize>) {
    let mut rungs: Vec<usize> = trials.iter().map(|t| t.rung).collect();
    rungs.sort_unstable_by(|a, b| b.cmp(a));
    rungs.dedup();
    let mut below = Vec::new();
    for rung in rungs {
        let left = n_below.saturating_sub(below.len());
        if left == 0 {
            break;
        }
        let group: Vec<usize> = (0..trials.len())
            .filter(|&i| trials[i].rung == rung)
            .collect();
        below.extend(best_of(trials, &group, left));
    }
    let chosen: std::collections::HashSet<usize> = below.iter().copied().collect();
    let mut above: Vec<usize> = (0..trials.len()).filter(|i| !chosen.contains(i)).collect();
    let by_number = |v: &mut Vec<usize>| v.sort_by_key(|&i| trials[i].number);
    by_number(&mut below);
    by_number(&mut above);
    (below, above)
}

/// The best `k` of `group` (indices into `trials`).
fn best_of(trials: &[Scored<'_>], group: &[usize], k: usize) -> Vec<usize> {
    if group.len() <= k {
        return group.to_vec();
    }
    let mut ordered = group.to_vec();
    ordered.sort_by_key(|&i| trials[i].number);
    if trials[group[0]].losses.len() <= 1 {
        let loss = |i: usize| trials[i].losses.first().copied().unwrap_or(0.0);
        ordered.sort_by(|&a, &b| loss(a).total_cmp(&loss(b)));
        ordered.truncate(k);
        return ordered;
    }
    let losses: Vec<&[f64]> = ordered.iter().map(|&i| trials[i].losses).collect();
    let ranks = nondomination_ranks(&losses);
    let mut out = Vec::with_capacity(k);
    let mut rank = 0;
    while out.len() < k {
        let members: Vec<usize> = (0..ordered.len()).filter(|&j| ranks[j] == rank).collect();
        if out.len() + members.len() <= k {
            out.extend(members.iter().map(|&j| ordered[j]));
        } else {
            let points: Vec<&[f64]> = members.iter().map(|&j| losses[j]).collect();
            let crowding = crowding_distances(&points);
            let mut by_crowding: Vec<usize> = (0..members.len()).collect();
            // The most isolated first; ties keep trial order (a stable sort).
            by_crowding.sort_by(|&a, &b| crowding[b].total_cmp(&crowding[a]));
            let left = k - out.len();
            out.extend(by_crowding[..left].iter().map(|&m| ordered[members[m]]));
        }
        rank += 1;
    }
    out
}

/// The kernels of one dimension, in its internal representation (floats and integers as
/// numbers, logarithms for a log scale; categories as their index): one per observation, then
/// the prior.
#[derive(Debug, Clone)]
pub(crate) enum Kernels {
    Numeric {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        /// The (transformed, widened for integers) bounds the kernels are truncated to.
        low: f64,
        high: f64,
        log: bool,
        discrete: bool,
    },
    Categorical {
        /// One probability row per kernel.
        rows: Vec<Vec<f64>>,
    },
}

impl Kernels {
    /// The kernels of `observations` (internal representation, in trial order) over `domain`.
    pub(crate) fn new(domain: &Domain, observations: &[f64], prior_weight: f64) -> Self {
        match domain {
            Domain::Categorical(values) => {
                let n = values.len();
                #[allow(clippy::cast_precision_loss)]
                let fill = prior_weight / (observations.len() + 1) as f64;
                let mut rows: Vec<Vec<f64>> = observations
                    .iter()
                    .map(|&o| {
                        let mut row = vec![fill; n];
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        if let Some(slot) = row.get_mut(o as usize) {
                            *slot += 1.0;
                        }
                        normalize(&mut row);
                        row
                    })
                    .collect();
                #[allow(clippy::cast_precision_loss)]
                rows.push(vec![1.0 / n as f64; n]);
                Kernels::Categorical { rows }
            }
            Domain::Float { low, high, log } => numeric(observations, *low, *high, *log, false),
            #[allow(clippy::cast_precision_loss)]
            Domain::Int { low, high, log } => numeric(
                observations,
                *low as f64 - 0.5,
                *high as f64 + 0.5,
                *log,
                true,
            ),
        }
    }

    /// Draws one value (internal representation) from kernel `k`.
    fn sample(&self, k: usize, rng: &mut SeededRng, domain: &Domain) -> f64 {
        match self {
            #[allow(clippy::cast_precision_loss)]
            Kernels::Categorical { rows } => pick(&rows[k], rng.unit()) as f64,
            Kernels::Numeric {
                mus,
                sigmas,
                low,
                high,
                log,
                discrete,
            } => {
                let x = truncnorm_sample(mus[k], sigmas[k], *low, *high, rng.unit());
                external(x, *log, *discrete, domain)
            }
        }
    }

    /// The log density (log mass for integers and categories) of `x` (internal
    /// representation) under kernel `k`.
    fn log_pdf(&self, k: usize, x: f64) -> f64 {
        match self {
            Kernels::Categorical { rows } => {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let i = x as usize;
                rows[k].get(i).copied().unwrap_or(0.0).ln()
            }
            Kernels::Numeric {
                mus,
                sigmas,
                low,
                high,
                log,
                discrete,
            } => {
                let (mu, sigma) = (mus[k], sigmas[k]);
                let norm = log_gauss_mass((low - mu) / sigma, (high - mu) / sigma);
                let density = if *discrete {
                    let (left, right) = (x - 0.5, x + 0.5);
                    let (left, right) = if *log {
                        (left.ln(), right.ln())
                    } else {
                        (left, right)
                    };
                    log_gauss_mass((left - mu) / sigma, (right - mu) / sigma)
                } else {
                    let t = if *log { x.ln() } else { x };
                    let z = (t - mu) / sigma;
                    -0.5 * z * z - sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
                };
                density - norm
            }
        }
    }
}

/// A Parzen estimator: a weighted mixture of product kernels over one or more dimensions
/// (kernel `k` of every dimension belongs to observation `k`; the last is the prior).
#[derive(Debug, Clone)]
pub(crate) struct Mixture {
    weights: Vec<f64>,
    dims: Vec<Kernels>,
}

impl Mixture {
    /// The estimator of `observations` (one point per trial, each with a value per domain, in
    /// trial order) over `domains`, the observations weighted by `weights` (Optuna's
    /// `default_weights` when `None`), the prior by `prior_weight`.
    pub(crate) fn new(
        domains: &[&Domain],
        observations: &[&[f64]],
        weights: Option<Vec<f64>>,
        prior_weight: f64,
    ) -> Self {
        let mut weights = weights.unwrap_or_else(|| default_weights(observations.len()));
        weights.push(if observations.is_empty() {
            1.0
        } else {
            prior_weight
        });
        let total: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= total;
        }
        let dims = domains
            .iter()
            .enumerate()
            .map(|(d, domain)| {
                let column: Vec<f64> = observations.iter().map(|o| o[d]).collect();
                Kernels::new(domain, &column, prior_weight)
            })
            .collect();
        Self { weights, dims }
    }

    /// Draws one point: a kernel, then each dimension from it.
    pub(crate) fn sample(&self, rng: &mut SeededRng, domains: &[&Domain]) -> Vec<f64> {
        let k = pick(&self.weights, rng.unit());
        self.dims
            .iter()
            .zip(domains)
            .map(|(kernels, domain)| kernels.sample(k, rng, domain))
            .collect()
    }

    /// The log density of `point` under the mixture.
    pub(crate) fn log_pdf(&self, point: &[f64]) -> f64 {
        log_sum_exp(self.weights.iter().enumerate().map(|(k, w)| {
            w.ln()
                + self
                    .dims
                    .iter()
                    .zip(point)
                    .map(|(kernels, &x)| kernels.log_pdf(k, x))
                    .sum::<f64>()
        }))
    }
}

/// One TPE proposal (internal representation, one value per domain) from the finished trials
/// `scored` and the points of the trials still running (`pending`, used when the config says
/// constant liar), with `objectives` objectives.
pub(crate) fn propose(
    domains: &[&Domain],
    scored: &[Scored<'_>],
    pending: &[(usize, Vec<f64>)],
    objectives: usize,
    config: &TpeConfig,
    rng: &mut SeededRng,
) -> Vec<f64> {
    let n_below = gamma(scored.len(), objectives).min(scored.len());
    let (below, above) = split(scored, n_below);
    let below_points: Vec<&[f64]> = below.iter().map(|&i| scored[i].point.as_slice()).collect();
    // "Above": the rest of the finished trials and, with the constant liar, the running ones,
    // in trial-number order.
    let mut above_points: Vec<(usize, &[f64])> = above
        .iter()
        .map(|&i| (scored[i].number, scored[i].point.as_slice()))
        .collect();
    if config.constant_liar {
        above_points.extend(pending.iter().map(|(n, p)| (*n, p.as_slice())));
        above_points.sort_by_key(|(n, _)| *n);
    }
    let above_points: Vec<&[f64]> = above_points.into_iter().map(|(_, p)| p).collect();
    // Several objectives weigh the good trials the same (Optuna's MOTPE).
    let below_weights = (objectives > 1).then(|| vec![1.0; below_points.len()]);
    let best_candidate = |dims: &[&Domain], column: Option<usize>, rng: &mut SeededRng| {
        let project = |points: &[&[f64]]| -> Vec<Vec<f64>> {
            points
                .iter()
                .map(|p| column.map_or_else(|| p.to_vec(), |d| vec![p[d]]))
                .collect()
        };
        let (b, a) = (project(&below_points), project(&above_points));
        let b: Vec<&[f64]> = b.iter().map(Vec::as_slice).collect();
        let a: Vec<&[f64]> = a.iter().map(Vec::as_slice).collect();
        let l = Mixture::new(dims, &b, below_weights.clone(), config.prior_weight);
        let g = Mixture::new(dims, &a, None, config.prior_weight);
        let mut best: (f64, Option<Vec<f64>>) = (f64::NEG_INFINITY, None);
        for _ in 0..config.n_ei_candidates {
            let x = l.sample(rng, dims);
            let score = l.log_pdf(&x) - g.log_pdf(&x);
            if best.1.is_none() || score > best.0 {
                best = (score, Some(x));
            }
        }
        best.1.unwrap_or_default()
    };
    if config.multivariate {
        best_candidate(domains, None, rng)
    } else {
        (0..domains.len())
            .map(|d| {
                best_candidate(&domains[d..=d], Some(d), rng)
                    .first()
                    .copied()
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// The numeric kernels: one at each observation with Optuna's widths, plus the prior.
fn numeric(observations: &[f64], low: f64, high: f64, log: bool, discrete: bool) -> Kernels {
    let (low, high) = if log {
        (low.ln(), high.ln())
    } else {
        (low, high)
    };
    let mut mus: Vec<f64> = observations
        .iter()
        .map(|&o| if log { o.ln() } else { o })
        .collect();
    let n = mus.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
    let mut points = Vec::with_capacity(n + 2);
    points.push(low);
    points.extend(order.iter().map(|&i| mus[i]));
    points.push(high);
    let mut sorted_sigmas: Vec<f64> = (1..=n)
        .map(|i| (points[i] - points[i - 1]).max(points[i + 1] - points[i]))
        .collect();
    if n >= 2 {
        sorted_sigmas[0] = points[2] - points[1];
        sorted_sigmas[n - 1] = points[n] - points[n - 1];
    }
    let max_sigma = high - low;
    #[allow(clippy::cast_precision_loss)]
    let min_sigma = (high - low) / 100f64.min(1.0 + (n + 1) as f64);
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        sigmas[i] = sorted_sigmas[rank].clamp(min_sigma, max_sigma);
    }
    mus.push(0.5 * (low + high));
    sigmas.push(high - low);
    Kernels::Numeric {
        mus,
        sigmas,
        low,
        high,
        log,
        discrete,
    }
}

/// A transformed draw back in the domain: exponentiated for a log scale, rounded for
/// integers, and clamped to the domain's bounds so that it is always valid.
fn external(x: f64, log: bool, discrete: bool, domain: &Domain) -> f64 {
    let x = if log { x.exp() } else { x };
    match domain {
        Domain::Float { low, high, .. } => x.clamp(*low, *high),
        #[allow(clippy::cast_precision_loss)]
        Domain::Int { low, high, .. } if discrete => x.round().clamp(*low as f64, *high as f64),
        _ => x,
    }
}

fn normalize(row: &mut [f64]) {
    let total: f64 = row.iter().sum();
    if total > 0.0 {
        for x in row {
            *x /= total;
        }
    }
}

/// The index that `u` in `[0, 1)` falls on in the cumulative `weights`.
fn pick(weights: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return i;
        }
    }
    weights.len() - 1
}

fn log_sum_exp(terms: impl Iterator<Item = f64>) -> f64 {
    let terms: Vec<f64> = terms.collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// The standard normal CDF.
fn ndtr(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// `ln(Φ(b) - Φ(a))` for `a <= b`, computed in the tail where it is accurate.
fn log_gauss_mass(a: f64, b: f64) -> f64 {
    let mass = if b <= 0.0 {
        ndtr(b) - ndtr(a)
    } else if a >= 0.0 {
        ndtr(-a) - ndtr(-b)
    } else {
        1.0 - ndtr(a) - ndtr(-b)
    };
    mass.max(0.0).ln()
}

/// The standard normal quantile: Acklam's approximation refined by one Halley step.
fn ndtri(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - 0.024_25 {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    let e = ndtr(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

/// A draw of the normal `(mu, sigma)` truncated to `[low, high]`, by inverting the CDF at `u`.
fn truncnorm_sample(mu: f64, sigma: f64, low: f64, high: f64, u: f64) -> f64 {
    let (pa, pb) = (ndtr((low - mu) / sigma), ndtr((high - mu) / sigma));
    let x = mu + sigma * ndtri(pa + u * (pb - pa));
    if x.is_finite() {
        x.clamp(low, high)
    } else {
        mu.clamp(low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-dimensional estimator of `observations` with default weights.
    fn mixture(domain: &Domain, observations: &[f64]) -> Mixture {
        let points: Vec<[f64; 1]> = observations.iter().map(|&o| [o]).collect();
        let points: Vec<&[f64]> = points.iter().map(|p| p.as_slice()).collect();
        Mixture::new(&[domain], &points, None, 1.0)
    }

    #[test]
    fn gamma_and_weights_are_optunas() {
        assert_eq!(
            [gamma(1, 1), gamma(10, 1), gamma(11, 1), gamma(400, 1)],
            [1, 1, 2, 25]
        );
        // Several objectives: no cap.
        assert_eq!(gamma(400, 2), 40);
        assert_eq!(default_weights(3), vec![1.0; 3]);
        let w = default_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12);
        assert!((w[4] - 1.0).abs() < 1e-12 && (w[29] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_normal_quantile_inverts_the_cdf() {
        for p in [1e-12, 1e-4, 0.02, 0.3, 0.5, 0.77, 0.99, 1.0 - 1e-9] {
            let x = ndtri(p);
            assert!((ndtr(x) - p).abs() < 1e-12 * p.max(1e-3), "{p}: {x}");
        }
        assert!((ndtri(0.975) - 1.959_963_984_540_054).abs() < 1e-9);
    }

    #[test]
    fn the_gauss_mass_is_accurate_in_both_tails() {
        // Φ(-8) - Φ(-9) and Φ(9) - Φ(8) are the same mass.
        let lower = log_gauss_mass(-9.0, -8.0);
        let upper = log_gauss_mass(8.0, 9.0);
        assert!((lower - upper).abs() < 1e-9, "{lower} {upper}");
        assert!((log_gauss_mass(-1.0, 1.0).exp() - 0.682_689_492_137_086).abs() < 1e-12);
    }

    #[test]
    fn kernel_widths_follow_optuna() {
        // Observations 0.2, 0.5 in [0, 1]: sorted with endpoints [0, .2, .5, 1]; without
        // endpoints the first width is .5-.2 and the last .5-.2; clip at 1/min(100, 4).
        let domain = Domain::Float {
            low: 0.0,
            high: 1.0,
            log: false,
        };
        let Kernels::Numeric { mus, sigmas, .. } = Kernels::new(&domain, &[0.5, 0.2], 1.0) else {
            panic!("numeric")
        };
        assert_eq!(mus, vec![0.5, 0.2, 0.5]);
        assert!((sigmas[0] - 0.3).abs() < 1e-12 && (sigmas[1] - 0.3).abs() < 1e-12);
        assert_eq!(sigmas[2], 1.0);
        let m = mixture(&domain, &[0.5, 0.2]);
        assert!(m.weights.iter().all(|w| (w - 1.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn densities_integrate_to_one() {
        let domain = Domain::Float {
            low: 0.0,
            high: 2.0,
            log: false,
        };
        let p = mixture(&domain, &[0.1, 0.15, 1.9]);
        let steps = 20_000;
        let integral: f64 = (0..steps)
            .map(|i| {
                let x = 2.0 * (f64::from(i) + 0.5) / f64::from(steps);
                p.log_pdf(&[x]).exp() * 2.0 / f64::from(steps)
            })
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        let ints = Domain::Int {
            low: 1,
            high: 6,
            log: true,
        };
        let p = mixture(&ints, &[2.0, 3.0]);
        let mass: f64 = (1..=6).map(|k| p.log_pdf(&[f64::from(k)]).exp()).sum();
        assert!((mass - 1.0).abs() < 1e-9, "{mass}");
        let cats = Domain::Categorical(vec![1.into(), 2.into(), 3.into()]);
        let p = mixture(&cats, &[0.0, 0.0, 2.0]);
        let mass: f64 = (0..3).map(|k| p.log_pdf(&[f64::from(k)]).exp()).sum();
        assert!((mass - 1.0).abs() < 1e-12, "{mass}");
        assert!(p.log_pdf(&[0.0]) > p.log_pdf(&[1.0]));
    }

    #[test]
    fn a_joint_mixture_keeps_values_of_one_trial_together() {
        // Two trials at (0, A) and (1, B): a joint estimator draws (x near 0, A) or (x near 1,
        // B), rarely mixed; independent estimators mix them half the time.
        let x = Domain::Float {
            low: 0.0,
            high: 1.0,
            log: false,
        };
        let c = Domain::Categorical(vec!["A".into(), "B".into()]);
        let observed: Vec<[f64; 2]> = [[0.02, 0.0], [0.98, 1.0]].repeat(20);
        let points: Vec<&[f64]> = observed.iter().map(|p| p.as_slice()).collect();
        let joint = Mixture::new(&[&x, &c], &points, None, 1.0);
        let mut rng = SeededRng::new(5);
        let mixed = (0..2000)
            .filter(|_| {
                let p = joint.sample(&mut rng, &[&x, &c]);
                (p[0] < 0.5) != (p[1] < 0.5)
            })
            .count();
        assert!(mixed < 300, "{mixed}");
        // The joint density is higher on the observed pairs than on the crossed ones.
        assert!(joint.log_pdf(&[0.02, 0.0]) > joint.log_pdf(&[0.02, 1.0]) + 1.0);
    }

    #[test]
    fn samples_concentrate_near_the_observations() {
        let domain = Domain::Float {
            low: 0.0,
            high: 100.0,
            log: false,
        };
        let p = mixture(&domain, &[10.0; 30]);
        let mut rng = SeededRng::new(3);
        let near = (0..1000)
            .filter(|_| (p.sample(&mut rng, &[&domain])[0] - 10.0).abs() < 10.0)
            .count();
        assert!(near > 800, "{near}");
    }

    fn scored(number: usize, rung: usize, losses: &[f64]) -> Scored<'_> {
        Scored {
            number,
            point: vec![0.0],
            rung,
            losses,
        }
    }

    #[test]
    fn the_split_ranks_rungs_then_losses_and_keeps_trial_order() {
        let l = [[0.3], [0.1], [0.1], [0.0], [0.2]];
        // Trial 3 is the best score but was cut at rung 0: the full evaluations rank first.
        let trials = vec![
            scored(0, 1, &l[0]),
            scored(1, 1, &l[1]),
            scored(2, 1, &l[2]),
            scored(3, 0, &l[3]),
            scored(4, 1, &l[4]),
        ];
        let (below, above) = split(&trials, 2);
        // Ties (trials 1 and 2) keep trial order.
        assert_eq!(below, vec![1, 2]);
        assert_eq!(above, vec![0, 3, 4]);
        let (below, _) = split(&trials, 5);
        assert_eq!(below, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn several_objectives_split_by_front_then_crowding() {
        let l = [
            [0.0, 4.0],
            [1.0, 1.0],
            [4.0, 0.0],
            [2.0, 2.0],
            [1.5, 1.2],
            [5.0, 5.0],
        ];
        let trials: Vec<Scored<'_>> = l.iter().enumerate().map(|(i, x)| scored(i, 0, x)).collect();
        // The first front is {0, 1, 2, 4}; three fit: the extremes (infinite crowding) first.
        let (below, above) = split(&trials, 3);
        assert!(below.contains(&0) && below.contains(&2), "{below:?}");
        assert_eq!(below.len(), 3);
        assert!(above.contains(&3) && above.contains(&5));
        let (below, _) = split(&trials, 4);
        assert_eq!(below, vec![0, 1, 2, 4]);
    }

    #[test]
    fn pending_trials_push_proposals_away_with_the_constant_liar() {
        // The best trials sit high (near 0.9), the others low; eight trials are running near
        // 0.9. With the liar they count as bad ones, so fewer proposals land up there.
        let x = Domain::Float {
            low: 0.0,
            high: 1.0,
            log: false,
        };
        let losses: Vec<[f64; 1]> = (0..20).map(|i| [f64::from(i)]).collect();
        let finished: Vec<Scored<'_>> = losses
            .iter()
            .enumerate()
            .map(|(i, l)| Scored {
                number: i,
                point: vec![if i < 2 {
                    0.88 + 0.02 * l[0]
                } else {
                    0.02 * l[0]
                }],
                rung: 0,
                losses: l,
            })
            .collect();
        let pending: Vec<(usize, Vec<f64>)> = (20..28).map(|n| (n, vec![0.9])).collect();
        let high = |liar: bool| {
            let config = TpeConfig {
                constant_liar: liar,
                ..TpeConfig::independent()
            };
            let mut rng = SeededRng::new(11);
            (0..200)
                .filter(|_| propose(&[&x], &finished, &pending, 1, &config, &mut rng)[0] > 0.8)
                .count()
        };
        let (with, without) = (high(true), high(false));
        assert!(
            with < without / 2,
            "with the liar {with}, without {without}"
        );
    }
}
