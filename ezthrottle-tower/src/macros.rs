//! Macros for the plumbing every middleware service of this crate writes the same way.

/// Defines `get_ref`, `get_mut` and `into_inner` for a service whose wrapped service is
/// the field `inner` (as tower-http's `define_inner_service_accessors!` does). Invoke it
/// inside the service's inherent `impl` block.
macro_rules! define_inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
