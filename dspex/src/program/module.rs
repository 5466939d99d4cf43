//! Native steps: the `Module` trait a Rust type implements to be a step of a chain.

use std::future::Future;
use std::pin::Pin;

use super::fields::{Fields, Params};
use crate::error::Result;

/// A native (Rust) step. `forward` receives the step's input fields (those of its signature)
/// and the values of its bound variables under their parameter names, and returns its output
/// fields. Native module types used by the macros are built with `Default`.
///
/// ```
/// use dspex::{Fields, Module, Params, Result};
///
/// #[derive(Default)]
/// struct Shout;
///
/// impl Module for Shout {
///     async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
///         Ok(Fields::from([("loud", inputs.get::<&str>("text")?.to_uppercase())]))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a dspex module",
    label = "a native step needs a type implementing `dspex::Module`",
    note = "implement `dspex::Module` for `{Self}`: `async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields>`"
)]
pub trait Module: Send + Sync + 'static {
    /// Runs the step.
    fn forward(
        &self,
        inputs: &Fields,
        params: &Params,
    ) -> impl Future<Output = Result<Fields>> + Send;
}

/// A boxed future, as dynamic dispatch needs.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`Module`], implemented for every `Module`; the runtime builder
/// stores native steps as `Arc<dyn DynModule>`, and generated code hands them to the chain as
/// `&dyn DynModule` (through `dspex::__private`).
pub trait DynModule: Send + Sync + 'static {
    /// Runs the step.
    fn forward_boxed<'a>(
        &'a self,
        inputs: &'a Fields,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<Fields>>;
}

impl<M: Module> DynModule for M {
    fn forward_boxed<'a>(
        &'a self,
        inputs: &'a Fields,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<Fields>> {
        Box::pin(self.forward(inputs, params))
    }
}
