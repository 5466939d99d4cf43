//! The conformance suite: one set of tests, written once against `StateProvider` and `Context`,
//! that every backend must pass: the rules of variables, stated once. A backend's test file implements
//! [`Fixture`] and invokes [`conformance_suite!`]; the tests are the same for every backend.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::float_cmp)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dspex::state::{
    DEFAULT_HISTORY_LIMIT, Key, MAX_HISTORY_BYTES, ROLLED_BACK_FROM, StateProvider,
    rollback_metadata,
};
use dspex::{BackendKind, HistoryEntry, SetOptions, Source};
use dspex::{
    Choice, Constraints, Context, Embedding, Error, ModuleName, Value, VarType, VariableSpec,
    WatchEvent, WatchOptions,
};

/// What a backend supplies to the suite.
pub trait Fixture: Send + Sync + 'static {
    /// A fresh, empty backend.
    fn provider(&self) -> impl Future<Output = Arc<dyn StateProvider>> + Send;
    /// A fresh, empty context on this backend.
    fn context(&self) -> impl Future<Output = Context> + Send;
    /// `n` handles on one fresh, empty backend, as `n` processes would hold it: for a backend
    /// shared between processes, each with its own connection and copy (the default: the same
    /// handle `n` times).
    fn handles(&self, n: usize) -> impl Future<Output = Vec<Arc<dyn StateProvider>>> + Send {
        async move { vec![self.provider().await; n] }
    }
}

/// How long a test waits for an event another handle causes (a liveness bound, never a
/// timing assertion).
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Expands to one `#[tokio::test]` per conformance test, each run against `$fixture`.
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                conformance::$test(&$fixture).await;
            }
        )*
    };
    ($fixture:expr) => {
        conformance_suite!($fixture;
            registers_and_reads_a_full_record,
            registering_a_taken_name,
            invalid_declarations_register_nothing,
            floats_are_finite_and_bounded,
            integers_are_never_floats_or_booleans,
            strings_count_chars_and_match_whole_patterns,
            choices_and_modules_are_closed_sets,
            embeddings_have_exact_finite_dimensions,
            booleans_accept_only_booleans,
            rejected_writes_change_nothing,
            versions_count_accepted_writes_and_record_the_source,
            compare_and_set_conflicts,
            set_merges_metadata,
            update_is_atomic_under_contention,
            update_is_atomic_across_handles,
            compare_and_set_conflicts_across_handles,
            watchers_see_the_writes_of_every_handle,
            update_validates_and_failed_updates_change_nothing,
            update_many_is_all_or_nothing,
            get_many_reports_missing_names,
            read_many_reads_one_snapshot_in_order,
            list_is_sorted_and_globs_match_whole_names,
            delete_and_reregister,
            resolved_refs_read_and_go_stale,
            watchers_see_every_change_in_order,
            watchers_are_streams,
            watchers_only_see_their_variables,
            watch_with_initial_values_and_deletions,
            slow_watcher_never_blocks_a_writer,
            export_import_keeps_everything,
            import_is_all_or_nothing,
            context_typed_and_by_name_access,
            context_handles_are_shared_across_clones_and_threads,
            context_update_from_8_tasks_is_exact,
            context_update_may_read_the_context,
            history_keeps_every_accepted_write_newest_first,
            history_is_bounded_in_entries_and_bytes,
            deleting_a_variable_deletes_its_history,
            rollback_writes_a_kept_version_again_as_a_new_version,
            rollback_to_a_version_not_kept_names_the_kept_ones,
            read_only_variables_refuse_python_writes_and_take_rust_ones,
            export_import_keeps_histories_and_checks_them,
            context_history_rollback_and_read_only,
        );
    };
}

fn float(name: &str, initial: f64, min: f64, max: f64) -> VariableSpec {
    VariableSpec::new(name, VarType::Float, initial).with_constraints(Constraints::range(min, max))
}

fn set(p: &dyn StateProvider, name: &str, v: impl Into<Value>) -> dspex::Result<u64> {
    p.set(
        Key::Name(name),
        v.into(),
        &SetOptions::default(),
        Source::Rust,
    )
}

fn value(p: &dyn StateProvider, name: &str) -> Value {
    p.get(Key::Name(name)).unwrap().value
}

/// Asserts that `write` is refused with the given message and leaves the record exactly as it
/// was (value, version, metadata, timestamps, source).
fn assert_refused(
    p: &dyn StateProvider,
    name: &str,
    write: impl FnOnce(&dyn StateProvider) -> dspex::Result<u64>,
    message: &str,
) {
    let before = p.get(Key::Name(name)).unwrap();
    let err = write(p).expect_err("the write should be refused");
    assert_eq!(err.to_string(), message);
    assert_eq!(
        p.get(Key::Name(name)).unwrap(),
        before,
        "a refused write changed `{name}`"
    );
}

pub async fn registers_and_reads_a_full_record(f: &impl Fixture) {
    let p = f.provider().await;
    let before = SystemTime::now();
    let rec = p
        .register(
            float("temperature", 0.7, 0.0, 2.0)
                .with_description("sampling temperature")
                .with_metadata("owner", "tests"),
            Source::Rust,
        )
        .unwrap();
    assert_eq!(rec.name, "temperature");
    assert_eq!(rec.ty, VarType::Float);
    assert_eq!(rec.value, Value::Float(0.7));
    assert_eq!(rec.constraints, Constraints::range(0.0, 2.0));
    assert_eq!(rec.description.as_deref(), Some("sampling temperature"));
    assert_eq!(rec.metadata["owner"], "tests");
    assert_eq!(rec.version, 1);
    assert_eq!(rec.source, Source::Rust);
    assert!(rec.created_at >= before - Duration::from_secs(1));
    assert_eq!(rec.created_at, rec.updated_at);
    assert_eq!(p.get(Key::Name("temperature")).unwrap(), rec);

    // Integers are widened for float variables, at registration too.
    let rec = p
        .register(VariableSpec::new("top_p", VarType::Float, 1), Source::Rust)
        .unwrap();
    assert_eq!(rec.value, Value::Float(1.0));
    assert_ne!(rec.id, p.get(Key::Name("temperature")).unwrap().id);
}

/// A taken name is refused with another declaration on every backend, and changes nothing. The
/// same declaration is refused too, except on a shared session, where registering means
/// joining: every process of a service registers the variables it uses, and they share them.
pub async fn registering_a_taken_name(f: &impl Fixture) {
    let p = f.provider().await;
    let first = p.register(float("t", 0.5, 0.0, 1.0), Source::Rust).unwrap();
    let err = p
        .register(VariableSpec::new("t", VarType::Integer, 3), Source::Rust)
        .unwrap_err();
    let same = p.register(float("t", 0.9, 0.0, 1.0), Source::Python);
    if p.kind() == BackendKind::Shared {
        assert!(
            matches!(err, Error::DeclarationMismatch { ref name, .. } if name == "t"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with("variable `t` is declared differently in shared session `"),
            "{message}"
        );
        assert!(
            message.ends_with(
                "`: type float in the session, integer here; constraints min 0.0, max 1.0 in the session, none here"
            ),
            "{message}"
        );
        // The same declaration shares the session's record: value, version, source.
        assert_eq!(same.unwrap(), first);
        let err = p
            .register(
                float("t", 0.5, 0.0, 1.0).with_description("another"),
                Source::Rust,
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("description none in the session, \"another\" here"),
            "{err}"
        );
    } else {
        assert!(
            matches!(err, Error::AlreadyExists { ref name } if name == "t"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "variable `t` already exists");
        assert!(matches!(same, Err(Error::AlreadyExists { .. })), "{same:?}");
    }
    let rec = p.get(Key::Name("t")).unwrap();
    assert_eq!(
        (rec.ty, rec.value, rec.version, rec.source),
        (VarType::Float, Value::Float(0.5), 1, Source::Rust)
    );
    assert_eq!(p.list(None).unwrap().len(), 1);
}

pub async fn invalid_declarations_register_nothing(f: &impl Fixture) {
    let p = f.provider().await;
    let cases = [
        (
            float("t", 2.5, 0.0, 2.0),
            "invalid variable `t`: initial value 2.5 is above max 2.0",
        ),
        (
            float("t", 1.0, 2.0, 0.0),
            "invalid variable `t`: `min` 2.0 is greater than `max` 0.0",
        ),
        (
            VariableSpec::new("c", VarType::Choice, "a")
                .with_constraints(Constraints::choices(["a", "a"])),
            "invalid variable `c`: duplicate choice \"a\"",
        ),
        (
            VariableSpec::new("c", VarType::Choice, "a"),
            "invalid variable `c`: a choice variable needs `choices`",
        ),
        (
            VariableSpec::new("f", VarType::Float, 1.0)
                .with_constraints(Constraints::choices(["a"])),
            "invalid variable `f`: constraint `choices` does not apply to a float variable; expected one of `min`, `max`, `description`, `readonly`",
        ),
        (
            VariableSpec::new("n", VarType::Integer, 1.5),
            "invalid variable `n`: initial value 1.5 is a float, expected an integer",
        ),
        (
            VariableSpec::new("9lives", VarType::Boolean, true),
            "invalid variable `9lives`: invalid name: a name must start with an ASCII letter or `_`",
        ),
    ];
    for (spec, message) in cases {
        let err = p.register(spec, Source::Rust).unwrap_err();
        assert!(matches!(err, Error::InvalidSpec(_)), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
    assert!(p.list(None).unwrap().is_empty());
}

pub async fn floats_are_finite_and_bounded(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(float("t", 0.7, 0.0, 2.0), Source::Rust).unwrap();
    assert_refused(
        p,
        "t",
        |p| set(p, "t", f64::NAN),
        "t: NaN is not finite: NaN and infinities are rejected",
    );
    assert_refused(
        p,
        "t",
        |p| set(p, "t", f64::INFINITY),
        "t: inf is not finite: NaN and infinities are rejected",
    );
    assert_refused(p, "t", |p| set(p, "t", 2.5), "t: 2.5 is above max 2.0");
    assert_refused(p, "t", |p| set(p, "t", -0.1), "t: -0.1 is below min 0.0");
    assert_refused(
        p,
        "t",
        |p| set(p, "t", "hot"),
        "t: \"hot\" is a string, expected a float",
    );
    assert_refused(
        p,
        "t",
        |p| set(p, "t", true),
        "t: true is a boolean, expected a float",
    );
    // Bounds are inclusive; integers are widened.
    set(p, "t", 2.0).unwrap();
    set(p, "t", 0).unwrap();
    assert_eq!(value(p, "t"), Value::Float(0.0));
    let err = set(p, "t", 3).unwrap_err();
    assert!(matches!(err, Error::ConstraintViolation(_)));
    assert_eq!(err.to_string(), "t: 3 is above max 2.0");
}

pub async fn integers_are_never_floats_or_booleans(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(
        VariableSpec::new("n", VarType::Integer, 256).with_constraints(Constraints::range(1, 4096)),
        Source::Rust,
    )
    .unwrap();
    let err = set(p, "n", 2.0).unwrap_err();
    assert!(matches!(err, Error::InvalidValue(_)), "{err:?}");
    assert_refused(
        p,
        "n",
        |p| set(p, "n", 2.0),
        "n: 2.0 is a float, expected an integer",
    );
    assert_refused(
        p,
        "n",
        |p| set(p, "n", true),
        "n: true is a boolean, expected an integer",
    );
    assert_refused(p, "n", |p| set(p, "n", 0), "n: 0 is below min 1");
    assert_refused(p, "n", |p| set(p, "n", 4097), "n: 4097 is above max 4096");
    set(p, "n", 4096).unwrap();
    assert_eq!(value(p, "n"), Value::Integer(4096));
}

pub async fn strings_count_chars_and_match_whole_patterns(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    let c = Constraints::default()
        .with_length(2, 4)
        .with_pattern("[a-zé]+")
        .unwrap();
    p.register(
        VariableSpec::new("s", VarType::String, "abc").with_constraints(c),
        Source::Rust,
    )
    .unwrap();
    // "éééé" is 8 bytes but 4 chars.
    set(p, "s", "éééé").unwrap();
    assert_refused(
        p,
        "s",
        |p| set(p, "s", "a"),
        "s: \"a\" is shorter than min_length 2 (1 chars)",
    );
    assert_refused(
        p,
        "s",
        |p| set(p, "s", "abcde"),
        "s: \"abcde\" is longer than max_length 4 (5 chars)",
    );
    assert_refused(
        p,
        "s",
        |p| set(p, "s", "ab1"),
        "s: \"ab1\" does not match pattern `[a-zé]+`",
    );
    // The pattern must match the whole value, not a substring.
    assert_refused(
        p,
        "s",
        |p| set(p, "s", "1ab"),
        "s: \"1ab\" does not match pattern `[a-zé]+`",
    );
    assert_refused(
        p,
        "s",
        |p| set(p, "s", 12),
        "s: 12 is an integer, expected a string",
    );
}

pub async fn choices_and_modules_are_closed_sets(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(
        VariableSpec::new("model", VarType::Choice, "gpt-4o-mini")
            .with_constraints(Constraints::choices(["gpt-4o-mini", "claude-3-haiku"])),
        Source::Rust,
    )
    .unwrap();
    set(p, "model", "claude-3-haiku").unwrap();
    assert_refused(
        p,
        "model",
        |p| set(p, "model", "gpt-5"),
        "model: \"gpt-5\" is not one of the choices \"gpt-4o-mini\", \"claude-3-haiku\"",
    );
    // A module variable without choices accepts the DSPy modules the worker knows.
    p.register(
        VariableSpec::new("reasoning", VarType::Module, "Predict"),
        Source::Rust,
    )
    .unwrap();
    set(p, "reasoning", "ChainOfThought").unwrap();
    let err = set(p, "reasoning", "NotAModule").unwrap_err();
    assert!(
        err.to_string().starts_with(
            "reasoning: \"NotAModule\" is not one of the choices \"Predict\", \"ChainOfThought\""
        ),
        "{err}"
    );
    p.register(
        VariableSpec::new("narrow", VarType::Module, "Predict")
            .with_constraints(Constraints::choices(["Predict", "my_pkg.mod.Custom"])),
        Source::Rust,
    )
    .unwrap();
    set(p, "narrow", "my_pkg.mod.Custom").unwrap();
    assert_refused(
        p,
        "narrow",
        |p| set(p, "narrow", "ChainOfThought"),
        "narrow: \"ChainOfThought\" is not one of the choices \"Predict\", \"my_pkg.mod.Custom\"",
    );
}

pub async fn embeddings_have_exact_finite_dimensions(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(
        VariableSpec::new("e", VarType::Embedding, vec![0.0f32; 3])
            .with_constraints(Constraints::default().with_dimensions(3)),
        Source::Rust,
    )
    .unwrap();
    set(p, "e", vec![1.0f32, 2.0, 3.0]).unwrap();
    assert_refused(
        p,
        "e",
        |p| set(p, "e", vec![1.0f32]),
        "e: [1.0] has 1 dimensions, expected 3",
    );
    assert_refused(
        p,
        "e",
        |p| set(p, "e", vec![1.0f32, f32::NAN, 0.0]),
        "e: [1.0, NaN, 0.0] is not finite: NaN and infinities are rejected",
    );
    assert_eq!(value(p, "e"), Value::Embedding(vec![1.0, 2.0, 3.0]));
}

pub async fn booleans_accept_only_booleans(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(
        VariableSpec::new("b", VarType::Boolean, false),
        Source::Rust,
    )
    .unwrap();
    set(p, "b", true).unwrap();
    assert_refused(
        p,
        "b",
        |p| set(p, "b", 1),
        "b: 1 is an integer, expected a boolean",
    );
    assert_refused(
        p,
        "b",
        |p| set(p, "b", "true"),
        "b: \"true\" is a string, expected a boolean",
    );
}

pub async fn rejected_writes_change_nothing(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(
        float("t", 0.7, 0.0, 2.0).with_metadata("k", "v0"),
        Source::Rust,
    )
    .unwrap();
    set(p, "t", 1.0).unwrap();
    let meta = SetOptions::default()
        .with_metadata("k", "v1")
        .with_metadata("new", "x");
    // Invalid value carrying metadata: neither value, version nor metadata change.
    assert_refused(
        p,
        "t",
        |p| p.set(Key::Name("t"), Value::Float(9.0), &meta, Source::Python),
        "t: 9.0 is above max 2.0",
    );
    // A compare-and-set conflict carrying metadata changes nothing either.
    let mut stale = meta.clone();
    stale.expected_version = Some(1);
    assert_refused(
        p,
        "t",
        |p| p.set(Key::Name("t"), Value::Float(0.1), &stale, Source::Python),
        "version conflict on `t`: expected version 1, found 2",
    );
    let rec = p.get(Key::Name("t")).unwrap();
    assert_eq!(rec.metadata, BTreeMap::from([("k".into(), "v0".into())]));
    assert_eq!(rec.source, Source::Rust);
    // Writes to a missing variable create nothing.
    let err = set(p, "missing", 1.0).unwrap_err();
    assert!(matches!(err, Error::NotFound { ref name } if name == "missing"));
    assert_eq!(p.list(None).unwrap().len(), 1);
}

pub async fn versions_count_accepted_writes_and_record_the_source(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    let created = p
        .register(float("t", 0.0, 0.0, 100.0), Source::Rust)
        .unwrap();
    for i in 1..=10u32 {
        let v = p
            .set(
                Key::Name("t"),
                Value::Float(f64::from(i)),
                &SetOptions::default(),
                Source::Python,
            )
            .unwrap();
        assert_eq!(v, u64::from(i) + 1);
        let _ = set(p, "t", -1.0); // refused: no version bump
    }
    let rec = p.get(Key::Name("t")).unwrap();
    assert_eq!(rec.version, 11);
    assert_eq!(rec.source, Source::Python);
    assert_eq!(rec.id, created.id);
    assert_eq!(rec.created_at, created.created_at);
    assert!(rec.updated_at >= created.updated_at);
}

pub async fn compare_and_set_conflicts(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(float("t", 0.0, 0.0, 1.0), Source::Rust).unwrap();
    let v = p
        .set(
            Key::Name("t"),
            Value::Float(0.5),
            &SetOptions::expect_version(1),
            Source::Rust,
        )
        .unwrap();
    assert_eq!(v, 2);
    let err = p
        .set(
            Key::Name("t"),
            Value::Float(0.9),
            &SetOptions::expect_version(1),
            Source::Rust,
        )
        .unwrap_err();
    match err {
        Error::Conflict {
            name,
            expected,
            actual,
        } => {
            assert_eq!((name.as_str(), expected, actual), ("t", 1, 2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(value(p, "t"), Value::Float(0.5));
}

pub async fn set_merges_metadata(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(
        float("t", 0.0, 0.0, 1.0).with_metadata("a", "1"),
        Source::Rust,
    )
    .unwrap();
    let opts = SetOptions::default()
        .with_metadata("a", "2")
        .with_metadata("b", "3");
    p.set(Key::Name("t"), Value::Float(0.1), &opts, Source::Rust)
        .unwrap();
    let rec = p.get(Key::Name("t")).unwrap();
    assert_eq!(
        rec.metadata,
        BTreeMap::from([("a".into(), "2".into()), ("b".into(), "3".into())])
    );
}

pub async fn update_is_atomic_under_contention(f: &impl Fixture) {
    let p = f.provider().await;
    p.register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    increment_from_tasks(&vec![Arc::clone(&p); 8], 10_000).await;
    let rec = p.get(Key::Name("n")).unwrap();
    assert_eq!(rec.value, Value::Integer(80_000));
    assert_eq!(rec.version, 80_001);
}

/// One task per handle, each adding 1 to `n` `times` times with `update`.
async fn increment_from_tasks(handles: &[Arc<dyn StateProvider>], times: usize) {
    let tasks: Vec<_> = handles
        .iter()
        .map(|p| {
            let p = Arc::clone(p);
            tokio::spawn(async move {
                for _ in 0..times {
                    p.update(
                        Key::Name("n"),
                        &mut |v| Ok(Value::Integer(v.as_i64().unwrap() + 1)),
                        Source::Rust,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Four handles (four processes, on a shared backend) increment one variable: none of the
/// increments is lost, and a write through any handle starts from the latest value.
pub async fn update_is_atomic_across_handles(f: &impl Fixture) {
    let handles = f.handles(4).await;
    handles[0]
        .register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    increment_from_tasks(&handles, 1_000).await;
    for p in &handles {
        let (value, version) = p
            .update(Key::Name("n"), &mut |v| Ok(v.clone()), Source::Rust)
            .unwrap();
        assert_eq!(value, Value::Integer(4_000));
        assert!(version > 4_001);
    }
}

/// A compare-and-set through one handle at a version another handle moved past is a
/// conflict, even if the first handle has not seen the other's write yet.
pub async fn compare_and_set_conflicts_across_handles(f: &impl Fixture) {
    let handles = f.handles(2).await;
    let (a, b) = (&handles[0], &handles[1]);
    a.register(float("t", 0.0, 0.0, 1.0), Source::Rust).unwrap();
    let seen = a.get(Key::Name("t")).unwrap().version;
    b.set(
        Key::Name("t"),
        Value::Float(0.5),
        &SetOptions::default(),
        Source::Python,
    )
    .unwrap();
    let err = a
        .set(
            Key::Name("t"),
            Value::Float(0.9),
            &SetOptions::expect_version(seen),
            Source::Rust,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { expected, actual, .. } if expected == seen && actual == seen + 1),
        "{err:?}"
    );
    assert_eq!(value(a.as_ref(), "t"), Value::Float(0.5));
    assert_eq!(value(b.as_ref(), "t"), Value::Float(0.5));
}

/// A watcher on one handle sees, in order, the changes made through another.
pub async fn watchers_see_the_writes_of_every_handle(f: &impl Fixture) {
    let handles = f.handles(2).await;
    let (a, b) = (&handles[0], &handles[1]);
    a.register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    let mut w = a.watch(&["n"], WatchOptions::default()).unwrap();
    for i in 1..=50i64 {
        b.set(
            Key::Name("n"),
            Value::Integer(i),
            &SetOptions::default(),
            Source::Python,
        )
        .unwrap();
    }
    for i in 1..=50i64 {
        match tokio::time::timeout(EVENT_TIMEOUT, w.recv()).await {
            Ok(Some(WatchEvent::Updated(c))) => {
                assert_eq!((c.new, c.source), (Value::Integer(i), Source::Python));
            }
            other => panic!("expected update {i}, got {other:?}"),
        }
    }
    // Once the watcher saw it, a read through the same handle sees it too.
    assert_eq!(value(a.as_ref(), "n"), Value::Integer(50));
}

pub async fn update_validates_and_failed_updates_change_nothing(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(float("t", 1.5, 0.0, 2.0), Source::Rust).unwrap();
    let before = p.get(Key::Name("t")).unwrap();
    let err = p
        .update(
            Key::Name("t"),
            &mut |v| Ok(Value::Float(v.as_f64().unwrap() * 2.0)),
            Source::Rust,
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "t: 3.0 is above max 2.0");
    let err = p
        .update(
            Key::Name("t"),
            &mut |_| {
                Err(Error::NotFound {
                    name: "from the closure".into(),
                })
            },
            Source::Rust,
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert_eq!(p.get(Key::Name("t")).unwrap(), before);
    let (v, version) = p
        .update(
            Key::Name("t"),
            &mut |v| Ok(Value::Float(v.as_f64().unwrap() / 3.0)),
            Source::Rust,
        )
        .unwrap();
    assert_eq!((v, version), (Value::Float(0.5), 2));
}

pub async fn update_many_is_all_or_nothing(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(float("a", 0.0, 0.0, 1.0), Source::Rust).unwrap();
    p.register(float("b", 0.0, 0.0, 1.0), Source::Rust).unwrap();
    p.register(VariableSpec::new("c", VarType::Integer, 0), Source::Rust)
        .unwrap();
    let snapshot = p.export().unwrap();
    let w = |items: &[(&str, Value)]| -> Vec<(String, Value)> {
        items
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect()
    };
    // One invalid value: nothing applies.
    let err = p
        .update_many(
            w(&[("a", 0.5.into()), ("b", 5.0.into()), ("c", 1.into())]),
            Source::Rust,
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "b: 5.0 is above max 1.0");
    // A wrong type: nothing applies.
    let err = p
        .update_many(w(&[("a", 0.5.into()), ("c", 1.5.into())]), Source::Rust)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidValue(_)));
    // A missing variable: nothing applies.
    let err = p
        .update_many(w(&[("a", 0.5.into()), ("zzz", 1.into())]), Source::Rust)
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { ref name } if name == "zzz"));
    // The same variable twice: nothing applies.
    let err = p
        .update_many(w(&[("a", 0.5.into()), ("a", 0.6.into())]), Source::Rust)
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateWrite { .. }));
    assert_eq!(p.export().unwrap(), snapshot);
    // All valid: all apply.
    let versions = p
        .update_many(
            w(&[("a", 0.5.into()), ("b", 1.into()), ("c", 7.into())]),
            Source::Python,
        )
        .unwrap();
    assert_eq!(versions, [2, 2, 2]);
    assert_eq!(value(p, "b"), Value::Float(1.0));
    assert_eq!(p.get(Key::Name("c")).unwrap().source, Source::Python);
}

pub async fn get_many_reports_missing_names(f: &impl Fixture) {
    let p = f.provider().await;
    p.register(float("a", 0.1, 0.0, 1.0), Source::Rust).unwrap();
    p.register(float("b", 0.2, 0.0, 1.0), Source::Rust).unwrap();
    let many = p.get_many(&["b", "nope", "a", "gone"]).unwrap();
    assert_eq!(
        many.found,
        vec![
            ("b".to_owned(), Value::Float(0.2)),
            ("a".to_owned(), Value::Float(0.1))
        ]
    );
    assert_eq!(many.missing, ["nope", "gone"]);
    assert_eq!(many.get("a"), Some(&Value::Float(0.1)));
}

pub async fn read_many_reads_one_snapshot_in_order(f: &impl Fixture) {
    let p = f.provider().await;
    let int = |name: &str| VariableSpec::new(name, VarType::Integer, 0);
    p.register(int("a"), Source::Rust).unwrap();
    p.register(int("b"), Source::Rust).unwrap();
    let read = |p: &dyn StateProvider, names: &[&str]| {
        let mut seen = Vec::new();
        p.read_many(names, &mut |name, record| {
            seen.push((
                name.to_owned(),
                record.map(|r| (r.value.clone(), r.version)),
            ));
        })
        .unwrap();
        seen
    };
    assert_eq!(
        read(&*p, &["b", "nope", "a"]),
        [
            ("b".to_owned(), Some((Value::Integer(0), 1))),
            ("nope".to_owned(), None),
            ("a".to_owned(), Some((Value::Integer(0), 1))),
        ]
    );
    // A batch written atomically is never seen half applied.
    let writer = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            for i in 1..=2000i64 {
                p.update_many_with(
                    vec![
                        ("a".into(), Value::Integer(i)),
                        ("b".into(), Value::Integer(i)),
                    ],
                    &BTreeMap::new(),
                    Source::Rust,
                )
                .unwrap();
            }
        })
    };
    while !writer.is_finished() {
        let seen = read(&*p, &["a", "b"]);
        assert_eq!(seen[0].1, seen[1].1, "{seen:?}");
    }
    writer.join().unwrap();
    assert_eq!(
        read(&*p, &["a"]),
        [("a".to_owned(), Some((Value::Integer(2000), 2001)))]
    );
}

pub async fn list_is_sorted_and_globs_match_whole_names(f: &impl Fixture) {
    let p = f.provider().await;
    for name in ["llm.top_p", "zeta", "llm.temperature", "alpha", "my.llm.x"] {
        p.register(
            VariableSpec::new(name, VarType::Boolean, true),
            Source::Rust,
        )
        .unwrap();
    }
    let names = |pattern: Option<&str>| -> Vec<String> {
        let glob = pattern.map(|g| dspex_core::Glob::new(g).unwrap());
        p.list(glob.as_ref())
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    assert_eq!(
        names(None),
        ["alpha", "llm.temperature", "llm.top_p", "my.llm.x", "zeta"]
    );
    assert_eq!(names(Some("llm.*")), ["llm.temperature", "llm.top_p"]);
    assert_eq!(
        names(Some("*llm*")),
        ["llm.temperature", "llm.top_p", "my.llm.x"]
    );
    assert_eq!(names(Some("zet")), Vec::<String>::new());
    assert_eq!(
        names(Some("[a-m]*")),
        ["alpha", "llm.temperature", "llm.top_p", "my.llm.x"]
    );
}

pub async fn delete_and_reregister(f: &impl Fixture) {
    let p = f.provider().await;
    let first = p.register(float("t", 0.1, 0.0, 1.0), Source::Rust).unwrap();
    let gone = p.delete(Key::Name("t"), Source::Rust).unwrap();
    assert_eq!(gone.value, Value::Float(0.1));
    assert!(matches!(p.get(Key::Name("t")), Err(Error::NotFound { .. })));
    assert!(matches!(
        p.delete(Key::Name("t"), Source::Rust),
        Err(Error::NotFound { .. })
    ));
    let second = p
        .register(VariableSpec::new("t", VarType::Integer, 3), Source::Rust)
        .unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(second.version, 1);
}

pub async fn resolved_refs_read_and_go_stale(f: &impl Fixture) {
    let p = f.provider().await;
    p.register(float("t", 0.1, 0.0, 1.0), Source::Rust).unwrap();
    let r = p.resolve("t").unwrap();
    p.set(
        Key::Ref(r),
        Value::Float(0.2),
        &SetOptions::default(),
        Source::Rust,
    )
    .unwrap();
    assert_eq!(p.get(Key::Ref(r)).unwrap().value, Value::Float(0.2));
    p.delete(Key::Name("t"), Source::Rust).unwrap();
    // A new variable may reuse the storage; the old reference must not reach it.
    p.register(float("u", 0.3, 0.0, 1.0), Source::Rust).unwrap();
    assert!(matches!(p.get(Key::Ref(r)), Err(Error::NotFound { .. })));
    assert!(matches!(p.resolve("t"), Err(Error::NotFound { .. })));
}

pub async fn watchers_see_every_change_in_order(f: &impl Fixture) {
    let p = f.provider().await;
    p.register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    let mut w = p
        .watch(
            &["n"],
            WatchOptions {
                capacity: 4096,
                include_initial: false,
            },
        )
        .unwrap();
    let writer = {
        let p = Arc::clone(&p);
        tokio::spawn(async move {
            for i in 1..=2000i64 {
                let source = if i % 2 == 0 {
                    Source::Python
                } else {
                    Source::Rust
                };
                p.set(
                    Key::Name("n"),
                    Value::Integer(i),
                    &SetOptions::default(),
                    source,
                )
                .unwrap();
            }
        })
    };
    for i in 1..=2000i64 {
        match w.recv().await.unwrap() {
            WatchEvent::Updated(c) => {
                assert_eq!(c.name, "n");
                assert_eq!(c.old, Value::Integer(i - 1));
                assert_eq!(c.new, Value::Integer(i));
                assert_eq!(c.version, u64::try_from(i).unwrap() + 1);
                let source = if i % 2 == 0 {
                    Source::Python
                } else {
                    Source::Rust
                };
                assert_eq!(c.source, source);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    writer.await.unwrap();
    // Refused writes are not changes.
    let _ = set(p.as_ref(), "n", 1.5);
    assert_eq!(w.try_recv(), None);
}

/// A watcher is a `Stream`: combinators see the same events, in order, and the stream ends
/// when the context is gone.
pub async fn watchers_are_streams(f: &impl Fixture) {
    use tokio_stream::StreamExt;

    let ctx = f.context().await;
    let n = ctx
        .defvariable::<i64>("n", 0, Constraints::range(0, 100))
        .unwrap();
    let watcher = ctx.watch(&["n"]).unwrap();
    for i in 1..=10 {
        n.set(i).unwrap();
    }
    let _ = n.set(1000); // refused: not an event
    drop((n, ctx));
    let evens: Vec<i64> = watcher
        .filter_map(|event| match event {
            WatchEvent::Updated(change) => change.new.as_i64(),
            other => panic!("unexpected event {other:?}"),
        })
        .filter(|n| n % 2 == 0)
        .collect()
        .await;
    assert_eq!(evens, [2, 4, 6, 8, 10]);
}

pub async fn watchers_only_see_their_variables(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(float("a", 0.0, 0.0, 1.0), Source::Rust).unwrap();
    p.register(float("b", 0.0, 0.0, 1.0), Source::Rust).unwrap();
    let mut only_a = p.watch(&["a"], WatchOptions::default()).unwrap();
    let mut all = p.watch(&[], WatchOptions::default()).unwrap();
    set(p, "b", 0.5).unwrap();
    set(p, "a", 0.25).unwrap();
    p.register(float("c", 0.0, 0.0, 1.0), Source::Python)
        .unwrap();
    let ev = only_a.try_recv().unwrap();
    assert_eq!(ev.name(), Some("a"));
    assert_eq!(only_a.try_recv(), None);
    let names: Vec<_> = std::iter::from_fn(|| all.try_recv())
        .map(|e| (e.kind(), e.name().unwrap().to_owned()))
        .collect();
    use dspex::ChangeKind::{Registered, Updated};
    assert_eq!(
        names,
        [
            (Updated, "b".to_owned()),
            (Updated, "a".to_owned()),
            (Registered, "c".to_owned())
        ]
    );
    // Watching a variable that does not exist is an error, not a silent empty stream.
    assert!(matches!(
        p.watch(&["nope"], WatchOptions::default()),
        Err(Error::NotFound { .. })
    ));
}

pub async fn watch_with_initial_values_and_deletions(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(float("a", 0.5, 0.0, 1.0), Source::Rust).unwrap();
    let mut w = p
        .watch(
            &["a"],
            WatchOptions {
                include_initial: true,
                ..WatchOptions::default()
            },
        )
        .unwrap();
    match w.try_recv().unwrap() {
        WatchEvent::Initial {
            name,
            value,
            version,
            ..
        } => {
            assert_eq!((name.as_str(), value, version), ("a", Value::Float(0.5), 1));
        }
        other => panic!("unexpected {other:?}"),
    }
    p.delete(Key::Name("a"), Source::Python).unwrap();
    match w.try_recv().unwrap() {
        WatchEvent::Deleted {
            name,
            version,
            source,
            ..
        } => {
            assert_eq!((name.as_str(), version, source), ("a", 1, Source::Python));
        }
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn slow_watcher_never_blocks_a_writer(f: &impl Fixture) {
    let p = f.provider().await;
    p.register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    let capacity = 16;
    // This watcher never reads while the writer runs.
    let mut slow = p
        .watch(
            &["n"],
            WatchOptions {
                capacity,
                include_initial: false,
            },
        )
        .unwrap();
    let total = 20_000i64;
    let writer = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            for i in 1..=total {
                set(p.as_ref(), "n", i).unwrap();
            }
        })
    };
    // If publishing blocked on the full queue, this join would never return.
    writer.join().unwrap();
    let mut delivered = 0i64;
    let mut missed = 0u64;
    let mut last = 0i64;
    while let Some(ev) = slow.try_recv() {
        match ev {
            WatchEvent::Updated(c) => {
                let n = c.new.as_i64().unwrap();
                assert!(n > last, "events out of order");
                last = n;
                delivered += 1;
            }
            WatchEvent::Lagged { missed: m } => missed += m,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delivered, i64::try_from(capacity).unwrap());
    // It was told about what it missed once it had read what was queued before.
    assert_eq!(delivered + i64::try_from(missed).unwrap(), total);
    // And it receives again as soon as there is room.
    set(p.as_ref(), "n", total + 1).unwrap();
    assert!(
        matches!(slow.try_recv(), Some(WatchEvent::Updated(c)) if c.new == Value::Integer(total + 1))
    );
    assert_eq!(slow.try_recv(), None);
}

pub async fn export_import_keeps_everything(f: &impl Fixture) {
    let from = f.provider().await;
    from.register(
        float("a", 0.1, 0.0, 1.0)
            .with_description("d")
            .with_metadata("k", "v"),
        Source::Rust,
    )
    .unwrap();
    from.register(
        VariableSpec::new("s", VarType::String, "x")
            .with_constraints(Constraints::default().with_pattern("[a-z]").unwrap()),
        Source::Rust,
    )
    .unwrap();
    set(from.as_ref(), "a", 0.2).unwrap();
    let exported = from.export().unwrap();
    let to = f.provider().await;
    to.import(exported.clone()).unwrap();
    assert_eq!(to.export().unwrap(), exported);
    // Imported variables keep their rules, and new ids never collide with imported ones.
    assert!(set(to.as_ref(), "s", "xy").is_err());
    let new = to
        .register(VariableSpec::new("n", VarType::Integer, 1), Source::Rust)
        .unwrap();
    assert!(exported.iter().all(|v| v.record.id != new.id));
}

pub async fn import_is_all_or_nothing(f: &impl Fixture) {
    let from = f.provider().await;
    from.register(float("a", 0.1, 0.0, 1.0), Source::Rust)
        .unwrap();
    from.register(float("b", 0.2, 0.0, 1.0), Source::Rust)
        .unwrap();
    let exported = from.export().unwrap();
    let to = f.provider().await;
    to.register(float("b", 0.9, 0.0, 1.0), Source::Rust)
        .unwrap();
    let before = to.export().unwrap();
    let err = to.import(exported).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { ref name } if name == "b"));
    assert_eq!(to.export().unwrap(), before);
}

pub async fn context_typed_and_by_name_access(f: &impl Fixture) {
    let ctx = f.context().await;
    let t = ctx
        .defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))
        .unwrap();
    let n = ctx
        .defvariable::<i64>("max_tokens", 256, Constraints::range(1, 4096))
        .unwrap();
    let m = ctx
        .defvariable::<Choice>("model", "a", Constraints::choices(["a", "b"]))
        .unwrap();
    let r = ctx
        .defvariable::<ModuleName>("reasoning", "Predict", Constraints::none())
        .unwrap();
    let e = ctx
        .defvariable::<Embedding>(
            "e",
            vec![0.0f32; 2],
            Constraints::default().with_dimensions(2),
        )
        .unwrap();
    let s = ctx
        .defvariable::<String>("style", "concise", Constraints::none())
        .unwrap();
    let b = ctx
        .defvariable::<bool>("verbose", false, Constraints::none())
        .unwrap();

    assert_eq!(t.get().unwrap(), 0.7);
    assert_eq!(n.get().unwrap(), 256);
    assert_eq!(m.get().unwrap(), "a");
    assert_eq!(r.get().unwrap(), "Predict");
    assert_eq!(e.get().unwrap().0, vec![0.0, 0.0]);
    assert_eq!(s.get().unwrap(), "concise");
    assert!(!b.get().unwrap());

    t.set(1.5).unwrap();
    assert_eq!(ctx.get::<f64>("temperature").unwrap(), 1.5);
    ctx.set("max_tokens", 512).unwrap();
    assert_eq!(n.get().unwrap(), 512);
    assert_eq!(n.update(|v| v + 1).unwrap(), 513);
    assert_eq!(ctx.update::<f64>("temperature", |v| v / 2.0).unwrap(), 0.75);

    // A bad set through a handle is refused and changes nothing.
    let before = t.record().unwrap();
    assert!(matches!(t.set(2.5), Err(Error::ConstraintViolation(_))));
    assert_eq!(t.record().unwrap(), before);

    // Typed reads of another type are errors; strings read choice and module variables.
    let err = ctx.get::<i64>("temperature").unwrap_err();
    assert_eq!(
        err.to_string(),
        "variable `temperature` holds float values, not integer"
    );
    assert_eq!(ctx.get::<String>("model").unwrap(), "a");
    assert!(ctx.var::<f64>("max_tokens").is_err());
    assert!(ctx.var::<String>("reasoning").is_ok());

    assert_eq!(ctx.get_or("missing", 1.25).unwrap(), 1.25);
    assert!(ctx.get_or("temperature", 1i64).is_err());
    assert!(ctx.exists("temperature"));
    assert!(!ctx.exists("missing"));
    assert_eq!(ctx.list(Some("m*")).unwrap().len(), 2);
    assert!(ctx.list(Some("[")).is_err());

    ctx.delete("verbose").unwrap();
    let err = b.get().unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref name } if name == "verbose"),
        "{err:?}"
    );
}

pub async fn context_handles_are_shared_across_clones_and_threads(f: &impl Fixture) {
    let ctx = f.context().await;
    let t = ctx
        .defvariable::<f64>("t", 0.0, Constraints::range(0.0, 1.0))
        .unwrap();
    let clone = ctx.clone();
    std::thread::spawn(move || clone.set("t", 0.5).unwrap())
        .join()
        .unwrap();
    assert_eq!(t.get().unwrap(), 0.5);
    let mut w = t.watch().unwrap();
    let t2 = t.clone();
    tokio::spawn(async move { t2.set(0.75).unwrap() })
        .await
        .unwrap();
    assert!(matches!(w.recv().await, Some(WatchEvent::Updated(c)) if c.new == Value::Float(0.75)));
}

pub async fn context_update_from_8_tasks_is_exact(f: &impl Fixture) {
    let ctx = f.context().await;
    let counter = ctx
        .defvariable::<i64>("counter", 0, Constraints::none())
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..10_000 {
                    counter.update(|n| n + 1).unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(counter.get().unwrap(), 80_000);
    assert_eq!(counter.record().unwrap().version, 80_001);
}

pub async fn context_update_may_read_the_context(f: &impl Fixture) {
    let ctx = f.context().await;
    let scale = ctx
        .defvariable::<f64>("scale", 3.0, Constraints::none())
        .unwrap();
    let x = ctx
        .defvariable::<f64>("x", 2.0, Constraints::range(0.0, 100.0))
        .unwrap();
    // The function runs outside the backend's lock, so it may read (or write) the context.
    let got = x.update(|v| v * scale.get().unwrap()).unwrap();
    assert_eq!(got, 6.0);
    let got = ctx
        .update::<f64>("x", |v| {
            ctx.set("scale", 0.5).unwrap();
            v + 1.0
        })
        .unwrap();
    assert_eq!((got, scale.get().unwrap()), (7.0, 0.5));
    // A result that breaks the constraints is refused and changes nothing.
    assert!(x.update(|v| v * 100.0).is_err());
    assert_eq!(x.get().unwrap(), 7.0);
}

// ---- history, rollback and read-only variables ---------------------------------------------

/// The record and the whole history of `name`.
fn snapshot(p: &dyn StateProvider, name: &str) -> (dspex::VarRecord, Vec<HistoryEntry>) {
    (
        p.get(Key::Name(name)).unwrap(),
        p.history(Key::Name(name), usize::MAX).unwrap(),
    )
}

fn versions(history: &[HistoryEntry]) -> Vec<u64> {
    history.iter().map(|e| e.version).collect()
}

pub async fn history_keeps_every_accepted_write_newest_first(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    let before = SystemTime::now();
    p.register(
        float("t", 0.7, 0.0, 2.0).with_metadata("owner", "tests"),
        Source::Rust,
    )
    .unwrap();
    set(p, "t", 0.9).unwrap();
    p.set(
        Key::Name("t"),
        Value::Float(1.1),
        &SetOptions::default().with_metadata("by", "python"),
        Source::Python,
    )
    .unwrap();
    // Refused writes are not in the history.
    let _ = set(p, "t", 9.0);
    let _ = p.set(
        Key::Name("t"),
        Value::Float(0.1),
        &SetOptions::expect_version(1),
        Source::Rust,
    );
    p.update(
        Key::Name("t"),
        &mut |v| Ok(Value::Float(v.as_f64().unwrap() + 0.4)),
        Source::Rust,
    )
    .unwrap();
    let metadata = BTreeMap::from([("tuner".to_owned(), "grid".to_owned())]);
    p.update_many_with(
        vec![("t".into(), Value::Float(0.2))],
        &metadata,
        Source::Rust,
    )
    .unwrap();

    let history = p.history(Key::Name("t"), 100).unwrap();
    assert_eq!(versions(&history), [5, 4, 3, 2, 1]);
    let values: Vec<f64> = history.iter().map(|e| e.value.as_f64().unwrap()).collect();
    assert_eq!(values, [0.2, 1.5, 1.1, 0.9, 0.7]);
    let sources: Vec<Source> = history.iter().map(|e| e.source).collect();
    assert_eq!(
        sources,
        [
            Source::Rust,
            Source::Rust,
            Source::Python,
            Source::Rust,
            Source::Rust
        ]
    );
    // Each entry carries the metadata given with its write, not the merged metadata.
    assert_eq!(history[0].metadata, metadata);
    assert!(history[1].metadata.is_empty());
    assert_eq!(history[2].metadata["by"], "python");
    assert!(history[3].metadata.is_empty());
    assert_eq!(
        history[4].metadata,
        BTreeMap::from([("owner".into(), "tests".into())])
    );
    // Times: the registration's is the creation time, the newest the last update.
    let rec = p.get(Key::Name("t")).unwrap();
    assert_eq!(history[4].at, rec.created_at);
    assert_eq!(history[0].at, rec.updated_at);
    assert!(history.windows(2).all(|w| w[0].at >= w[1].at));
    assert!(history[4].at >= before - Duration::from_secs(1));
    // `limit` counts from the newest; by reference like by name.
    assert_eq!(versions(&p.history(Key::Name("t"), 2).unwrap()), [5, 4]);
    assert!(p.history(Key::Name("t"), 0).unwrap().is_empty());
    let r = p.resolve("t").unwrap();
    assert_eq!(p.history(Key::Ref(r), 100).unwrap(), history);
    let err = p.history(Key::Name("nope"), 10).unwrap_err();
    assert!(matches!(err, Error::NotFound { ref name } if name == "nope"));
}

pub async fn history_is_bounded_in_entries_and_bytes(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    // At the limit: the registration and 99 writes are all kept.
    let limit = u64::try_from(DEFAULT_HISTORY_LIMIT).unwrap();
    for i in 1..limit {
        set(p, "n", i64::try_from(i).unwrap()).unwrap();
    }
    let history = p.history(Key::Name("n"), usize::MAX).unwrap();
    assert_eq!(history.len(), DEFAULT_HISTORY_LIMIT);
    assert_eq!(history.last().unwrap().version, 1);
    // Over it: the oldest goes first.
    set(p, "n", -1).unwrap();
    let history = p.history(Key::Name("n"), usize::MAX).unwrap();
    assert_eq!(history.len(), DEFAULT_HISTORY_LIMIT);
    assert_eq!(
        (history[0].version, history.last().unwrap().version),
        (limit + 1, 2)
    );

    // 100 versions of a 64 KiB string stay within MAX_HISTORY_BYTES: exactly as many as fit.
    p.register(VariableSpec::new("s", VarType::String, ""), Source::Rust)
        .unwrap();
    let big = |i: u64| {
        let digits = i.to_string();
        "0".repeat(64 * 1024 - digits.len()) + &digits
    };
    for i in 1..=limit {
        set(p, "s", big(i)).unwrap();
    }
    let history = p.history(Key::Name("s"), usize::MAX).unwrap();
    let size = history[0].size_bytes();
    assert_eq!(history.len(), MAX_HISTORY_BYTES / size);
    let bytes: usize = history.iter().map(HistoryEntry::size_bytes).sum();
    assert!(bytes <= MAX_HISTORY_BYTES, "{bytes}");
    assert_eq!(history[0].value, Value::String(big(limit)));
    assert_eq!(history[0].version, limit + 1);
}

pub async fn deleting_a_variable_deletes_its_history(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(float("t", 0.5, 0.0, 1.0), Source::Rust).unwrap();
    set(p, "t", 0.6).unwrap();
    set(p, "t", 0.7).unwrap();
    p.delete(Key::Name("t"), Source::Rust).unwrap();
    let err = p.history(Key::Name("t"), 10).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    p.register(float("t", 0.1, 0.0, 1.0), Source::Rust).unwrap();
    let history = p.history(Key::Name("t"), 10).unwrap();
    assert_eq!(versions(&history), [1]);
    assert_eq!(history[0].value, Value::Float(0.1));
    let err = p.rollback(Key::Name("t"), 2, Source::Rust).unwrap_err();
    assert!(matches!(err, Error::VersionNotFound { .. }), "{err:?}");
}

pub async fn rollback_writes_a_kept_version_again_as_a_new_version(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(float("t", 0.7, 0.0, 2.0), Source::Rust).unwrap();
    set(p, "t", 0.9).unwrap();
    set(p, "t", 1.9).unwrap();
    let mut w = p.watch(&["t"], WatchOptions::default()).unwrap();
    assert_eq!(p.rollback(Key::Name("t"), 1, Source::Python).unwrap(), 4);
    let rec = p.get(Key::Name("t")).unwrap();
    assert_eq!((rec.value, rec.version), (Value::Float(0.7), 4));
    assert_eq!(rec.source, Source::Python);
    assert_eq!(rec.metadata[ROLLED_BACK_FROM], "1");
    // Watchers see an ordinary update.
    match w.recv().await.unwrap() {
        WatchEvent::Updated(c) => {
            assert_eq!((c.old, c.new), (Value::Float(1.9), Value::Float(0.7)));
            assert_eq!((c.version, c.source), (4, Source::Python));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The history records it with its metadata.
    let history = p.history(Key::Name("t"), 10).unwrap();
    assert_eq!(versions(&history), [4, 3, 2, 1]);
    assert_eq!(history[0].metadata, rollback_metadata(1));
    assert_eq!(history[0].value, Value::Float(0.7));
    // It is a write like any other: a compare-and-set at the old version conflicts.
    let err = p
        .set(
            Key::Name("t"),
            Value::Float(1.0),
            &SetOptions::expect_version(3),
            Source::Rust,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { actual: 4, .. }), "{err:?}");
    // Rolling back to the current version writes it again; by reference like by name.
    let r = p.resolve("t").unwrap();
    assert_eq!(p.rollback(Key::Ref(r), 4, Source::Rust).unwrap(), 5);
    assert_eq!(
        p.get(Key::Name("t")).unwrap().metadata[ROLLED_BACK_FROM],
        "4"
    );
    assert_eq!(p.rollback(Key::Name("t"), 3, Source::Rust).unwrap(), 6);
    assert_eq!(value(p, "t"), Value::Float(1.9));
}

pub async fn rollback_to_a_version_not_kept_names_the_kept_ones(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    p.register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    let limit = u64::try_from(DEFAULT_HISTORY_LIMIT).unwrap();
    for i in 1..=limit {
        set(p, "n", i64::try_from(i).unwrap()).unwrap();
    }
    // Version 1 was dropped; 2 is the oldest kept and `limit + 1` the current one.
    let err = p.rollback(Key::Name("n"), 1, Source::Rust).unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionNotFound { ref name, version: 1, oldest: 2, newest } if name == "n" && newest == limit + 1
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "variable `n` has no version 1 in its history, which keeps versions 2 to {}",
            limit + 1
        )
    );
    for version in [0, limit + 2, u64::MAX] {
        assert_refused(
            p,
            "n",
            |p| p.rollback(Key::Name("n"), version, Source::Rust),
            &format!(
                "variable `n` has no version {version} in its history, which keeps versions 2 to {}",
                limit + 1
            ),
        );
    }
    let err = p.rollback(Key::Name("nope"), 1, Source::Rust).unwrap_err();
    assert!(matches!(err, Error::NotFound { ref name } if name == "nope"));
    // The oldest kept version still rolls back.
    assert_eq!(
        p.rollback(Key::Name("n"), 2, Source::Rust).unwrap(),
        limit + 2
    );
    assert_eq!(value(p, "n"), Value::Integer(1));
}

/// A write to try on a backend, returning the new version.
type Write = dyn Fn(&dyn StateProvider) -> dspex::Result<u64>;

pub async fn read_only_variables_refuse_python_writes_and_take_rust_ones(f: &impl Fixture) {
    let p = f.provider().await;
    let p = p.as_ref();
    let rec = p
        .register(float("locked", 0.5, 0.0, 1.0).readonly(), Source::Rust)
        .unwrap();
    assert!(rec.readonly);
    assert!(p.list(None).unwrap()[0].readonly);
    p.register(float("open", 0.5, 0.0, 1.0), Source::Rust)
        .unwrap();
    assert!(!p.get(Key::Name("open")).unwrap().readonly);
    set(p, "locked", 0.6).unwrap();
    let message = "variable `locked` is read-only: only Rust code may write it";
    let before = (snapshot(p, "locked"), snapshot(p, "open"));
    let python_writes: [(&str, &Write); 5] = [
        ("set", &|p| {
            p.set(
                Key::Name("locked"),
                Value::Float(0.9),
                &SetOptions::default(),
                Source::Python,
            )
        }),
        ("update", &|p| {
            p.update(
                Key::Name("locked"),
                &mut |_| Ok(Value::Float(0.9)),
                Source::Python,
            )
            .map(|(_, v)| v)
        }),
        ("update_many", &|p| {
            // The whole batch is refused, the writable variable included.
            p.update_many(
                vec![
                    ("open".into(), Value::Float(0.9)),
                    ("locked".into(), Value::Float(0.9)),
                ],
                Source::Python,
            )
            .map(|v| v[0])
        }),
        ("rollback", &|p| {
            p.rollback(Key::Name("locked"), 1, Source::Python)
        }),
        ("delete", &|p| {
            p.delete(Key::Name("locked"), Source::Python)
                .map(|r| r.version)
        }),
    ];
    for (what, write) in python_writes {
        let err = write(p).expect_err(what);
        assert!(
            matches!(err, Error::ReadOnly { ref name } if name == "locked"),
            "{what}: {err:?}"
        );
        assert_eq!(err.to_string(), message, "{what}");
        assert_eq!(
            (snapshot(p, "locked"), snapshot(p, "open")),
            before,
            "{what} changed something"
        );
    }
    // Rust writes apply.
    let r = p.resolve("locked").unwrap();
    assert_eq!(
        p.update(Key::Ref(r), &mut |_| Ok(Value::Float(0.7)), Source::Rust)
            .unwrap()
            .1,
        3
    );
    p.update_many(
        vec![
            ("open".into(), Value::Float(0.1)),
            ("locked".into(), Value::Float(0.8)),
        ],
        Source::Rust,
    )
    .unwrap();
    assert_eq!(p.rollback(Key::Name("locked"), 1, Source::Rust).unwrap(), 5);
    assert_eq!(value(p, "locked"), Value::Float(0.5));
    // Python still writes the writable variable, and reads the read-only one.
    p.set(
        Key::Name("open"),
        Value::Float(0.2),
        &SetOptions::default(),
        Source::Python,
    )
    .unwrap();
    assert_eq!(p.history(Key::Name("locked"), 10).unwrap().len(), 5);
    p.delete(Key::Name("locked"), Source::Rust).unwrap();
    assert!(p.get(Key::Name("locked")).is_err());
}

pub async fn export_import_keeps_histories_and_checks_them(f: &impl Fixture) {
    let from = f.provider().await;
    from.register(float("a", 0.1, 0.0, 1.0).readonly(), Source::Rust)
        .unwrap();
    for x in [0.2, 0.3, 0.4] {
        set(from.as_ref(), "a", x).unwrap();
    }
    from.rollback(Key::Name("a"), 2, Source::Rust).unwrap();
    let exported = from.export().unwrap();
    assert_eq!(exported.len(), 1);
    assert_eq!(versions(&exported[0].history), [5, 4, 3, 2, 1]);
    assert!(exported[0].record.readonly);
    let to = f.provider().await;
    to.import(exported.clone()).unwrap();
    assert_eq!(
        to.history(Key::Name("a"), usize::MAX).unwrap(),
        exported[0].history
    );
    assert!(to.get(Key::Name("a")).unwrap().readonly);
    // The history goes on from there, and old versions still roll back.
    assert_eq!(to.rollback(Key::Name("a"), 3, Source::Rust).unwrap(), 6);
    assert_eq!(value(to.as_ref(), "a"), Value::Float(0.3));

    // A record without a history starts one with its current value.
    let to = f.provider().await;
    let mut bare = exported[0].clone();
    bare.history.clear();
    to.import(vec![bare]).unwrap();
    let history = to.history(Key::Name("a"), usize::MAX).unwrap();
    assert_eq!(versions(&history), [5]);
    assert_eq!(history[0].value, Value::Float(0.2));

    // A history that is not its record's is refused, and nothing is imported.
    let to = f.provider().await;
    let mut fine = exported[0].clone();
    fine.record.name = "b".into();
    fine.record.id = dspex::VarId(99);
    let mut broken = exported[0].clone();
    broken.history.remove(0);
    let err = to.import(vec![fine, broken]).unwrap_err();
    assert!(err.to_string().contains("history of `a`"), "{err}");
    assert!(to.list(None).unwrap().is_empty());
    let mut out_of_order = exported[0].clone();
    out_of_order.history.swap(1, 2);
    assert!(to.import(vec![out_of_order]).is_err());
    let mut invalid = exported[0].clone();
    invalid.history[2].value = Value::Float(7.0);
    assert!(to.import(vec![invalid]).is_err());
    assert!(to.list(None).unwrap().is_empty());
}

pub async fn context_history_rollback_and_read_only(f: &impl Fixture) {
    let ctx = f.context().await;
    assert_eq!(ctx.history_limit(), DEFAULT_HISTORY_LIMIT);
    let t = ctx
        .defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))
        .unwrap();
    let m = ctx
        .defvariable_with::<Choice>(
            VariableSpec::new("model", VarType::Choice, "a")
                .with_constraints(Constraints::choices(["a", "b"]))
                .readonly(),
        )
        .unwrap();
    t.set(1.9).unwrap();
    // Typed entries from the handle, untyped from the context.
    let typed: Vec<(u64, f64)> = t
        .history(10)
        .unwrap()
        .into_iter()
        .map(|e| (e.version, e.value))
        .collect();
    assert_eq!(typed, [(2, 1.9), (1, 0.7)]);
    assert_eq!(
        ctx.history("temperature", 1).unwrap()[0].value,
        Value::Float(1.9)
    );
    assert_eq!(t.rollback(1).unwrap(), 3);
    assert_eq!(t.get().unwrap(), 0.7);
    assert_eq!(ctx.rollback("temperature", 2).unwrap(), 4);
    assert_eq!(t.get().unwrap(), 1.9);
    // A version not kept names the variable, not its id.
    let err = t.rollback(40).unwrap_err();
    assert_eq!(
        err.to_string(),
        "variable `temperature` has no version 40 in its history, which keeps versions 1 to 4"
    );
    // Rust writes a read-only variable.
    assert!(ctx.record("model").unwrap().readonly);
    m.set("b").unwrap();
    assert_eq!(m.rollback(1).unwrap(), 3);
    assert_eq!(m.get().unwrap(), "a");
    let history: Vec<String> = m
        .history(10)
        .unwrap()
        .into_iter()
        .map(|e| e.value.0)
        .collect();
    assert_eq!(history, ["a", "b", "a"]);
    // A deleted variable's handle reports it by name.
    ctx.delete("temperature").unwrap();
    let err = t.history(10).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref name } if name == "temperature"),
        "{err:?}"
    );
    assert!(matches!(
        ctx.rollback("temperature", 1),
        Err(Error::NotFound { .. })
    ));
}
