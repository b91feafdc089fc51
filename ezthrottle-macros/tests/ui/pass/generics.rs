//! Generics, where clauses, lifetimes, `impl Trait` arguments and return types, aliases.
extern crate ezthrottle_core as ezthrottle;

use std::fmt::Display;

use ezthrottle::{ForwardToEZThrottle, Forwardable, Outcome};
use ezthrottle_macros::auto_forward;

#[auto_forward]
fn generic<T, E>(value: T, fail: Option<E>) -> Result<T, E>
where
    T: Clone + Send,
    E: Forwardable,
{
    match fail {
        Some(error) => Err(error),
        None => Ok(value.clone()),
    }
}

#[auto_forward]
async fn generic_async<'a, T: AsRef<str> + ?Sized>(text: &'a T) -> Result<&'a str, ForwardToEZThrottle> {
    Ok(text.as_ref())
}

#[auto_forward]
fn impl_argument(items: impl IntoIterator<Item = u32>) -> Result<u32, ForwardToEZThrottle> {
    Ok(items.into_iter().sum())
}

#[auto_forward]
async fn impl_argument_async(label: impl Display + Send) -> Result<String, ForwardToEZThrottle> {
    Ok(label.to_string())
}

#[auto_forward]
fn impl_return(n: u32) -> Result<impl Display, ForwardToEZThrottle> {
    Ok(n * 2)
}

#[auto_forward]
async fn impl_return_async(n: u32) -> Result<impl Display, ForwardToEZThrottle> {
    Ok(format!("n={n}"))
}

/// A one-argument `Result` alias.
type ForwardResult<T> = Result<T, ForwardToEZThrottle>;

#[auto_forward]
fn alias(n: u8) -> ForwardResult<u8> {
    Ok(n)
}

/// A path to `Result`, and a boxed error.
#[auto_forward]
fn boxed_error(n: u8) -> std::result::Result<u8, Box<ForwardToEZThrottle>> {
    if n == 0 { Err(Box::new(ForwardToEZThrottle::get("https://api.example.com/zero"))) } else { Ok(n) }
}

fn main() {
    assert!(matches!(generic::<_, ForwardToEZThrottle>(5, None), Ok(Outcome::Completed(5))));
    assert!(matches!(impl_argument([1, 2, 3]), Ok(Outcome::Completed(6))));
    assert!(matches!(impl_return(4), Ok(Outcome::Completed(v)) if v.to_string() == "8"));
    assert!(matches!(alias(3), Ok(Outcome::Completed(3))));
    assert!(matches!(boxed_error(2), Ok(Outcome::Completed(2))));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(generic_async("abc").await, Ok(Outcome::Completed("abc"))));
        assert!(matches!(impl_argument_async(7).await, Ok(Outcome::Completed(s)) if s == "7"));
        assert!(matches!(impl_return_async(1).await, Ok(Outcome::Completed(v)) if v.to_string() == "n=1"));
    });
}
