//! Webhook-secret management bodies (`docs/protocol.md` §3.2).

use serde::{Deserialize, Serialize};

/// Shortest secret EZThrottle accepts, in characters: the engine's secrets API,
/// `ezthrottle-local --webhook-secret` and [`Verifier`](crate::webhook::Verifier) refuse
/// anything shorter (an empty secret would accept signatures anyone can make).
pub const MIN_SECRET_LEN: usize = 16;

/// A webhook secret shorter than [`MIN_SECRET_LEN`] characters (an empty one included).
///
/// ```
/// use ezthrottle_core::protocol::{check_secret, MIN_SECRET_LEN};
///
/// assert!(check_secret("whsec_0123456789abcdef").is_ok());
/// let err = check_secret("").unwrap_err();
/// assert_eq!(err.chars(), 0);
/// assert_eq!(err.to_string(), format!("a webhook secret needs at least {MIN_SECRET_LEN} characters; this one has 0"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret needs at least {MIN_SECRET_LEN} characters; this one has {chars}")]
pub struct WeakSecret {
    chars: usize,
}

impl WeakSecret {
    /// How many characters the refused secret has.
    #[must_use]
    pub fn chars(&self) -> usize {
        self.chars
    }
}

/// Checks that `secret` has at least [`MIN_SECRET_LEN`] characters.
///
/// # Errors
///
/// [`WeakSecret`] with the secret's length (never the secret itself).
pub fn check_secret(secret: &str) -> Result<(), WeakSecret> {
    let chars = secret.chars().count();
    if chars < MIN_SECRET_LEN { Err(WeakSecret { chars }) } else { Ok(()) }
}

/// Body of `POST /api/v1/webhook-secrets`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateWebhookSecrets {
    /// Signs every delivery.
    pub primary_secret: String,
    /// Also accepted while a rotation is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_secret: Option<String>,
}

impl CreateWebhookSecrets {
    /// A request setting these secrets.
    pub fn new(primary_secret: impl Into<String>, secondary_secret: Option<String>) -> Self {
        Self { primary_secret: primary_secret.into(), secondary_secret }
    }

    /// Checks both secrets' length.
    ///
    /// # Errors
    ///
    /// The offending field and the reason.
    pub fn validate(&self) -> Result<(), super::InvalidJob> {
        let check = |field: &str, secret: &str| {
            check_secret(secret).map_err(|_| super::InvalidJob {
                field: field.to_owned(),
                reason: format!("must be at least {MIN_SECRET_LEN} characters"),
            })
        };
        check("primary_secret", &self.primary_secret)?;
        if let Some(secondary) = &self.secondary_secret {
            check("secondary_secret", secondary)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for CreateWebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateWebhookSecrets")
            .field("primary_secret", &"[redacted]")
            .field("secondary_secret", &self.secondary_secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The masked view `GET /api/v1/webhook-secrets` answers with. The server never
/// returns a secret in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookSecretsView {
    /// The account the secrets belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The masked primary secret, e.g. `abcd****wxyz`.
    pub primary_secret: String,
    /// The masked secondary secret, if any.
    #[serde(default)]
    pub secondary_secret: Option<String>,
    /// Whether a secondary secret is set.
    #[serde(default)]
    pub has_secondary: bool,
}

impl WebhookSecretsView {
    /// The masked view of these secrets.
    pub fn masking(customer_id: Option<String>, primary: &str, secondary: Option<&str>) -> Self {
        Self {
            customer_id,
            primary_secret: mask_secret(primary),
            secondary_secret: secondary.map(mask_secret),
            has_secondary: secondary.is_some(),
        }
    }
}

/// `abcd****wxyz`: the first and last four characters around `****`.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 8 {
        return "****".to_owned();
    }
    let head: String = chars.iter().take(4).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}****{tail}")
}

/// The answer to `DELETE /api/v1/webhook-secrets` (and other plain acknowledgements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StatusMessage {
    /// `ok` on success.
    pub status: String,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
}

impl StatusMessage {
    /// `{"status":"ok","message":message}`.
    pub fn ok(message: impl Into<String>) -> Self {
        Self { status: "ok".into(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_four_characters_each_side() {
        assert_eq!(mask_secret("abcdefghijklmnopwxyz"), "abcd****wxyz");
        assert_eq!(mask_secret("short"), "****");
    }

    #[test]
    fn debug_redacts() {
        let request = CreateWebhookSecrets::new("super-secret-value-1", Some("super-secret-value-2".into()));
        let printed = format!("{request:?}");
        assert!(!printed.contains("super-secret"), "{printed}");
    }
}
