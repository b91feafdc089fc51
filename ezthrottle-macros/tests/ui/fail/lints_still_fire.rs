#![deny(dead_code)]
extern crate ezthrottle_core as ezthrottle;

use ezthrottle::ForwardToEZThrottle;
use ezthrottle_macros::auto_forward;

/// The function item is kept, so its own lints (here `dead_code`) still fire.
#[auto_forward]
fn never_called() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

fn main() {}
