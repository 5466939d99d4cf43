//! `dspex_program!` expanded from a `macro_rules!` macro that forwards expressions.

use dspex::prelude::*;

#[derive(Default)]
struct Echo;

impl Module for Echo {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([("echo", inputs.get::<&str>("text")?)]))
    }
}

macro_rules! echo_program {
    ($name:ident, $initial:expr, $max:expr) => {
        dspex_program! {
            program $name: "text -> echo" {
                variables {
                    temperature: float = $initial { min: -2.0, max: $max },
                }
                chain {
                    echo: native Echo("text -> echo"),
                }
            }
        }
    };
}

echo_program!(Low, 0.1, 1.0);
echo_program!(High, -1, 2.0);

fn main() {}
