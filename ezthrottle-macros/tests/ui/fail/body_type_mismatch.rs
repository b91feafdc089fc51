extern crate ezthrottle_core as ezthrottle;

use ezthrottle::ForwardToEZThrottle;
use ezthrottle_macros::auto_forward;

#[auto_forward]
async fn wrong_value() -> Result<u32, ForwardToEZThrottle> {
    Ok("not a number")
}

#[auto_forward]
fn wrong_return() -> Result<u32, ForwardToEZThrottle> {
    if true {
        return Ok(String::new());
    }
    Ok(1)
}

fn main() {}
