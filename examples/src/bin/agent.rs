//! An agent with Rust tools: a Python DSPy `ReAct` step that answers by calling two Rust
//! functions (`#[dspex::tool]`, running in this process) and one Python function
//! (`statistics.mean`, imported by the worker). The Rust tools read program variables (the
//! agent never sees them as arguments); a run with overrides shows the tools seeing the run's
//! values. It prints the agent's trajectory and the tool calls of the run's trace.
//!
//! `cargo run -p dspex-examples --bin agent` once `.venv` exists (`scripts/python-env`). The
//! LM is the offline scripted one, following a fixed plan of tool calls.

#![allow(clippy::print_stdout)]

use dspex::LmConfig;
use dspex::prelude::*;
use dspex::{JsonValue, Overrides, json};

/// Looks up catalogue prices (in USD) of the products matching `query`, at most `top_k`.
#[dspex::tool(variables(top_k))]
async fn search_prices(query: String, top_k: i64) -> Result<Vec<f64>> {
    let catalogue = [
        ("laptop", 999.0),
        ("laptop", 1299.0),
        ("laptop", 1099.0),
        ("phone", 699.0),
    ];
    Ok(catalogue
        .iter()
        .filter(|(name, _)| query.contains(name))
        .take(usize::try_from(top_k).unwrap_or(0))
        .map(|(_, price)| *price)
        .collect())
}

/// Converts an amount in USD to the display currency at the current rate.
#[dspex::tool(variables(currency, usd_rate))]
fn convert(amount: f64, currency: String, usd_rate: f64) -> Result<String> {
    Ok(format!("{:.2} {currency}", amount * usd_rate))
}

dspex_program! {
    /// Answers price questions with a catalogue, a calculator and an exchange rate.
    program PriceAgent: "question -> answer" {
        variables {
            top_k: integer = 3 { min: 1, max: 10 },
            currency: choice = "EUR" { choices: ["EUR", "GBP", "USD"] },
            usd_rate: float = 0.92 { min: 0.0 },
        }
        chain {
            agent: python ReAct("question -> answer") with {
                max_iters: 5,
                tools: [search_prices, "statistics.mean", convert],
            },
        }
    }
}

/// The scripted LM's plan: the three tools in order, then the answer.
fn plan() -> LmConfig {
    LmConfig::scripted().agent_plan(
        [
            ("search_prices", json!({"query": "laptop"})),
            ("mean", json!({"data": [999.0, 1299.0, 1099.0]})),
            ("convert", json!({"amount": 1132.33})),
        ],
        [("answer", "A laptop costs about 1041.74 EUR on average.")],
    )
}

async fn ask(agent: &PriceAgent, overrides: &Overrides) -> Result<()> {
    let (output, trace) = agent
        .run_fields_with_traced(
            overrides,
            Fields::from([("question", "What does a laptop cost on average?")]),
        )
        .await?;
    let step = trace.step("agent").expect("the agent step ran");
    let trajectory: &str = step.outputs.get("trajectory")?;
    println!("trajectory:");
    let trajectory: JsonValue = serde_json_like(trajectory);
    for i in 0.. {
        let Some(tool) = trajectory.get(format!("tool_name_{i}")) else {
            break;
        };
        let observation = &trajectory[format!("observation_{i}")];
        println!(
            "  {i}: {} {} -> {}",
            tool.as_str().unwrap_or_default(),
            trajectory[format!("tool_args_{i}")],
            observation
                .as_str()
                .map_or_else(|| observation.to_string(), str::to_owned)
        );
    }
    println!("rust tool calls:");
    for call in &step.tool_calls {
        println!("  {call}");
    }
    println!("answer: {}", output.get::<&str>("answer")?);
    Ok(())
}

/// The trajectory as JSON (the worker sends it as text: JSON, or a Python dict's repr).
fn serde_json_like(text: &str) -> JsonValue {
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&text.replace('\'', "\"")))
        .unwrap_or_else(|_| JsonValue::String(text.into()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let ctx = Context::builder().bridged().lm(plan()).build().await?;
    let agent = PriceAgent::attach(&ctx).await?;
    println!(">>> with the context's values (EUR at 0.92)");
    ask(&agent, &Overrides::new()).await?;
    println!(">>> with overrides for this run only (GBP at 0.79)");
    let gbp = Overrides::new()
        .with("currency", "GBP")
        .with("usd_rate", 0.79);
    ask(&agent, &gbp).await?;
    println!("currency after the runs: {}", agent.currency().get()?);
    Ok(())
}
