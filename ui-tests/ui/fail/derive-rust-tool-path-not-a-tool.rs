use dspex::prelude::*;

struct Calculator;

/// A plain function, not marked `#[dspex::tool]`.
fn search_docs(query: String) -> Result<String> {
    Ok(query)
}

mod tools {
    /// Another plain function, named by its path.
    pub fn web(query: String) -> dspex::Result<String> {
        Ok(query)
    }
}

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(
        python = "ReAct",
        signature = "question -> answer",
        with(tools = [search_docs, Calculator, tools::web, "my_pkg.tools.calculator"])
    )]
    answer: PythonModule,
}

fn main() {
    let _ = (search_docs, tools::web);
}
