//! `with(...)` in `#[step]`, before or after `bind(...)`, on known and dotted-path modules.

use dspex::prelude::*;
use dspex::spec::{ConfigEntry, ToolRef};

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Agents {
    #[variable(initial = 4)]
    iters: Var<i64>,
    #[step(
        python = "ReAct",
        signature = "question -> findings",
        with(max_iters = 5, tools = ["my_pkg.tools.search"]),
        bind(iters as max_iters)
    )]
    search: PythonModule,
    #[step(
        python = "ProgramOfThought",
        signature = "question, findings -> solution",
        with(interpreter = "local")
    )]
    solve: PythonModule,
    #[step(
        python = "my_pkg.modules.Writer",
        signature = "solution -> answer",
        with(sections = ["intro"], verbose = true)
    )]
    answer: PythonModule,
}

fn main() {
    let config = |step: usize| Agents::spec().steps[step].config.clone();
    assert_eq!(
        config(0),
        [
            ConfigEntry::new("max_iters", 5),
            ConfigEntry::new(
                "tools",
                vec![ToolRef::Python("my_pkg.tools.search".into())]
            ),
        ]
    );
    assert_eq!(Agents::spec().steps[0].bindings.len(), 1);
    assert_eq!(config(1), [ConfigEntry::new("interpreter", "local")]);
    assert_eq!(
        config(2),
        [
            ConfigEntry::new("sections", ["intro"]),
            ConfigEntry::new("verbose", true),
        ]
    );
}
