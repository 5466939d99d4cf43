//! Metrics: how well a prediction answers its example, in `[0, 1]`. The trait, Rust closures
//! as metrics, and the built-ins (exact match, containment, token F1) with DSPy's text
//! normalization.

use std::collections::HashMap;

use serde_json::Value as Json;
use unicode_normalization::UnicodeNormalization;

use super::example::{Example, json_text};
use crate::data::Fields;
use crate::error::{Error, Result};

/// Scores a prediction (the program's output fields) against its example. A score is in
/// `[0, 1]`; the evaluator turns a score outside it, or NaN, into an error naming the metric
/// (see [`checked_score`]).
pub trait Metric: Send + Sync {
    /// The metric's name, in reports and errors (`exact_match(answer)`).
    fn name(&self) -> &str;

    /// The score of `prediction` for `example`.
    fn score(&self, example: &Example, prediction: &Fields) -> Result<f64>;
}

/// What a metric closure may return: a score (`f64`, `f32`), a pass/fail (`bool`, 1 or 0), or
/// either in a `Result`.
pub trait IntoScore {
    /// The score.
    fn into_score(self) -> Result<f64>;
}

impl IntoScore for f64 {
    fn into_score(self) -> Result<f64> {
        Ok(self)
    }
}

impl IntoScore for f32 {
    fn into_score(self) -> Result<f64> {
        Ok(f64::from(self))
    }
}

impl IntoScore for bool {
    fn into_score(self) -> Result<f64> {
        Ok(if self { 1.0 } else { 0.0 })
    }
}

impl<S: IntoScore> IntoScore for Result<S> {
    fn into_score(self) -> Result<f64> {
        self.and_then(IntoScore::into_score)
    }
}

/// A metric made of a Rust closure; see [`metric_fn`].
pub struct FnMetric<F> {
    name: String,
    f: F,
}

/// A named metric from a closure over the example and the prediction.
///
/// ```
/// use dspex::eval::{Example, Metric, metric_fn};
/// use dspex::Fields;
///
/// let short = metric_fn("short_answer", |_ex: &Example, pred: &Fields| {
///     pred.get::<&str>("answer").is_ok_and(|a| a.len() <= 10)
/// });
/// let ex = Example::new().with_input("question", "?");
/// assert_eq!(short.score(&ex, &Fields::from([("answer", "Paris")]))?, 1.0);
/// # Ok::<(), dspex::Error>(())
/// ```
pub fn metric_fn<F, S>(name: impl Into<String>, f: F) -> FnMetric<F>
where
    F: Fn(&Example, &Fields) -> S + Send + Sync,
    S: IntoScore,
{
    FnMetric {
        name: name.into(),
        f,
    }
}

impl<F, S> Metric for FnMetric<F>
where
    F: Fn(&Example, &Fields) -> S + Send + Sync,
    S: IntoScore,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, example: &Example, prediction: &Fields) -> Result<f64> {
        (self.f)(example, prediction).into_score()
    }
}

/// Runs `metric` and checks its score: an error, a NaN or a score outside `[0, 1]` is an
/// [`Error::Metric`] naming the metric.
pub fn checked_score(
    metric: &(impl Metric + ?Sized),
    example: &Example,
    prediction: &Fields,
) -> Result<f64> {
    let score = metric.score(example, prediction).map_err(|e| match e {
        e @ Error::Metric { .. } => e,
        e => Error::Metric {
            metric: metric.name().to_owned(),
            message: e.to_string(),
        },
    })?;
    score_in_range(metric.name(), score)
}

/// `score` if it is in `[0, 1]`, else an [`Error::Metric`] naming `metric`.
pub fn score_in_range(metric: &str, score: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&score) {
        return Err(Error::Metric {
            metric: metric.to_owned(),
            message: format!("scored {score}, expected a number in [0, 1]"),
        });
    }
    Ok(score)
}

/// How the built-in metrics compare text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalization {
    /// DSPy's `normalize_text` (the SQuAD normalization): Unicode NFD, lower case, ASCII
    /// punctuation removed, the English articles `a`, `an`, `the` removed as whole words,
    /// whitespace collapsed. So `"The  Eiffel Tower!"` equals `"eiffel tower"`.
    #[default]
    Dspy,
    /// The text as it is.
    None,
}

impl Normalization {
    /// `text` normalized, as whitespace-separated tokens.
    pub fn tokens(self, text: &str) -> Vec<String> {
        match self {
            Normalization::None => text.split_whitespace().map(str::to_owned).collect(),
            Normalization::Dspy => {
                let lowered: String = text.nfd().collect::<String>().to_lowercase();
                let without_punctuation: String = lowered
                    .chars()
                    .filter(|c| !c.is_ascii_punctuation())
                    .collect();
                without_punctuation
                    .split_whitespace()
                    .filter(|w| !matches!(*w, "a" | "an" | "the"))
                    .map(str::to_owned)
                    .collect()
            }
        }
    }

    /// `text` normalized (for [`Normalization::None`], unchanged).
    pub fn apply(self, text: &str) -> String {
        match self {
            Normalization::None => text.to_owned(),
            Normalization::Dspy => self.tokens(text).join(" "),
        }
    }
}

/// What the built-in metrics compare: the predicted field against the example's expected value
/// of the same name. An expected list means "any of these" (the best score counts), as in
/// DSPy's `answer_exact_match`.
#[derive(Debug, Clone)]
struct FieldComparison {
    field: String,
    normalization: Normalization,
}

impl FieldComparison {
    fn new(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            normalization: Normalization::Dspy,
        }
    }

    /// The best of `compare(prediction, reference)` over the references.
    fn best(
        &self,
        metric: &str,
        example: &Example,
        prediction: &Fields,
        compare: impl Fn(&str, &str) -> f64,
    ) -> Result<f64> {
        let error = |message: String| Error::Metric {
            metric: metric.to_owned(),
            message,
        };
        let predicted = prediction
            .value(&self.field)
            .map(json_text)
            .ok_or_else(|| {
                error(format!(
                    "the prediction has no field `{}` (it has: {})",
                    self.field,
                    prediction
                        .iter()
                        .map(|(k, _)| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let expected = example
            .expected(&self.field)
            .ok_or_else(|| error(format!("the example has no expected `{}`", self.field)))?;
        let references: Vec<String> = match expected {
            Json::Array(items) if !items.is_empty() => items.iter().map(json_text).collect(),
            other => vec![json_text(other)],
        };
        Ok(references
            .iter()
            .map(|r| compare(&predicted, r))
            .fold(0.0, f64::max))
    }
}

/// Declares a built-in metric comparing one field: its struct (a name and a
/// [`FieldComparison`]), `new`, `normalization`, and its [`Metric`] impl scoring with
/// `$compare(normalization, predicted, reference)`.
macro_rules! field_metric {
    ($(#[$doc:meta])* $ty:ident, $label:literal, $compare:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $ty {
            name: String,
            on: FieldComparison,
        }

        impl $ty {
            #[doc = concat!("`", $label, "` of field `field`, with DSPy's normalization.")]
            pub fn new(field: &str) -> Self {
                Self {
                    name: format!(concat!($label, "({})"), field),
                    on: FieldComparison::new(field),
                }
            }

            /// Compares with another normalization.
            #[must_use]
            pub fn normalization(mut self, normalization: Normalization) -> Self {
                self.on.normalization = normalization;
                self
            }
        }

        impl Metric for $ty {
            fn name(&self) -> &str {
                &self.name
            }

            fn score(&self, example: &Example, prediction: &Fields) -> Result<f64> {
                let n = self.on.normalization;
                let compare: fn(Normalization, &str, &str) -> f64 = $compare;
                self.on
                    .best(&self.name, example, prediction, |p, r| compare(n, p, r))
            }
        }
    };
}

field_metric!(
    /// Exact match of a field after normalization (DSPy's `answer_exact_match` with `frac=1`):
    /// 1 if the predicted field equals the expected value (or one of an expected list), else 0.
    ///
    /// ```
    /// use dspex::eval::{ExactMatch, Example, Metric};
    /// use dspex::Fields;
    ///
    /// let em = ExactMatch::new("answer");
    /// let ex = Example::new().with_expected("answer", "Eiffel Tower");
    /// assert_eq!(em.score(&ex, &Fields::from([("answer", "the eiffel tower!")]))?, 1.0);
    /// assert_eq!(em.score(&ex, &Fields::from([("answer", "Louvre")]))?, 0.0);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    ExactMatch,
    "exact_match",
    |n, p, r| if n.apply(p) == n.apply(r) { 1.0 } else { 0.0 }
);

field_metric!(
    /// Containment: 1 if the expected value (or one of an expected list), normalized, appears
    /// in the normalized predicted field as a run of whole tokens, else 0 (the idea of DSPy's
    /// `answer_passage_match`, applied to one field).
    ///
    /// ```
    /// use dspex::eval::{Contains, Example, Metric};
    /// use dspex::Fields;
    ///
    /// let contains = Contains::new("answer");
    /// let ex = Example::new().with_expected("answer", "Paris");
    /// assert_eq!(contains.score(&ex, &Fields::from([("answer", "It is Paris, France.")]))?, 1.0);
    /// assert_eq!(contains.score(&ex, &Fields::from([("answer", "Parisian")]))?, 0.0);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    Contains,
    "contains",
    |n, p, r| {
        let (haystack, needle) = (n.tokens(p), n.tokens(r));
        let found = needle.is_empty()
            || haystack
                .windows(needle.len())
                .any(|window| window == needle.as_slice());
        if found { 1.0 } else { 0.0 }
    }
);

field_metric!(
    /// Token F1 (DSPy's `F1`, the SQuAD metric): the harmonic mean of token precision and
    /// recall between the normalized predicted field and the normalized expected value (the
    /// best over an expected list); 0 when no token is shared, and when both sides are empty
    /// (as DSPy).
    ///
    /// ```
    /// use dspex::eval::{Example, Metric, TokenF1};
    /// use dspex::Fields;
    ///
    /// let f1 = TokenF1::new("answer");
    /// let ex = Example::new().with_expected("answer", "Paris");
    /// let score = f1.score(&ex, &Fields::from([("answer", "Eiffel Tower is in Paris")]))?;
    /// assert!((score - 1.0 / 3.0).abs() < 1e-12);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    TokenF1,
    "token_f1",
    |n, p, r| token_f1(&n.tokens(p), &n.tokens(r))
);

/// Token F1 of two token lists, counting repeated tokens as often as both sides have them.
#[allow(clippy::cast_precision_loss)] // token counts are far below 2^53
fn token_f1(predicted: &[String], reference: &[String]) -> f64 {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for token in reference {
        *counts.entry(token).or_default() += 1;
    }
    let mut same = 0usize;
    for token in predicted {
        if let Some(n) = counts.get_mut(token.as_str())
            && *n > 0
        {
            *n -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / predicted.len() as f64;
    let recall = same as f64 / reference.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(answer: &str) -> Fields {
        Fields::from([("answer", answer)])
    }

    fn ex(expected: impl Into<Json>) -> Example {
        Example::new().with_expected("answer", expected)
    }

    #[test]
    fn normalization_follows_dspy() {
        let n = Normalization::Dspy;
        assert_eq!(n.apply("The,  Eiffel  Tower!"), "eiffel tower");
        assert_eq!(n.apply("An apple a day"), "apple day");
        // NFD splits accents off, as Python's `unicodedata.normalize("NFD", ..)` does.
        assert_eq!(n.apply("Café"), "cafe\u{301}");
        assert_eq!(Normalization::None.apply("The Cat."), "The Cat.");
    }

    #[test]
    fn exact_match_takes_the_best_of_a_list() {
        let em = ExactMatch::new("answer");
        assert_eq!(
            em.score(&ex(vec!["Louvre", "Paris"]), &pred("paris"))
                .unwrap(),
            1.0
        );
        assert_eq!(em.score(&ex("Paris, France"), &pred("paris")).unwrap(), 0.0);
        let strict = ExactMatch::new("answer").normalization(Normalization::None);
        assert_eq!(strict.score(&ex("Paris"), &pred("paris")).unwrap(), 0.0);
        // Non-string expected values compare as their JSON text.
        assert_eq!(em.score(&ex(42), &pred("42")).unwrap(), 1.0);
    }

    #[test]
    fn token_f1_matches_squad() {
        let f1 = TokenF1::new("answer");
        let score = f1
            .score(&ex("Eiffel Tower"), &pred("the Eiffel Tower"))
            .unwrap();
        assert!((score - 1.0).abs() < 1e-12);
        // precision 1/2, recall 1/1 -> 2/3
        let score = f1.score(&ex("Paris"), &pred("Paris Paris")).unwrap();
        assert!((score - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(f1.score(&ex(""), &pred("")).unwrap(), 0.0);
    }

    #[test]
    fn containment_needs_whole_tokens() {
        let c = Contains::new("answer");
        assert_eq!(
            c.score(&ex("new york"), &pred("I love New York!")).unwrap(),
            1.0
        );
        assert_eq!(
            c.score(&ex("york new"), &pred("I love New York!")).unwrap(),
            0.0
        );
    }

    #[test]
    fn a_missing_field_is_an_error_naming_the_metric() {
        let em = ExactMatch::new("answer");
        let err = em
            .score(&ex("x"), &Fields::from([("reply", "x")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "metric `exact_match(answer)`: the prediction has no field `answer` (it has: `reply`)"
        );
        let err = em.score(&Example::new(), &pred("x")).unwrap_err();
        assert!(
            err.to_string()
                .contains("the example has no expected `answer`")
        );
    }

    #[test]
    fn scores_outside_the_unit_interval_are_errors_naming_the_metric() {
        let ex = ex("x");
        for bad in [1.5, -0.1, f64::NAN] {
            let m = metric_fn("wild", move |_: &Example, _: &Fields| bad);
            let err = checked_score(&m, &ex, &pred("x")).unwrap_err();
            assert!(
                err.to_string().starts_with("metric `wild`: scored "),
                "{err}"
            );
        }
        let failing = metric_fn("failing", |_: &Example, p: &Fields| -> Result<bool> {
            Ok(p.get::<&str>("missing")?.is_empty())
        });
        let err = checked_score(&failing, &ex, &pred("x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metric `failing`: `missing` is missing from the fields"
        );
        let boolean = metric_fn("bool", |_: &Example, _: &Fields| true);
        assert_eq!(checked_score(&boolean, &ex, &pred("x")).unwrap(), 1.0);
    }
}
