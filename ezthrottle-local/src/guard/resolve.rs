//! The engine's HTTP client, and the resolver that applies the SSRF rule to every answer
//! before a connection is made.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::Config;

/// A resolver set with [`EngineBuilder::resolver`](crate::EngineBuilder::resolver).
#[derive(Clone)]
pub(crate) struct CustomResolver(pub(crate) Arc<dyn Resolve>);

impl fmt::Debug for CustomResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomResolver(..)")
    }
}

/// The system resolver (`getaddrinfo` on tokio's blocking pool).
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Resolves through `inner`, then keeps only the answers the SSRF rule admits; a name
/// left with none fails with the refusal of its first answer.
struct GuardedResolver {
    inner: Arc<dyn Resolve>,
    allowed: Option<Arc<[String]>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let resolving = self.inner.resolve(name);
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let answers: Vec<SocketAddr> = resolving.await?.collect();
            let mut first_refusal = None;
            let kept: Vec<SocketAddr> = answers
                .into_iter()
                .filter(|addr| match super::address_refusal(allowed.as_deref(), addr.ip(), Some(&host)) {
                    None => true,
                    Some(refusal) => {
                        tracing::warn!(%refusal, "a resolved address is refused");
                        first_refusal.get_or_insert(refusal);
                        false
                    }
                })
                .collect();
            match first_refusal {
                Some(refusal) if kept.is_empty() => Err(Box::new(refusal) as _),
                _ => Ok(Box::new(kept.into_iter()) as Addrs),
            }
        })
    }
}

/// The engine's HTTP client for `config`: it follows no redirect by itself (a webhook
/// delivery never follows one, and the executor decides each of a job's, `redirect.rs`),
/// resolves through the configured resolver, and, when the engine is guarded, refuses
/// every resolved address the SSRF rule does not admit.
pub(crate) fn http_client(config: &Config) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .local_address(config.local_address);
    let custom = config.resolver.as_ref().map(|custom| Arc::clone(&custom.0));
    if super::guarded(config) {
        let inner = custom.unwrap_or_else(|| Arc::new(SystemResolver));
        let allowed = config.allowed_hosts.as_deref().map(Arc::from);
        builder = builder.dns_resolver(Arc::new(GuardedResolver { inner, allowed }));
    } else if let Some(custom) = custom {
        builder = builder.dns_resolver(custom);
    }
    builder.build()
}
