//! The error collector: every pass reports into one [`Ctxt`], so that a user sees all the
//! mistakes of one invocation at once, in source order, each pointing at its own tokens.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

/// Where an error sits in the declaration; errors are reported sorted by it, so that they read
/// in source order whichever pass found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Place {
    /// The program header: name, signature, attributes.
    Header,
    /// A variable or a step, by its position in the source.
    Item(usize),
    /// Whole-program conclusions: an empty chain, an output no step produces.
    Tail,
}

/// Collects the errors of one macro invocation (serde_derive's `Ctxt`).
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<(Place, syn::Error)>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Reports `message` on `tokens` (the span covers them from first to last).
    pub(crate) fn error(&self, place: Place, tokens: impl ToTokens, message: impl Display) {
        self.syn_error(place, syn::Error::new_spanned(tokens, message));
    }

    /// Reports an error that syn produced (or that carries its own span).
    pub(crate) fn syn_error(&self, place: Place, error: syn::Error) {
        self.errors.borrow_mut().push((place, error));
    }

    /// Whether anything was reported so far.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.borrow().is_empty()
    }

    /// Every error, sorted by place (stable, so errors at one place keep their order), combined
    /// into one `syn::Error`; `None` when all went well.
    pub(crate) fn finish(self) -> Option<syn::Error> {
        let mut errors = self.errors.into_inner();
        errors.sort_by_key(|(place, _)| *place);
        errors.into_iter().map(|(_, e)| e).reduce(|mut all, e| {
            all.combine(e);
            all
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    #[test]
    fn errors_come_out_in_source_order() {
        let cx = Ctxt::new();
        let at = syn::Ident::new("x", Span::call_site());
        cx.error(Place::Tail, &at, "last");
        cx.error(Place::Item(2), &at, "third");
        cx.error(Place::Header, &at, "first");
        cx.error(Place::Item(2), &at, "fourth");
        cx.error(Place::Item(0), &at, "second");
        assert!(cx.has_errors());
        let messages: Vec<String> = cx
            .finish()
            .into_iter()
            .flat_map(|e| e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .collect();
        assert_eq!(messages, ["first", "second", "third", "fourth", "last"]);
        assert!(Ctxt::new().finish().is_none());
    }
}
