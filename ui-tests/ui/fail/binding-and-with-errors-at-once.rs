use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 0.7,
        }
        chain {
            plan: python Predict("question -> plan") { temperature as max_iters } with { tools: ["a.b"] },
            answer: python ReAct("question, plan -> answer") { temperature as max_iters } with {
                max_iters: 0,
                verbose: true,
            },
        }
    }
}

fn main() {}
