//! A program declared with `dspex_program!`: three native steps sharing typed, constrained
//! variables. It runs on a local context, prints what each step did, changes a variable through
//! its typed accessor and runs again, and shows a bad value refused.
//!
//! `cargo run -p dspex-examples --bin program_macro`

#![allow(clippy::print_stdout)]

use dspex::prelude::*;

/// Sorts a ticket into a category by keyword.
#[derive(Default)]
struct Classifier;

impl Module for Classifier {
    async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
        let ticket = inputs.get::<&str>("ticket")?.to_lowercase();
        let category = if ticket.contains("refund") || ticket.contains("charge") {
            "billing"
        } else if ticket.contains("crash") || ticket.contains("error") {
            "bug"
        } else {
            "question"
        };
        println!("  classify: {ticket:?} -> category {category:?}");
        Ok(Fields::from([("category", category)]))
    }
}

/// Drafts a reply in the bound tone, cut to the bound number of words.
#[derive(Default)]
struct Drafter;

impl Module for Drafter {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let tone = params.get::<String>("tone")?;
        let max_words = usize::try_from(params.get::<i64>("max_words")?).unwrap_or(usize::MAX);
        let opening = match tone.as_str() {
            "formal" => "Thank you for contacting us about",
            _ => "Thanks for writing about",
        };
        let draft = format!(
            "{opening} your {} issue: we are looking into it and will get back to you today.",
            inputs.get::<&str>("category")?
        );
        let draft: Vec<&str> = draft.split_whitespace().take(max_words).collect();
        let draft = draft.join(" ");
        println!("  draft:    tone {tone:?}, at most {max_words} words -> {draft:?}");
        Ok(Fields::from([("draft", draft)]))
    }
}

/// Signs the draft; adds the category when `verbose`.
#[derive(Default)]
struct Signer;

impl Module for Signer {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let signature = params.get::<String>("signature")?;
        let mut reply = format!("{} -- {signature}", inputs.get::<&str>("draft")?);
        if params.get::<bool>("verbose")? {
            reply.push_str(&format!(" [{}]", inputs.get::<&str>("category")?));
        }
        println!("  sign:     signed by {signature:?}");
        Ok(Fields::from([("reply", reply)]))
    }
}

dspex_program! {
    /// Answers support tickets.
    pub program SupportTriage: "ticket -> reply" {
        variables {
            tone: choice = "friendly" { choices: ["friendly", "formal"], description: "tone of the reply" },
            max_words: integer = 12 { min: 3, max: 60 },
            team: string = "The Support Team" { min_length: 1, max_length: 40 },
            verbose: boolean = false,
        }
        chain {
            classify: native Classifier("ticket -> category"),
            draft: native Drafter("category -> draft") { tone, max_words },
            sign: native Signer("draft, category -> reply") { team as signature, verbose },
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    println!(
        "SupportTriage needs the Python bridge: {}",
        SupportTriage::REQUIRES_BRIDGE
    );
    let triage = SupportTriage::start().await?;
    println!("started on the {}", triage.context().backend());

    let ticket = "I was charged twice this month";
    println!("run 1: {ticket:?}");
    let out = triage
        .run(SupportTriageInput {
            ticket: ticket.into(),
        })
        .await?;
    println!("reply: {}", out.reply);

    triage.tone().set("formal")?;
    triage.max_words().set(20)?;
    triage.verbose().set(true)?;
    println!("run 2, formal and verbose:");
    let out = triage
        .run(SupportTriageInput {
            ticket: "The app crashes with an error on start".into(),
        })
        .await?;
    println!("reply: {}", out.reply);

    match triage.max_words().set(500) {
        Ok(_) => println!("max_words = 500 accepted?!"),
        Err(e) => println!("max_words = 500 refused: {e}"),
    }
    let record = triage.max_words().record()?;
    println!(
        "max_words is still {} at version {}",
        record.value, record.version
    );
    Ok(())
}
