use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 2.5 { min: 0.0, max: 2.0 },
            model: choice = "gpt-5" { choices: ["gpt-4o-mini", "claude-3-haiku"] },
        }
        chain {
            answer: python ChainOfThought("question -> answer") { temprature, model },
        }
    }
}

fn main() {}
