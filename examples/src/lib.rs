//! Runnable examples of dspex; see `src/bin/`. Each prints what it does. This library holds
//! what several examples share.

use dspex::LmConfig;

/// The LM of an example: `--model <name>` on the command line picks a real one (any model
/// string `dspy.LM` accepts, with the provider's API key in the environment), else `scripted`.
pub fn lm_from_args(scripted: LmConfig) -> LmConfig {
    match std::env::args().skip_while(|a| a != "--model").nth(1) {
        Some(model) => LmConfig::model(model),
        None => scripted,
    }
}
