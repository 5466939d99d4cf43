use dspex::prelude::*;

/// A plain function, not marked `#[dspex::tool]`.
fn search_docs(query: String) -> Result<String> {
    Ok(query)
}

struct Calculator;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ReAct("question -> answer") with { tools: [search_docs, Calculator, "my_pkg.tools.calculator"] },
        }
    }
}

fn main() {
    let _ = search_docs;
}
