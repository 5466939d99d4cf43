//! DSPy's JSON adapter on the native lane, against the real DSPy: a native `Predict` whose
//! `ChatAdapter` reply does not parse asks again with the JSON adapter, and a native
//! `ChainOfThought` set to the JSON adapter asks with it at once; each request (messages, and
//! no `response_format` for a model litellm does not know) equals the one DSPy (the pinned
//! version) sends for the same state and input
//! on the same loopback LM server, and the outputs are read as DSPy reads them. With the
//! fallback off, a reply that does not parse is an error after one request.
//!
//! Declared steps pick the adapter with `with`: `adapter: "json"` in both macro forms and the
//! runtime builder sends DSPy's `JSONAdapter` request and reads the reply into typed outputs;
//! `json_fallback: false` makes a reply that does not parse an error, while the chat adapter's
//! default falls back to the JSON adapter.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use dspex::lm::{Adapter, FieldText, LmClient, PredictorState};
use dspex::prelude::*;
use dspex::{JsonValue, Predictor, ProgramBuilder, Step, json};
use dspex_test_lm::{LmServer, Reply};
use dspex_tests::run_script;

dspex_program! {
    /// A native `ChainOfThought` declared with DSPy's JSON adapter.
    program JsonCot: "question -> answer: int" {
        chain {
            answer: native ChainOfThought("question -> answer: int") with { adapter: "json" },
        }
    }
}

dspex_program! {
    /// A native `Predict` on the chat adapter, which falls back to the JSON adapter.
    program ChatQa: "question -> answer" {
        chain {
            answer: native Predict("question -> answer") with { adapter: "chat" },
        }
    }
}

/// A native `Predict` declared with DSPy's JSON adapter, in the derive form.
#[derive(Program)]
#[program(signature = "question -> answer, tags: list[str]")]
struct JsonPredict {
    #[step(
        native,
        signature = "question -> answer, tags: list[str]",
        with(adapter = "json")
    )]
    answer: Predict,
    ctx: Context,
}

/// A native `Predict` whose fallback is off, in the derive form.
#[derive(Program)]
#[program(signature = "question -> answer")]
struct StrictQa {
    #[step(native, signature = "question -> answer", with(json_fallback = false))]
    answer: Predict,
    ctx: Context,
}

const TYPED: &str = "question, context: list[str] -> answer, confidence: float, tags: list[str]";

fn cases() -> JsonValue {
    json!([
        {
            "module": "Predict",
            "adapter": "chat",
            "signature": TYPED,
            "instructions": "Answer from the context.",
            "descriptions": {"confidence": "Between 0 and 1"},
            "demos": [
                {"question": "Capital of Italy?", "context": ["Rome."], "answer": "Rome", "confidence": 0.95, "tags": ["it", "«x»"]},
                {"question": "Capital of Spain?", "answer": "Madrid"},
            ],
            "inputs": {"question": "Capital of France?", "context": ["Paris is in France."]},
        },
        {
            "module": "ChainOfThought",
            "adapter": "json",
            "signature": "question -> answer: int",
            "instructions": null,
            "descriptions": {},
            "demos": [{"question": "1 + 1?", "reasoning": "One and one.", "answer": 2}],
            "inputs": {"question": "2 + 2?"},
        },
    ])
}

/// The replies of one round (DSPy's, then dspex's): a reply in no adapter's format and its JSON
/// answer for the `Predict`, a JSON answer for the `ChainOfThought`.
const REPLIES: [&str; 3] = [
    "The answer is Paris.",
    "```json\n{\"answer\": \"Paris\", \"confidence\": \"0.9\", \"tags\": [\"fr\"], \"extra\": 1}\n```",
    "{\"reasoning\": \"Two and two.\", \"answer\": 4}",
];

fn fields(value: &JsonValue) -> Fields {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn state(case: &JsonValue) -> PredictorState {
    PredictorState {
        instructions: case["instructions"].as_str().map(str::to_owned),
        demos: case["demos"]
            .as_array()
            .unwrap()
            .iter()
            .map(fields)
            .collect(),
        fields: case["descriptions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, text)| {
                let text = FieldText {
                    prefix: String::new(),
                    description: text.as_str().unwrap().to_owned(),
                };
                (name.clone(), text)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

fn compared(request: &JsonValue) -> String {
    serde_json::to_string_pretty(&json!({
        "messages": request["messages"],
        "response_format": request.get("response_format"),
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_adapter_and_the_fallback_to_it_send_dspys_requests() {
    let server = LmServer::start().await.unwrap();
    for reply in REPLIES.iter().chain(&REPLIES) {
        server.push(Reply::text(*reply));
    }
    let input = json!({"action": "call", "base_url": server.base_url(), "cases": cases()});
    let dspy = tokio::task::block_in_place(|| run_script("tests/python/dspy_state.py", &input));
    assert_eq!(server.requests().len(), 3);

    let lm = Arc::new(LmClient::new(LmConfig::openai(server.base_url(), "native-model")).unwrap());
    let cases = cases();
    let predict = Predict::new(TYPED).unwrap().lm(Arc::clone(&lm));
    predict.set_predictor_state(state(&cases[0]));
    let out = predict
        .forward(&fields(&cases[0]["inputs"]), &Params::default())
        .await
        .unwrap();
    assert_eq!(out.get::<&str>("answer").unwrap(), "Paris");
    assert_eq!(out.get::<f64>("confidence").unwrap(), 0.9);
    assert_eq!(out.value("tags"), Some(&json!(["fr"])));
    assert_eq!(out.value("tags"), Some(&dspy[0]["tags"]));
    let cot = ChainOfThought::new("question -> answer: int")
        .unwrap()
        .lm(lm)
        .adapter(Adapter::Json);
    cot.set_predictor_state(state(&cases[1]));
    let out = cot
        .forward(&fields(&cases[1]["inputs"]), &Params::default())
        .await
        .unwrap();
    assert_eq!(out.get::<i64>("answer").unwrap(), 4);
    assert_eq!(dspy[1]["answer"], 4);

    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    for i in 0..3 {
        assert_eq!(
            compared(&requests[i + 3].body),
            compared(&requests[i].body),
            "request {i}"
        );
    }
    // The fallback's request is the JSON adapter's.
    let last = requests[4].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .ends_with("then `tags` (must be formatted as a valid Python list[str])."),
        "{last}"
    );
}

#[tokio::test]
async fn without_the_fallback_a_reply_that_does_not_parse_is_an_error_after_one_request() {
    let server = LmServer::start().await.unwrap();
    server.push(Reply::text("The answer is Paris."));
    let lm = Arc::new(LmClient::new(LmConfig::openai(server.base_url(), "native-model")).unwrap());
    let predict = Predict::new("question -> answer")
        .unwrap()
        .lm(lm)
        .json_fallback(false);
    let err = predict
        .forward(
            &Fields::from([("question", "Capital?")]),
            &Params::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`answer` is missing from the LM's reply"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

async fn context_on(server: &LmServer) -> Context {
    Context::builder()
        .lm(LmConfig::openai(server.base_url(), "native-model"))
        .build()
        .await
        .unwrap()
}

/// A DSPy call's case: `module` with no state, asked with `adapter`.
fn bare_case(module: &str, adapter: &str, signature: &str, question: &str) -> JsonValue {
    json!({
        "module": module,
        "adapter": adapter,
        "signature": signature,
        "instructions": null,
        "descriptions": {},
        "demos": [],
        "inputs": {"question": question},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_steps_with_the_json_adapter_send_dspys_request_and_read_typed_outputs() {
    const PREDICT_SIGNATURE: &str = "question -> answer, tags: list[str]";
    const PREDICT_REPLY: &str = "{\"answer\": \"Paris\", \"tags\": [\"fr\", \"capital\"]}";
    const COT_REPLY: &str = "{\"reasoning\": \"Two and two.\", \"answer\": \"4\"}";
    let server = LmServer::start().await.unwrap();
    // DSPy: the ChainOfThought, the Predict; then dspex: the macro form's ChainOfThought, the
    // derive form's Predict and the runtime builder's Predict.
    for reply in [
        COT_REPLY,
        PREDICT_REPLY,
        COT_REPLY,
        PREDICT_REPLY,
        PREDICT_REPLY,
    ] {
        server.push(Reply::text(reply));
    }
    let cases = json!([
        bare_case(
            "ChainOfThought",
            "json",
            "question -> answer: int",
            "2 + 2?"
        ),
        bare_case("Predict", "json", PREDICT_SIGNATURE, "Capital of France?"),
    ]);
    let input = json!({"action": "call", "base_url": server.base_url(), "cases": cases});
    let dspy = tokio::task::block_in_place(|| run_script("tests/python/dspy_state.py", &input));
    assert_eq!(dspy[0]["answer"], 4);
    assert_eq!(server.requests().len(), 2);

    let ctx = context_on(&server).await;
    const { assert!(!JsonCot::REQUIRES_BRIDGE && !JsonPredict::REQUIRES_BRIDGE) };
    let cot = JsonCot::attach(&ctx).await.unwrap();
    let out = cot
        .run(JsonCotInput {
            question: "2 + 2?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, 4);

    let predict = JsonPredict::attach(&ctx).await.unwrap();
    let out = predict
        .run(JsonPredictInput {
            question: "Capital of France?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "Paris");
    assert_eq!(out.tags, ["fr", "capital"]);
    assert_eq!(json!(out.tags), dspy[1]["tags"]);

    let built = ProgramBuilder::new("BuiltJson")
        .signature(PREDICT_SIGNATURE)
        .step(Step::native("answer", PREDICT_SIGNATURE, Predict::default()).with("adapter", "json"))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let out = built
        .run(Fields::from([("question", "Capital of France?")]))
        .await
        .unwrap();
    assert_eq!(out.value("tags"), Some(&json!(["fr", "capital"])));

    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(compared(&requests[2].body), compared(&requests[0].body));
    assert_eq!(compared(&requests[3].body), compared(&requests[1].body));
    assert_eq!(compared(&requests[4].body), compared(&requests[1].body));
    let last = requests[3].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .contains("Respond with a JSON object"),
        "{last}"
    );
}

#[tokio::test]
async fn a_declared_fallback_switch_decides_whether_a_reply_that_does_not_parse_is_asked_again() {
    let server = LmServer::start().await.unwrap();
    let ctx = context_on(&server).await;

    // Off: one request, and the chat adapter's error, naming the step.
    server.push(Reply::text("The answer is Paris."));
    let strict = StrictQa::attach(&ctx).await.unwrap();
    let err = strict
        .run(StrictQaInput {
            question: "Capital?".into(),
        })
        .await
        .unwrap_err();
    let Error::Step { step, source } = err else {
        panic!("not a step's error: {err}");
    };
    assert_eq!(step, "answer");
    assert!(
        source
            .to_string()
            .contains("`answer` is missing from the LM's reply"),
        "{source}"
    );
    assert_eq!(server.requests().len(), 1);

    // On (the chat adapter's default): the JSON adapter is asked next, and its reply read.
    server.clear_requests();
    server.push(Reply::text("The answer is Paris."));
    server.push(Reply::text("{\"answer\": \"Paris\"}"));
    let chat = ChatQa::attach(&ctx).await.unwrap();
    let out = chat
        .run(ChatQaInput {
            question: "Capital?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "Paris");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let asked = |i: usize| {
        requests[i].body["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(!asked(0).contains("JSON object"), "{}", asked(0));
    assert!(
        asked(1).contains("Respond with a JSON object"),
        "{}",
        asked(1)
    );
}

#[test]
fn the_runtime_builder_checks_the_adapter_keys_as_the_macros_do() {
    /// A module of the user's own, named like dspex's `Predict`.
    #[derive(Default)]
    struct Predict;
    impl Module for Predict {
        async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
            Ok(Fields::from([("answer", inputs.get::<&str>("question")?)]))
        }
    }
    let build = |step: Step| {
        ProgramBuilder::new("Checked")
            .step(step)
            .build()
            .err()
            .map(|e| e.to_string())
    };
    let lm_step = || Step::native("answer", "question -> answer", dspex::Predict::default());
    assert_eq!(build(lm_step().with("json_fallback", false)), None);
    let refused = [
        (
            lm_step().with("adapter", "xml"),
            "native `Predict` takes `adapter` as one of \"chat\", \"json\", found \"xml\"",
        ),
        (
            lm_step().with("adaptor", "json"),
            "(did you mean `adapter`?)",
        ),
        (
            lm_step()
                .with("adapter", "json")
                .with("json_fallback", true),
            "remove `json_fallback`",
        ),
        (
            Step::native("answer", "question -> answer", Predict).with("adapter", "json"),
            "`with` key `adapter` configures dspex's native `Predict` and `ChainOfThought` only; step `answer` is a native step of another type",
        ),
        (
            Step::python("answer", "ChainOfThought", "question -> answer").with("adapter", "json"),
            "step `answer` is a python step, whose DSPy module takes no such key",
        ),
    ];
    for (step, message) in refused {
        let err = build(step).unwrap();
        assert!(err.contains(message), "{err}");
    }
}
