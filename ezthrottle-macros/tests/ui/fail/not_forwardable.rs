extern crate ezthrottle_core as ezthrottle;

use ezthrottle_macros::auto_forward;

#[derive(Debug)]
struct PlainError;

#[auto_forward]
async fn plain_error() -> Result<u32, PlainError> {
    Ok(1)
}

#[auto_forward(on_status = [429])]
fn not_http(text: &str) -> Result<u32, String> {
    Ok(text.len() as u32)
}

fn main() {}
