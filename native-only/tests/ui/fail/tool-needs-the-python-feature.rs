/// Looks a word up.
#[dspex::tool]
fn lookup(word: String) -> Result<String, String> {
    Ok(word)
}

fn main() {
    let _ = lookup("a".into());
}
