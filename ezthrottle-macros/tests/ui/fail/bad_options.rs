extern crate ezthrottle_core as ezthrottle;

use ezthrottle::ForwardToEZThrottle;
use ezthrottle_macros::auto_forward;

#[auto_forward(clinet = CLIENT)]
fn unknown_option() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

#[auto_forward(step = frugal, step = performance)]
fn duplicated_option() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

#[auto_forward(step = lazy)]
fn unknown_step() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

#[auto_forward(on_status = [429, 42])]
fn not_a_status() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

#[auto_forward(on_status = [])]
fn no_status() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

#[auto_forward(crate = ezthrottle)]
fn crate_not_a_string() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

#[auto_forward(client)]
fn no_value() -> Result<u32, ForwardToEZThrottle> {
    Ok(1)
}

fn main() {
    // The functions are still emitted (unchanged) next to the errors: no "cannot find" here.
    let _: Result<u32, ForwardToEZThrottle> = unknown_option();
    let _ = (duplicated_option, unknown_step, not_a_status, no_status, crate_not_a_string, no_value);
}
