//! Inherent methods: `&self`, `&mut self`, `self`, sync and async, with the client in a field.
extern crate ezthrottle_core as ezthrottle;

use std::sync::Arc;

use ezthrottle::{EZThrottle, ForwardToEZThrottle, Outcome};
use ezthrottle_macros::auto_forward;

struct Service {
    client: EZThrottle,
    shared: Arc<EZThrottle>,
    name: String,
    calls: u32,
}

impl Service {
    #[auto_forward(client = self.client)]
    fn by_ref(&self) -> Result<&str, ForwardToEZThrottle> {
        Ok(&self.name)
    }

    #[auto_forward(client = &self.client)]
    async fn by_ref_async(&self) -> Result<&str, ForwardToEZThrottle> {
        Ok(&self.name)
    }

    #[auto_forward(client = self.shared)]
    fn by_mut(&mut self) -> Result<&mut u32, ForwardToEZThrottle> {
        self.calls += 1;
        Ok(&mut self.calls)
    }

    #[auto_forward(client = self.shared)]
    async fn by_mut_async(&mut self) -> Result<u32, ForwardToEZThrottle> {
        self.calls += 1;
        Ok(self.calls)
    }

    #[auto_forward(client = self.client)]
    fn by_value(self) -> Result<String, ForwardToEZThrottle> {
        Ok(self.name.clone())
    }

    #[auto_forward(client = self.client)]
    async fn by_value_async(self) -> Result<u32, ForwardToEZThrottle> {
        Ok(self.calls)
    }

    /// An associated function, no receiver.
    #[auto_forward]
    fn associated() -> Result<u8, ForwardToEZThrottle> {
        Ok(1)
    }
}

fn main() {
    let client = EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap();
    let mut service = Service { client: client.clone(), shared: Arc::new(client), name: "svc".into(), calls: 0 };
    assert!(matches!(service.by_ref(), Ok(Outcome::Completed("svc"))));
    if let Ok(Outcome::Completed(calls)) = service.by_mut() {
        *calls += 10;
    }
    assert_eq!(service.calls, 11);
    assert!(matches!(Service::associated(), Ok(Outcome::Completed(1))));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(service.by_ref_async().await, Ok(Outcome::Completed("svc"))));
        assert!(matches!(service.by_mut_async().await, Ok(Outcome::Completed(12))));
    });
    let copy = Service { client: service.client.clone(), shared: service.shared.clone(), name: "b".into(), calls: 3 };
    assert!(matches!(service.by_value(), Ok(Outcome::Completed(name)) if name == "svc"));
    assert!(matches!(runtime.block_on(copy.by_value_async()), Ok(Outcome::Completed(3))));
}
