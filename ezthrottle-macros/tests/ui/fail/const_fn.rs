extern crate ezthrottle_core as ezthrottle;

use ezthrottle::ForwardToEZThrottle;
use ezthrottle_macros::auto_forward;

#[auto_forward]
const fn constant() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

fn main() {}
