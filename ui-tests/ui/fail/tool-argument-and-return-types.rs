use dspex::prelude::*;

struct Point {
    x: f64,
}

/// Takes an argument no agent can give.
#[dspex::tool]
fn takes_point(point: Point, scale: u8) -> Result<f64> {
    Ok(point.x * f64::from(scale))
}

/// Returns a plain value.
#[dspex::tool]
fn plain(query: String) -> String {
    query
}

/// Reads a variable into a type no variable has.
#[dspex::tool(variables(top_k))]
fn odd_variable(query: String, top_k: Point) -> Result<String> {
    let _ = top_k.x;
    Ok(query)
}

fn main() {}
