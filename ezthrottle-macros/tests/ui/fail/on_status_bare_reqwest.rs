extern crate ezthrottle_core as ezthrottle;

use ezthrottle_macros::auto_forward;

// `error_for_status()`'s error knows neither the method, the headers nor the body: it
// cannot be forwarded as the request that failed.
#[auto_forward(on_status = [429, 503])]
async fn fetch(url: &str) -> Result<String, reqwest::Error> {
    reqwest::get(url).await?.error_for_status()?.text().await
}

fn main() {}
