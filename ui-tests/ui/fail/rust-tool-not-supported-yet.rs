use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ReAct("question -> answer") with { tools: [search_docs, "my_pkg.tools.calculator"] },
        }
    }
}

fn main() {}
