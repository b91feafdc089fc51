extern crate ezthrottle_core as ezthrottle;

use ezthrottle::ForwardToEZThrottle;
use ezthrottle_macros::auto_forward;

/// `self` in a function without a receiver.
#[auto_forward(client = self.client)]
fn no_receiver() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

/// Not a client.
#[auto_forward(client = "http://127.0.0.1:8080")]
async fn not_a_client() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

/// The body consumed the argument the client expression needs.
#[auto_forward(client = client)]
fn consumed(client: ezthrottle::EZThrottle) -> Result<u32, ForwardToEZThrottle> {
    drop(client);
    Ok(1)
}

fn main() {}
