//! The report of an evaluation: the mean score with its standard error, every example's score,
//! error, latency and LM token usage; a table (`Display`) and JSON (serde).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// What one example gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleResult {
    /// The example's position in the data set.
    pub index: usize,
    /// Its score: the metric's, or 0 when the run or the metric failed.
    pub score: f64,
    /// Why the run or the metric failed.
    pub error: Option<String>,
    /// The program's outputs (absent when the run failed).
    pub prediction: Option<BTreeMap<String, Json>>,
    /// From the start of the run to the metric's score.
    #[serde(with = "millis", rename = "latency_ms")]
    pub latency: Duration,
    /// LM token usage of the run.
    pub tokens: TokenUsage,
}

/// LM token usage, summed over the LM calls of the runs' traces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// LM calls made.
    pub lm_calls: u64,
    /// Prompt tokens of the calls that reported them.
    pub prompt_tokens: u64,
    /// Completion tokens of the calls that reported them.
    pub completion_tokens: u64,
    /// LM calls that reported no token counts.
    pub calls_without_usage: u64,
}

impl TokenUsage {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// Adds `other` to this usage.
    pub fn add(&mut self, other: &TokenUsage) {
        self.lm_calls += other.lm_calls;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.calls_without_usage += other.calls_without_usage;
    }
}

/// The report of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The program evaluated.
    pub program: String,
    /// The metric's name.
    pub metric: String,
    /// The per-run overrides the program ran with (empty: the context's values).
    pub overrides: BTreeMap<String, Json>,
    /// How many examples ran at once, at most.
    pub concurrency: usize,
    /// The mean score (0 for no example).
    pub mean: f64,
    /// The standard error of the mean: the sample standard deviation over the square root of
    /// the number of examples (0 for fewer than two).
    pub std_error: f64,
    /// How many examples failed (run or metric), each scored 0.
    pub errors: usize,
    /// Median latency of an example.
    #[serde(with = "millis", rename = "latency_median_ms")]
    pub latency_median: Duration,
    /// 90th percentile latency of an example (nearest rank).
    #[serde(with = "millis", rename = "latency_p90_ms")]
    pub latency_p90: Duration,
    /// LM token usage of the whole evaluation.
    pub tokens: TokenUsage,
    /// Wall time of the whole evaluation.
    #[serde(with = "millis", rename = "wall_time_ms")]
    pub wall_time: Duration,
    /// Every example's result, in data set order.
    pub examples: Vec<ExampleResult>,
}

impl EvalReport {
    /// Builds the report from every example's result (in data set order).
    pub(crate) fn new(
        program: String,
        metric: String,
        overrides: BTreeMap<String, Json>,
        concurrency: usize,
        examples: Vec<ExampleResult>,
        wall_time: Duration,
    ) -> Self {
        let scores: Vec<f64> = examples.iter().map(|e| e.score).collect();
        let (mean, std_error) = mean_and_std_error(&scores);
        let mut latencies: Vec<Duration> = examples.iter().map(|e| e.latency).collect();
        latencies.sort_unstable();
        let mut tokens = TokenUsage::default();
        for e in &examples {
            tokens.add(&e.tokens);
        }
        Self {
            program,
            metric,
            overrides,
            concurrency,
            mean,
            std_error,
            errors: examples.iter().filter(|e| e.error.is_some()).count(),
            latency_median: percentile(&latencies, 0.5),
            latency_p90: percentile(&latencies, 0.9),
            tokens,
            wall_time,
            examples,
        }
    }

    /// The one-line summary: `Qa / exact_match(answer): 0.850 ± 0.036 on 100 examples, 2
    /// errors, latency p50 1.2ms p90 3.1ms, 0 tokens, 0.12s`.
    pub fn summary(&self) -> String {
        format!(
            "{} / {}: {:.3} ± {:.3} on {} examples, {} error{}, latency p50 {:.1?} p90 {:.1?}, {} tokens, {:.2?}",
            self.program,
            self.metric,
            self.mean,
            self.std_error,
            self.examples.len(),
            self.errors,
            if self.errors == 1 { "" } else { "s" },
            self.latency_median,
            self.latency_p90,
            self.tokens.total(),
            self.wall_time,
        )
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // A report holds only strings, numbers and maps of them: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Mean and standard error of the mean (sample standard deviation / sqrt(n)).
#[allow(clippy::cast_precision_loss)] // counts far below 2^53
pub(crate) fn mean_and_std_error(scores: &[f64]) -> (f64, f64) {
    let n = scores.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = scores.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let variance = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, (variance / n as f64).sqrt())
}

/// The nearest-rank percentile `p` (in `(0, 1]`) of sorted durations; zero for none.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl fmt::Display for EvalReport {
    /// A table: the summary rows, then one row per failed example (`{:#}` shows every
    /// example).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "program      {}", self.program)?;
        writeln!(f, "metric       {}", self.metric)?;
        if !self.overrides.is_empty() {
            let overrides: Vec<String> = self
                .overrides
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(f, "overrides    {}", overrides.join(" "))?;
        }
        writeln!(
            f,
            "score        {:.3} ± {:.3} (mean ± standard error, {} examples)",
            self.mean,
            self.std_error,
            self.examples.len()
        )?;
        writeln!(f, "errors       {}", self.errors)?;
        writeln!(
            f,
            "latency      median {:.2?}, p90 {:.2?}",
            self.latency_median, self.latency_p90
        )?;
        writeln!(
            f,
            "tokens       {} prompt + {} completion in {} LM calls",
            self.tokens.prompt_tokens, self.tokens.completion_tokens, self.tokens.lm_calls
        )?;
        writeln!(
            f,
            "wall time    {:.2?} (concurrency {})",
            self.wall_time, self.concurrency
        )?;
        let rows: Vec<&ExampleResult> = self
            .examples
            .iter()
            .filter(|e| f.alternate() || e.error.is_some())
            .collect();
        if !rows.is_empty() {
            writeln!(f)?;
            writeln!(f, "{:>6}  {:>5}  {:>10}  error", "#", "score", "latency")?;
            for e in rows {
                writeln!(
                    f,
                    "{:>6}  {:>5.3}  {:>10}  {}",
                    e.index,
                    e.score,
                    format!("{:.2?}", e.latency),
                    e.error.as_deref().unwrap_or("")
                )?;
            }
        }
        Ok(())
    }
}

/// Durations as milliseconds (a float) in JSON.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_error_is_that_of_the_sample() {
        let (mean, se) = mean_and_std_error(&[1.0, 0.0, 1.0, 0.0]);
        assert_eq!(mean, 0.5);
        // sample sd = sqrt(1/3), se = sd / 2
        assert!((se - (1.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(mean_and_std_error(&[0.7]), (0.7, 0.0));
        assert_eq!(mean_and_std_error(&[]), (0.0, 0.0));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 0.5), Duration::from_millis(5));
        assert_eq!(percentile(&ms, 0.9), Duration::from_millis(9));
        assert_eq!(percentile(&ms[..1], 0.9), Duration::from_millis(1));
    }
}
