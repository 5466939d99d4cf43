//! Rust tools in both forms and the runtime builder, with Python tools beside them; tools named
//! by a path, a glob import or `self::`.

use dspex::prelude::*;
use dspex::tools::Tool;

mod tools {
    use dspex::prelude::*;

    /// Searches the docs.
    #[dspex::tool(variables(top_k))]
    pub async fn search_docs(query: String, top_k: i64) -> Result<Vec<String>> {
        Ok(vec![query; usize::try_from(top_k).unwrap_or(0)])
    }
}

mod more {
    /// Shouts `text`: a short synchronous tool.
    #[dspex::tool(inline)]
    pub fn shout(text: String) -> dspex::Result<String> {
        Ok(text.to_uppercase())
    }
}
// A tool imported by a glob is named like any other.
use more::*;

/// Adds two numbers.
#[dspex::tool(timeout_ms = 500)]
fn add(a: f64, b: f64, note: Option<String>) -> std::result::Result<f64, String> {
    let _ = note;
    Ok(a + b)
}

dspex_program! {
    program Agent: "question -> answer" {
        variables { top_k: integer = 2 { min: 1, max: 5 } }
        chain {
            answer: python ReAct("question -> answer") with {
                tools: [tools::search_docs, add, shout, "my_pkg.tools.calculator"],
            },
        }
    }
}

#[derive(Program)]
#[program(signature = "question -> answer")]
struct DerivedAgent {
    #[variable(initial = 2, min = 1, max = 5)]
    top_k: Var<i64>,
    #[step(python = "ReAct", signature = "question -> answer", with(tools = [crate::tools::search_docs, self::add, more::shout]))]
    answer: PythonModule,
}

fn main() {
    let def = add::def();
    assert_eq!(def.name, "add");
    assert_eq!(def.description, "Adds two numbers.");
    assert_eq!(def.timeout_ms, 500);
    assert!(!def.arguments[2].required);
    assert_eq!(tools::search_docs::def().variables, ["top_k"]);
    assert!(shout::def().inline && !add::def().inline);
    let _ = dspex::Step::python("a", "ReAct", "question -> answer").tool::<add>();
    let _ = <Agent as dspex::Program>::spec();
    let _ = <DerivedAgent as dspex::Program>::spec();
}
