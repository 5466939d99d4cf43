//! A native program runs without dspex's default features: local variables, a native step,
//! dspex's own `Predict` on the scripted LM, per-run overrides, evaluation and tuning.

use dspex::eval::{Dataset, Evaluate, ExactMatch, Example};
use dspex::prelude::*;
use dspex::{ProgramBuilder, Step};
use dspex::tune::{Sampler, SearchSpace, Tuner};
use dspex_native_only::{Shouter, ShouterInput};

async fn shouter() -> Shouter {
    let lm = LmConfig::scripted().rule("HI HI HI", [("answer", "three")]);
    let ctx = Context::builder().lm(lm).build().await.unwrap();
    Shouter::attach(&ctx).await.unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_native_program_runs_without_default_features() {
    assert!(!<Shouter as Program>::REQUIRES_BRIDGE);
    let shouter = shouter().await;
    assert_eq!(shouter.context().backend().kind, BackendKind::Local);
    let (out, trace) = shouter
        .run_with_traced(
            &Overrides::new().with("repeat", 3),
            ShouterInput { text: "hi".into() },
        )
        .await
        .unwrap();
    assert_eq!(out.answer, "three");
    let step = trace.step("shout").unwrap();
    assert_eq!(step.outputs.get::<&str>("loud").unwrap(), "HI HI HI");
    assert_eq!(shouter.repeat().get().unwrap(), 2, "the override was for one run");
    assert!(shouter.repeat().set(4).is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn evaluation_and_tuning_work_without_default_features() {
    let shouter = shouter().await;
    let data = Dataset::from_examples(vec![
        Example::new()
            .with_input("text", "hi")
            .with_expected("answer", "three"),
    ]);
    let report = Evaluate::new(ExactMatch::new("answer"))
        .run(&shouter, &data)
        .await
        .unwrap();
    assert_eq!(report.mean, 0.0, "repeat is 2: the LM does not answer `three`");
    let space = SearchSpace::of(&shouter)
        .unwrap()
        .fix("temperature", 0.2)
        .unwrap();
    let result = Tuner::new(space, ExactMatch::new("answer"))
        .sampler(Sampler::grid(3))
        .trials(3)
        .run(&shouter, &data)
        .await
        .unwrap();
    assert_eq!(result.best_score, Some(1.0));
    result.apply(&shouter).unwrap();
    assert_eq!(shouter.repeat().get().unwrap(), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_python_step_built_at_run_time_is_refused_naming_the_feature() {
    let err = ProgramBuilder::new("P")
        .step(Step::python("answer", "Predict", "question -> answer"))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid program `P`: step `answer`: a python step needs dspex's `python` feature, which this build of dspex leaves out"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_endpoint_lm_is_refused_naming_the_feature() {
    let ctx = Context::builder()
        .lm(LmConfig::openai("http://127.0.0.1:9/v1", "m"))
        .build()
        .await
        .unwrap();
    let err = ctx.lm_client().unwrap_err();
    assert!(err.to_string().contains("dspex's `lm` feature"), "{err}");
}
