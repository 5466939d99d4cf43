//! Property tests: validation never panics, and whatever it accepts satisfies the type and every
//! constraint; whatever it refuses breaks one of them.

use dspex_core::{Constraints, Number, Rule, Signature, Value, VarType, validate};
use proptest::prelude::*;

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>().prop_map(Value::Float),
        prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)]
            .prop_map(Value::Float),
        any::<i64>().prop_map(Value::Integer),
        (-5i64..5).prop_map(Value::Integer),
        ".{0,12}".prop_map(Value::String),
        "[a-c]{0,4}".prop_map(Value::String),
        any::<bool>().prop_map(Value::Boolean),
        prop::collection::vec(any::<f32>(), 0..6).prop_map(Value::Embedding),
    ]
}

fn any_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        (-10i64..10).prop_map(Number::Int),
        (-10.0f64..10.0).prop_map(Number::Float),
        any::<f64>().prop_map(Number::Float),
    ]
}

/// Constraints whose keys apply to `ty` (other keys are refused at registration, so validation
/// never sees them), with sound and unsound values alike.
fn constraints_for(ty: VarType) -> BoxedStrategy<Constraints> {
    let none = Constraints::none();
    match ty {
        VarType::Integer => (prop::option::of(-10i64..10), prop::option::of(-10i64..10))
            .prop_map(|(min, max)| Constraints {
                min: min.map(Number::Int),
                max: max.map(Number::Int),
                ..Constraints::none()
            })
            .boxed(),
        VarType::Float => (
            prop::option::of(any_number()),
            prop::option::of(any_number()),
        )
            .prop_map(move |(min, max)| Constraints {
                min,
                max,
                ..Constraints::none()
            })
            .boxed(),
        VarType::String => (
            prop::option::of(0u64..6),
            prop::option::of(0u64..6),
            prop::option::of(prop_oneof![Just("[a-c]*"), Just("a.b"), Just("x|y+")]),
        )
            .prop_map(|(min_length, max_length, pattern)| {
                let c = Constraints {
                    min_length,
                    max_length,
                    ..Constraints::none()
                };
                match pattern {
                    Some(p) => c.with_pattern(p).expect("the patterns above are valid"),
                    None => c,
                }
            })
            .boxed(),
        VarType::Choice | VarType::Module => prop::option::of(prop::collection::vec(
            prop_oneof![
                "[a-c]{0,3}",
                Just("Predict".to_owned()),
                Just("ReAct".to_owned())
            ],
            0..4,
        ))
        .prop_map(|choices| Constraints {
            choices,
            ..Constraints::none()
        })
        .boxed(),
        VarType::Embedding => prop::option::of(0u64..5)
            .prop_map(|dimensions| Constraints {
                dimensions,
                ..Constraints::none()
            })
            .boxed(),
        VarType::Boolean => Just(none).boxed(),
    }
}

fn typed_constraints() -> impl Strategy<Value = (VarType, Constraints)> {
    prop::sample::select(VarType::ALL.to_vec()).prop_flat_map(|ty| (Just(ty), constraints_for(ty)))
}

/// An independent statement of the rules of variables, written from their documentation rather
/// than from `validate`'s code.
fn satisfies(ty: VarType, c: &Constraints, v: &Value) -> bool {
    let in_range =
        |x: f64| c.min.is_none_or(|m| x >= m.as_f64()) && c.max.is_none_or(|m| x <= m.as_f64());
    match (ty, v) {
        (VarType::Float, Value::Float(x)) => x.is_finite() && in_range(*x),
        #[allow(clippy::cast_precision_loss)]
        (VarType::Float, Value::Integer(i)) => in_range(*i as f64),
        (VarType::Integer, Value::Integer(i)) => {
            c.min
                .is_none_or(|m| matches!(m, Number::Int(lo) if *i >= lo))
                && c.max
                    .is_none_or(|m| matches!(m, Number::Int(hi) if *i <= hi))
        }
        (VarType::String, Value::String(s)) => {
            let n = s.chars().count() as u64;
            c.min_length.is_none_or(|m| n >= m)
                && c.max_length.is_none_or(|m| n <= m)
                && c.pattern.as_ref().is_none_or(|p| p.is_match(s))
        }
        (VarType::Choice, Value::String(s)) => c.choices.as_ref().is_some_and(|cs| cs.contains(s)),
        (VarType::Module, Value::String(s)) => match &c.choices {
            Some(cs) => cs.contains(s),
            None => dspex_core::dspy::module(s).is_some(),
        },
        (VarType::Boolean, Value::Boolean(_)) => true,
        (VarType::Embedding, Value::Embedding(e)) => {
            e.iter().all(|x| x.is_finite()) && c.dimensions.is_none_or(|d| e.len() as u64 == d)
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4096,
        // About a third of the generated constraints are unsound (min > max, ...) and skipped.
        max_global_rejects: 1 << 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn validation_agrees_with_the_rules((ty, c) in typed_constraints(), v in any_value()) {
        // Only sound constraints reach validation (registration checks them first).
        prop_assume!(c.check(ty).is_empty());
        let expected = satisfies(ty, &c, &v);
        match validate("x", ty, &c, v.clone()) {
            Ok(accepted) => {
                prop_assert!(expected, "accepted {v:?} for {ty} with {c:?}");
                prop_assert!(ty.accepts(&accepted));
                prop_assert!(satisfies(ty, &c, &accepted));
            }
            Err(e) => {
                prop_assert!(!expected, "refused {v:?} for {ty} with {c:?}: {e}");
                // Debug formatting compares NaN with NaN as equal, unlike `==`.
                prop_assert_eq!(format!("{:?}", e.value), format!("{v:?}"));
                prop_assert_eq!(e.variable.as_str(), "x");
                prop_assert_eq!(e.is_type_error(), !ty.accepts(&e.value));
                prop_assert!(!e.to_string().is_empty());
                if let Rule::NotAChoice { choices } = &e.rule {
                    prop_assert!(!choices.is_empty());
                }
            }
        }
    }

    #[test]
    fn constraint_checks_never_panic((ty, c) in typed_constraints(), other in typed_constraints()) {
        // Also the constraints of one type checked against another.
        for issue in c.check(ty).into_iter().chain(other.1.check(ty)) {
            prop_assert!(!issue.to_string().is_empty());
        }
    }

    #[test]
    fn signature_parsing_never_panics_and_round_trips(text in "[a-z_ ,:>\\-\\[\\]]{0,30}") {
        if let Ok(sig) = Signature::parse(&text) {
            let again = Signature::parse(&sig.to_string()).expect("display output parses");
            prop_assert_eq!(again, sig);
        }
    }
}
