//! Trait impl methods: sync, native `async fn` in traits, and `#[async_trait]`.
extern crate ezthrottle_core as ezthrottle;

use ezthrottle::{AutoForwardError, EZThrottle, ForwardToEZThrottle, Outcome};
use ezthrottle_macros::auto_forward;

type Forwarded<T> = Result<Outcome<T>, AutoForwardError<ForwardToEZThrottle>>;

trait Sync_ {
    fn run(&self, n: u32) -> Forwarded<u32>;
}

trait Native {
    async fn run(&mut self, n: u32) -> Forwarded<u32>;
}

#[async_trait::async_trait]
trait Boxed {
    async fn run(&self, n: u32) -> Forwarded<u32>;
    async fn run_mut(&mut self, text: String) -> Forwarded<usize>;
    async fn run_owned(self, n: u32) -> Forwarded<u32>;
}

struct Service {
    client: EZThrottle,
    total: u32,
}

impl Sync_ for Service {
    #[auto_forward(client = self.client)]
    fn run(&self, n: u32) -> Result<u32, ForwardToEZThrottle> {
        Ok(n + self.total)
    }
}

impl Native for Service {
    #[auto_forward(client = self.client)]
    async fn run(&mut self, n: u32) -> Result<u32, ForwardToEZThrottle> {
        self.total += n;
        Ok(self.total)
    }
}

#[async_trait::async_trait]
impl Boxed for Service {
    #[auto_forward(client = self.client, idempotent_key = format!("run-{n}-{}", self.total))]
    async fn run(&self, n: u32) -> Result<u32, ForwardToEZThrottle> {
        if n == 0 {
            return Err(ForwardToEZThrottle::get("https://api.example.com/zero"));
        }
        Ok(n * 2)
    }

    #[auto_forward(client = self.client)]
    async fn run_mut(&mut self, text: String) -> Result<usize, ForwardToEZThrottle> {
        self.total += 1;
        Ok(text.len())
    }

    #[auto_forward(client = self.client)]
    async fn run_owned(self, n: u32) -> Result<u32, ForwardToEZThrottle> {
        Ok(n + self.total)
    }
}

fn main() {
    let client = EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap();
    let mut service = Service { client, total: 1 };
    assert!(matches!(Sync_::run(&service, 1), Ok(Outcome::Completed(2))));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(Native::run(&mut service, 2).await, Ok(Outcome::Completed(3))));
        assert!(matches!(Boxed::run(&service, 2).await, Ok(Outcome::Completed(4))));
        assert!(matches!(service.run_mut("abc".into()).await, Ok(Outcome::Completed(3))));
        assert!(matches!(service.run_owned(1).await, Ok(Outcome::Completed(5))));
    });
}
