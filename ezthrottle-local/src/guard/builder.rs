//! The builder knobs of the SSRF rule, and the check `start` makes.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::engine::{EngineBuilder, StartError};

impl EngineBuilder {
    /// Applies the SSRF rule even on a loopback bind: no target, redirect hop or webhook
    /// in a loopback, private, link-local, unique-local or other special range unless the
    /// allow-list ([`allowed_hosts`](Self::allowed_hosts)) names the address. An engine
    /// bound beyond loopback always applies it; a loopback-bound one (the default) does
    /// not unless told to, since only local processes can submit to it. See the crate
    /// docs, "Security".
    #[must_use]
    pub fn guard_private_addresses(mut self) -> Self {
        self.config.guard_private_addresses = true;
        self
    }

    /// Resolves target and webhook hosts with `resolver` instead of the system's
    /// (split-horizon DNS, a service registry, tests). The SSRF rule applies to its
    /// answers as to the system's.
    #[must_use]
    pub fn resolver(mut self, resolver: Arc<dyn reqwest::dns::Resolve>) -> Self {
        self.config.resolver = Some(crate::guard::CustomResolver(resolver));
        self
    }

    /// The source address of the engine's outgoing connections (a host with several
    /// addresses). With `127.0.0.1` the kernel refuses any connection to an address off
    /// loopback before a packet leaves: what the engine's own tests pin.
    #[must_use]
    pub fn local_address(mut self, addr: IpAddr) -> Self {
        self.config.local_address = Some(addr);
        self
    }

    /// Allows [`open`](Self::open) on a bind beyond loopback: anyone who can reach the
    /// port can then submit jobs. Without it, [`start`](Self::start) refuses that
    /// combination ([`StartError::OpenOnNetwork`]).
    #[must_use]
    pub fn open_on_network(mut self) -> Self {
        self.config.open_on_network = true;
        self
    }
}

/// What `start` refuses about the SSRF rule: an open engine bound beyond loopback
/// without [`EngineBuilder::open_on_network`].
pub(crate) fn check_start(config: &Config) -> Result<(), StartError> {
    let loopback = super::classify(config.bind.ip()) == Some(super::Range::Loopback);
    if config.open && !loopback && !config.open_on_network {
        return Err(StartError::OpenOnNetwork { addr: config.bind });
    }
    Ok(())
}
