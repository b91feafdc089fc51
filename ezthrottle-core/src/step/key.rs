//! The idempotency key the SDK computes for a request when the caller gives none
//! ([`IdempotentStrategy::CredentialHash`](super::IdempotentStrategy::CredentialHash)).

use sha2::{Digest, Sha256};

use crate::protocol::Job;
use crate::protocol::headers::CREDENTIAL_HEADERS;

/// Domain separation: a key of this scheme never equals a hash of anything else.
const SCHEME: &[u8] = b"ezthrottle-rs credential-hash v1";

/// The idempotency key of `job`'s request: lower-case hex SHA-256 over its method, full URL
/// (query included), body and the values of its credential headers
/// ([`CREDENTIAL_HEADERS`] plus `extra_credential_headers`, names compared without case).
///
/// Every part is length-prefixed, so no two different requests encode alike; the hash
/// keeps the credentials out of the key. Two callers with different tokens get different
/// keys; the same caller repeating the same call gets the same key, so EZThrottle runs it
/// once while it remembers the key (its idempotency TTL).
///
/// ```
/// use ezthrottle_core::{Step, step::credential_key};
///
/// let alice = Step::new("https://api.example.com/me").header("Authorization", "Bearer alice").to_job();
/// let bob = Step::new("https://api.example.com/me").header("Authorization", "Bearer bob").to_job();
/// assert_ne!(credential_key(&alice, &[]), credential_key(&bob, &[]));
/// assert_eq!(credential_key(&alice, &[]).len(), 64);
/// assert!(!credential_key(&alice, &[]).contains("alice"));
/// ```
pub fn credential_key(job: &Job, extra_credential_headers: &[String]) -> String {
    let mut names: Vec<String> = CREDENTIAL_HEADERS
        .iter()
        .map(|name| (*name).to_owned())
        .chain(extra_credential_headers.iter().map(|name| name.trim().to_ascii_lowercase()))
        .collect();
    names.sort();
    names.dedup();

    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(SCHEME);
    part(job.normalized_method().as_str().as_bytes());
    part(job.url.as_bytes());
    match &job.body {
        None => part(b"no body"),
        Some(body) => {
            part(b"body");
            part(body.as_bytes());
        }
    }
    for name in &names {
        let mut values: Vec<&str> = job
            .headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect();
        values.sort_unstable();
        part(name.as_bytes());
        part(&(values.len() as u64).to_be_bytes());
        for value in values {
            part(value.as_bytes());
        }
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use crate::{IdempotentStrategy, Method, Step};

    fn key(step: Step) -> String {
        step.to_job().idempotent_key.expect("the default strategy computes a key")
    }

    fn me(token: &str) -> Step {
        Step::new("https://api.example.com/me").header("Authorization", format!("Bearer {token}"))
    }

    #[test]
    fn two_tokens_make_two_keys() {
        assert_ne!(key(me("alice")), key(me("bob")));
        for name in ["Cookie", "proxy-authorization", "X-Api-Key"] {
            let with = |value: &str| key(Step::new("https://api.example.com/me").header(name, value));
            assert_ne!(with("a"), with("b"), "{name}");
        }
    }

    #[test]
    fn the_same_inputs_make_the_same_key() {
        assert_eq!(key(me("alice")), key(me("alice")));
        let other_header = me("alice").header("x-trace-id", "1");
        assert_eq!(key(other_header), key(me("alice")), "only credential headers count");
        let lower = Step::new("https://api.example.com/me").header("authorization", "Bearer alice");
        assert_eq!(key(lower), key(me("alice")), "header names have no case");
        assert_eq!(key(me("alice")).len(), 64);
        assert!(key(me("alice")).bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn method_query_and_body_matter() {
        let base = || Step::new("https://api.example.com/items?page=1");
        let keys = [
            key(base()),
            key(Step::new("https://api.example.com/items?page=2")),
            key(Step::new("https://api.example.com/items")),
            key(base().method(Method::POST)),
            key(base().method(Method::POST).body("")),
            key(base().method(Method::POST).body("{}")),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in keys.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn named_headers_join_the_key() {
        let tenant = |id: &str| Step::new("https://api.example.com/me").header("X-Tenant", id);
        assert_eq!(key(tenant("a")), key(tenant("b")), "not a credential header by default");
        let named = |id: &str| key(tenant(id).credential_header("x-tenant"));
        assert_ne!(named("a"), named("b"));
    }

    #[test]
    fn an_explicit_key_wins_and_other_strategies_stay_available() {
        assert_eq!(me("alice").idempotent_key("order-7").to_job().idempotent_key.as_deref(), Some("order-7"));
        assert_eq!(me("alice").idempotent_strategy(IdempotentStrategy::Hash).to_job().idempotent_key, None);
        let unique = me("alice").idempotent_strategy(IdempotentStrategy::Unique);
        assert_ne!(unique.to_job().idempotent_key, unique.to_job().idempotent_key);
    }

    #[test]
    fn length_prefixes_keep_parts_apart() {
        let split = |url: &str, body: &str| key(Step::new(url).method(Method::POST).body(body));
        assert_ne!(split("https://a.test/ab", "c"), split("https://a.test/a", "bc"));
    }
}
