//! Runnable examples of dspex; see `src/bin/`. Each prints what it does. This library holds
//! what several examples share.

use dspex::LmConfig;

pub mod researcher;

/// The LM of an example: `--model <name>` on the command line picks a real one (any model
/// string `dspy.LM` accepts, with the provider's API key in the environment), else `scripted`.
pub fn lm_from_args(scripted: LmConfig) -> LmConfig {
    match std::env::args().skip_while(|a| a != "--model").nth(1) {
        Some(model) => LmConfig::model(model),
        None => scripted,
    }
}

/// The value following `flag` on the command line.
pub fn arg(flag: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != flag).nth(1)
}

/// An OpenAI-compatible endpoint at `url` serving `model`, with the API key in the variable
/// `--api-key-env` names, if given.
pub fn endpoint_from_args(url: String, model: String) -> LmConfig {
    let lm = LmConfig::openai(url, model);
    match arg("--api-key-env") {
        Some(var) => lm.api_key_env(var),
        None => lm,
    }
}

/// The LM of an example run as `example`: `--base-url URL --model M [--api-key-env VAR]` names
/// an OpenAI-compatible endpoint, and neither flag means `scripted`. One flag without the
/// other ends the process with a message and exit status 2.
pub fn endpoint_or_scripted(example: &str, scripted: LmConfig) -> LmConfig {
    match (arg("--base-url"), arg("--model")) {
        (Some(url), Some(model)) => endpoint_from_args(url, model),
        (None, None) => scripted,
        _ => {
            eprintln!("{example}: --base-url and --model go together");
            std::process::exit(2);
        }
    }
}
