//! Free `fn` and `async fn`, with and without a client, `?` and early `return`.
extern crate ezthrottle_core as ezthrottle;

use ezthrottle::{AutoForwardError, ForwardToEZThrottle, Outcome};
use ezthrottle_macros::auto_forward;

/// No `client`: the environment's client, built on the first forward.
#[auto_forward]
fn sync_free(input: &str) -> Result<u32, ForwardToEZThrottle> {
    let value: u32 = input.parse().map_err(|_| ForwardToEZThrottle::get("https://api.example.com/parse"))?;
    if value == 0 {
        return Ok(1);
    }
    Ok(value)
}

#[auto_forward]
async fn async_free(input: String) -> Result<String, ForwardToEZThrottle> {
    if input.is_empty() {
        return Ok("empty".to_owned());
    }
    Ok(input)
}

/// Non-`Copy` arguments consumed by the body.
#[auto_forward]
async fn consumes(items: Vec<String>) -> Result<usize, ForwardToEZThrottle> {
    let owned: Vec<String> = items;
    Ok(owned.len())
}

/// Borrowed results.
#[auto_forward]
fn borrows<'a>(text: &'a str) -> Result<&'a str, ForwardToEZThrottle> {
    Ok(text.trim())
}

#[auto_forward]
async fn borrows_async(text: &str) -> Result<&str, ForwardToEZThrottle> {
    Ok(text.trim())
}

/// Visibility, attributes and doc comments are kept.
#[auto_forward]
#[inline]
pub(crate) fn kept() -> Result<(), ForwardToEZThrottle> {
    Ok(())
}

fn main() {
    assert!(matches!(sync_free("7"), Ok(Outcome::Completed(7))));
    assert!(matches!(sync_free("0"), Ok(Outcome::Completed(1))));
    assert!(matches!(borrows("  x "), Ok(Outcome::Completed("x"))));
    assert!(matches!(kept(), Ok(Outcome::Completed(()))));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(async_free(String::new()).await, Ok(Outcome::Completed(s)) if s == "empty"));
        assert!(matches!(consumes(vec!["a".into()]).await, Ok(Outcome::Completed(1))));
        assert!(matches!(borrows_async(" y ").await, Ok(Outcome::Completed("y"))));
    });
    // The types are the documented ones.
    let _: fn(&str) -> Result<Outcome<u32>, AutoForwardError<ForwardToEZThrottle>> = sync_free;
}
