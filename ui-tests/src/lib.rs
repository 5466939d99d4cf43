//! Compile-time behaviour of the dspex macros: `ui/fail/*.rs` must fail with exactly the
//! `.stderr` beside them, `ui/pass/*.rs` must compile and run.
