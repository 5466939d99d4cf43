//! The dependency tree of a program of native steps on dspex without default features holds
//! none of the crates the optional features bring.

use std::process::Command;

/// Crates only the `python`, `redis`, `lm` and `serve` features may bring.
const FORBIDDEN: &[&str] = &["tonic", "prost", "redis", "reqwest", "hyper", "axum"];

#[test]
fn a_native_program_pulls_none_of_the_optional_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "tree",
            "--manifest-path",
            manifest,
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--locked",
            "--offline",
        ])
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"dspex"), "{tree}");
    assert!(crates.contains(&"tokio"), "{tree}");
    for forbidden in FORBIDDEN {
        assert!(
            !crates.iter().any(|c| c == forbidden || c.starts_with(&format!("{forbidden}-"))),
            "`{forbidden}` is in the tree of a native program:\n{tree}"
        );
    }
}
