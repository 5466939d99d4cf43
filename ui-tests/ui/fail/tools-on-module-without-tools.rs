use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ChainOfThought("question -> answer") with { tools: ["my_pkg.tools.search"] },
        }
    }
}

fn main() {}
