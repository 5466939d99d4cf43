//! Marker traits that turn a use of a feature dspex was built without into a compile error
//! naming the feature. They have no implementations: an item that needs a feature takes one
//! as a bound when the feature is off, and the compiler reports the trait's message at the
//! user's call.

/// Implemented by nothing (it is sealed): a bound that fails without the `redis` feature.
#[diagnostic::on_unimplemented(
    message = "a shared context or a Redis study needs dspex's `redis` feature",
    label = "not available without the `redis` feature",
    note = "enable it in Cargo.toml: `dspex = {{ version = \"0.1\", features = [\"redis\"] }}` (it is a default feature)"
)]
pub trait RedisFeature: sealed::Sealed {
    /// A value of an implementing type cannot exist, so a function that takes one never runs.
    fn unreachable(self) -> !;
}

mod sealed {
    /// Keeps [`RedisFeature`](super::RedisFeature) unimplementable outside this module.
    pub trait Sealed {}
}
