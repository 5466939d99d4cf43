use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ReAct("question -> answer") with {
                tools: ["calculator", "my_pkg.tools.search", "my_pkg.tools.search"],
            },
        }
    }
}

fn main() {}
