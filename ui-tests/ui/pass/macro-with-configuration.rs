//! `with { ... }` after a step's bindings, or without bindings: every literal kind, Python
//! tools, a dotted-path module taking keys the table does not know, and an `@var` step whose
//! configuration suits every module the variable may name.

use dspex::prelude::*;
use dspex::spec::{ConfigEntry, ConfigValue, ToolRef};

dspex_program! {
    program Agents: "question -> answer" {
        variables {
            temperature: float = 0.7,
            iters: integer = 4,
            solver: module = "ReAct" { choices: ["ReAct", "ProgramOfThought"] },
        }
        chain {
            plan: python ChainOfThought("question -> plan") { temperature } with { temperature: 0, n: 1, },
            search: python ReAct("question, plan -> findings") { iters as max_iters } with {
                max_iters: 5,
                tools: ["my_pkg.tools.search", "my_pkg.tools.calculator"],
            },
            solve: python @solver("question, findings -> solution") with { max_iters: 2 },
            answer: python "my_pkg.modules.Writer"("solution -> answer") with {
                style: "brief",
                depth: -1,
                ratio: 0.5,
                verbose: false,
                sections: ["intro", "body"],
            },
        }
    }
}

fn main() {
    let config = |step: usize| Agents::spec().steps[step].config.clone();
    assert_eq!(
        config(0),
        [ConfigEntry::new("temperature", 0), ConfigEntry::new("n", 1)]
    );
    assert_eq!(
        config(1),
        [
            ConfigEntry::new("max_iters", 5),
            ConfigEntry::new(
                "tools",
                vec![
                    ToolRef::Python("my_pkg.tools.search".into()),
                    ToolRef::Python("my_pkg.tools.calculator".into()),
                ]
            ),
        ]
    );
    assert_eq!(config(2), [ConfigEntry::new("max_iters", 2)]);
    assert_eq!(
        config(3),
        [
            ConfigEntry::new("style", "brief"),
            ConfigEntry::new("depth", -1),
            ConfigEntry::new("ratio", 0.5),
            ConfigEntry::new("verbose", false),
            ConfigEntry::new("sections", ["intro", "body"]),
        ]
    );
    // The worker receives values in the canonical form of their key: a float temperature.
    assert_eq!(config(0)[0].canonical("ChainOfThought"), ConfigValue::Float(0.0));
}
