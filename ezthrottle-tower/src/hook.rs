//! [`Hook`]: a user's callback a layer shares with every service it makes (the audit hooks
//! of the rate limiter and the idempotency layer), printed without its contents.

use std::fmt;
use std::sync::Arc;

/// A callback `F` (a `dyn Fn(&Event)`), cheap to clone.
pub(crate) struct Hook<F: ?Sized>(pub(crate) Arc<F>);

impl<F: ?Sized> Clone for Hook<F> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<F: ?Sized> fmt::Debug for Hook<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook(..)")
    }
}
