use dspex::prelude::*;

#[dspex::tool]
fn undocumented(query: String) -> Result<String> {
    Ok(query)
}

/// Returns nothing.
#[dspex::tool]
fn returns_nothing(query: String) {
    let _ = query;
}

/// Generic.
#[dspex::tool]
fn generic<T: Default>(query: String) -> Result<String> {
    Ok(query)
}

/// Destructures its argument.
#[dspex::tool]
fn destructures((a, b): (i64, i64)) -> Result<i64> {
    Ok(a + b)
}

/// Names a variable it does not take.
#[dspex::tool(variables(top_k, top_k, index))]
fn wrong_variables(query: String, top_k: i64, index_name: String) -> Result<String> {
    Ok(format!("{query}{top_k}{index_name}"))
}

/// Unknown keys and a bad timeout.
#[dspex::tool(variabels(top_k), timeout_ms = 0)]
fn bad_keys(query: String) -> Result<String> {
    Ok(query)
}

/// Asynchronous, yet marked `inline`, which is for synchronous tools.
#[dspex::tool(inline)]
async fn inline_async(query: String) -> Result<String> {
    Ok(query)
}

/// `inline` given a value.
#[dspex::tool(inline = true)]
fn inline_valued(query: String) -> Result<String> {
    Ok(query)
}

/// Not a function.
#[dspex::tool]
struct NotAFunction;

fn main() {}
