//! The Tree-structured Parzen Estimator, following Optuna's `TPESampler` with its default
//! settings (independent sampling per variable): `n_startup_trials = 10` random trials first;
//! then the finished trials are split into the best `gamma(n) = min(ceil(0.1 n), 25)` ("below")
//! and the rest ("above"); each side becomes a Parzen estimator (a mixture with one kernel per
//! trial, weighted by Optuna's `default_weights`, plus a prior kernel of weight 1); 24
//! candidates are drawn from the "below" mixture and the one maximizing
//! `log l(x) - log g(x)` is proposed.
//!
//! Numeric kernels are normal distributions truncated to the range (in the logarithm for a log
//! scale; integers widen the range by half a step and round), their widths set by the distance to
//! the neighbouring observations and clipped to `[range / min(100, kernels + 1), range]`
//! ("magic clip", endpoints not considered). Categorical kernels put weight
//! `1 + prior/kernels` on the observed choice and `prior/kernels` on each other one.

use super::space::Domain;
use crate::util::rng::SeededRng;

/// The settings of the TPE sampler; [`Default`] is Optuna's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeConfig {
    /// Random trials before the estimators are used.
    pub n_startup_trials: usize,
    /// Candidates drawn from the "below" estimator per proposal.
    pub n_ei_candidates: usize,
    /// Weight of the prior kernel.
    pub prior_weight: f64,
}

impl Default for TpeConfig {
    fn default() -> Self {
        Self {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            prior_weight: 1.0,
        }
    }
}

/// How many of `n` finished trials are "below" (the good ones): Optuna's `default_gamma`.
pub(crate) fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
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

/// A one-dimensional Parzen estimator over a domain, in its internal representation: floats
/// and integers as numbers (logarithms for a log scale), categories as their index.
#[derive(Debug, Clone)]
pub(crate) enum Parzen {
    Numeric {
        weights: Vec<f64>,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        /// The (transformed, widened for integers) bounds the kernels are truncated to.
        low: f64,
        high: f64,
        log: bool,
        discrete: bool,
    },
    Categorical {
        weights: Vec<f64>,
        /// One probability row per kernel.
        rows: Vec<Vec<f64>>,
    },
}

impl Parzen {
    /// The estimator of `observations` (internal representation, in trial order) over
    /// `domain`.
    pub(crate) fn new(domain: &Domain, observations: &[f64], prior_weight: f64) -> Self {
        let mut weights = default_weights(observations.len());
        weights.push(if observations.is_empty() {
            1.0
        } else {
            prior_weight
        });
        let total: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= total;
        }
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
                Parzen::Categorical { weights, rows }
            }
            Domain::Float { low, high, log } => {
                numeric(weights, observations, *low, *high, *log, false)
            }
            #[allow(clippy::cast_precision_loss)]
            Domain::Int { low, high, log } => numeric(
                weights,
                observations,
                *low as f64 - 0.5,
                *high as f64 + 0.5,
                *log,
                true,
            ),
        }
    }

    /// Draws one value (internal representation).
    pub(crate) fn sample(&self, rng: &mut SeededRng, domain: &Domain) -> f64 {
        match self {
            Parzen::Categorical { weights, rows } => {
                let k = pick(weights, rng.unit());
                #[allow(clippy::cast_precision_loss)]
                {
                    pick(&rows[k], rng.unit()) as f64
                }
            }
            Parzen::Numeric {
                weights,
                mus,
                sigmas,
                low,
                high,
                log,
                discrete,
            } => {
                let k = pick(weights, rng.unit());
                let x = truncnorm_sample(mus[k], sigmas[k], *low, *high, rng.unit());
                external(x, *log, *discrete, domain)
            }
        }
    }

    /// The log density (log mass for integers and categories) of `x` (internal
    /// representation) under the mixture.
    pub(crate) fn log_pdf(&self, x: f64) -> f64 {
        match self {
            Parzen::Categorical { weights, rows } => {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let i = x as usize;
                log_sum_exp(
                    weights
                        .iter()
                        .zip(rows)
                        .map(|(w, row)| w.ln() + row.get(i).copied().unwrap_or(0.0).ln()),
                )
            }
            Parzen::Numeric {
                weights,
                mus,
                sigmas,
                low,
                high,
                log,
                discrete,
            } => {
                let terms = weights.iter().zip(mus).zip(sigmas).map(|((w, mu), sigma)| {
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
                    w.ln() + density - norm
                });
                log_sum_exp(terms)
            }
        }
    }
}

/// The numeric estimator: kernels at the observations with Optuna's widths, plus the prior.
fn numeric(
    weights: Vec<f64>,
    observations: &[f64],
    low: f64,
    high: f64,
    log: bool,
    discrete: bool,
) -> Parzen {
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
    Parzen::Numeric {
        weights,
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

    #[test]
    fn gamma_and_weights_are_optunas() {
        assert_eq!([gamma(1), gamma(10), gamma(11), gamma(400)], [1, 1, 2, 25]);
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
        let p = Parzen::new(
            &Domain::Float {
                low: 0.0,
                high: 1.0,
                log: false,
            },
            &[0.5, 0.2],
            1.0,
        );
        let Parzen::Numeric {
            mus,
            sigmas,
            weights,
            ..
        } = p
        else {
            panic!("numeric")
        };
        assert_eq!(mus, vec![0.5, 0.2, 0.5]);
        assert!((sigmas[0] - 0.3).abs() < 1e-12 && (sigmas[1] - 0.3).abs() < 1e-12);
        assert_eq!(sigmas[2], 1.0);
        assert!(weights.iter().all(|w| (w - 1.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn densities_integrate_to_one() {
        let domain = Domain::Float {
            low: 0.0,
            high: 2.0,
            log: false,
        };
        let p = Parzen::new(&domain, &[0.1, 0.15, 1.9], 1.0);
        let steps = 20_000;
        #[allow(clippy::cast_precision_loss)]
        let integral: f64 = (0..steps)
            .map(|i| {
                let x = 2.0 * (f64::from(i) + 0.5) / f64::from(steps);
                p.log_pdf(x).exp() * 2.0 / f64::from(steps)
            })
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        let ints = Domain::Int {
            low: 1,
            high: 6,
            log: true,
        };
        let p = Parzen::new(&ints, &[2.0, 3.0], 1.0);
        let mass: f64 = (1..=6).map(|k| p.log_pdf(f64::from(k)).exp()).sum();
        assert!((mass - 1.0).abs() < 1e-9, "{mass}");
        let cats = Domain::Categorical(vec![1.into(), 2.into(), 3.into()]);
        let p = Parzen::new(&cats, &[0.0, 0.0, 2.0], 1.0);
        let mass: f64 = (0..3).map(|k| p.log_pdf(f64::from(k)).exp()).sum();
        assert!((mass - 1.0).abs() < 1e-12, "{mass}");
        assert!(p.log_pdf(0.0) > p.log_pdf(1.0));
    }

    #[test]
    fn samples_concentrate_near_the_observations() {
        let domain = Domain::Float {
            low: 0.0,
            high: 100.0,
            log: false,
        };
        let observed: Vec<f64> = vec![10.0; 30];
        let p = Parzen::new(&domain, &observed, 1.0);
        let mut rng = SeededRng::new(3);
        let near = (0..1000)
            .filter(|_| (p.sample(&mut rng, &domain) - 10.0).abs() < 10.0)
            .count();
        assert!(near > 800, "{near}");
    }
}
