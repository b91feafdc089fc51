extern crate ezthrottle_core as ezthrottle;

use ezthrottle_macros::auto_forward;

#[auto_forward]
struct NotAFunction;

trait Declared {
    #[auto_forward]
    fn no_body(&self) -> Result<u32, ezthrottle::ForwardToEZThrottle>;
}

fn main() {}
