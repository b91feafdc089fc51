extern crate ezthrottle_core as ezthrottle;

use ezthrottle_macros::auto_forward;

#[auto_forward]
fn returns_a_number() -> u32 {
    1
}

#[auto_forward]
async fn returns_nothing() {}

#[auto_forward]
fn returns_an_option() -> Option<u32> {
    None
}

fn main() {}
