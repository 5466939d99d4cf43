//! Every misuse of the macros in `ui/fail/` fails with exactly the `.stderr` beside it; every
//! program in `ui/pass/` compiles and runs. Regenerate with `TRYBUILD=overwrite` and read each
//! `.stderr` before committing it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
