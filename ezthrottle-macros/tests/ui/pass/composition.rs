//! With `#[tracing::instrument]` (both orders), `#[async_trait]`, and both at once; futures
//! stay `Send`.
extern crate ezthrottle_core as ezthrottle;

use ezthrottle::{AutoForwardError, EZThrottle, ForwardToEZThrottle, Outcome};
use ezthrottle_macros::auto_forward;

#[auto_forward]
#[tracing::instrument(err, ret)]
async fn auto_forward_outside(n: u32) -> Result<u32, ForwardToEZThrottle> {
    Ok(n)
}

#[tracing::instrument(err, ret)]
#[auto_forward]
async fn auto_forward_inside(n: u32) -> Result<u32, ForwardToEZThrottle> {
    Ok(n)
}

#[auto_forward]
#[tracing::instrument(err)]
fn sync_instrumented(n: u32) -> Result<u32, ForwardToEZThrottle> {
    Ok(n)
}

#[async_trait::async_trait]
trait Job {
    async fn run(&self, n: u32) -> Result<Outcome<u32>, AutoForwardError<ForwardToEZThrottle>>;
}

struct Worker {
    client: EZThrottle,
}

#[async_trait::async_trait]
impl Job for Worker {
    #[auto_forward(client = self.client)]
    #[tracing::instrument(skip(self))]
    async fn run(&self, n: u32) -> Result<u32, ForwardToEZThrottle> {
        Ok(n)
    }
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn main() {
    let worker = Worker { client: EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap() };
    assert!(matches!(sync_instrumented(1), Ok(Outcome::Completed(1))));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(assert_send(auto_forward_outside(2)).await, Ok(Outcome::Completed(2))));
        assert!(matches!(assert_send(auto_forward_inside(3)).await, Ok(Outcome::Completed(3))));
        assert!(matches!(assert_send(worker.run(4)).await, Ok(Outcome::Completed(4))));
    });
}
