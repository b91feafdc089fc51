//! Every way to name the client: a static, a `LazyLock`, a field, an argument, a call.
extern crate ezthrottle_core as ezthrottle;

use std::sync::{Arc, LazyLock};

use ezthrottle::{EZThrottle, ForwardToEZThrottle, Outcome};
use ezthrottle_macros::auto_forward;

static LAZY: LazyLock<EZThrottle> = LazyLock::new(make);

fn make() -> EZThrottle {
    EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap()
}

#[auto_forward(client = LAZY)]
fn from_lazy_static() -> Result<u8, ForwardToEZThrottle> {
    Ok(1)
}

#[auto_forward(client = &*LAZY)]
async fn from_a_reference() -> Result<u8, ForwardToEZThrottle> {
    Ok(2)
}

#[auto_forward(client = client)]
async fn from_an_argument(client: &EZThrottle) -> Result<u8, ForwardToEZThrottle> {
    let _ = client;
    Ok(3)
}

#[auto_forward(client = client)]
fn from_an_owned_argument(client: EZThrottle) -> Result<u8, ForwardToEZThrottle> {
    let _ = &client;
    Ok(4)
}

#[auto_forward(client = client)]
async fn from_an_arc(client: Arc<EZThrottle>) -> Result<u8, ForwardToEZThrottle> {
    Ok(u8::from(client.is_direct()) + 4)
}

#[auto_forward(client = make())]
fn from_a_call() -> Result<u8, ForwardToEZThrottle> {
    Ok(6)
}

fn main() {
    assert!(matches!(from_lazy_static(), Ok(Outcome::Completed(1))));
    assert!(matches!(from_an_owned_argument(make()), Ok(Outcome::Completed(4))));
    assert!(matches!(from_a_call(), Ok(Outcome::Completed(6))));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(from_a_reference().await, Ok(Outcome::Completed(2))));
        assert!(matches!(from_an_argument(&make()).await, Ok(Outcome::Completed(3))));
        assert!(matches!(from_an_arc(Arc::new(make())).await, Ok(Outcome::Completed(5))));
    });
}
