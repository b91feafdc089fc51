//! Requests carrying credentials, for the unit tests that check `Debug` redaction.

/// The credential values [`credentialed`] sets: none may appear in a redacted `Debug`.
pub(crate) const SECRETS: [&str; 3] = ["sk_live_secret123", "session=abc", "key_456"];

/// `builder` with `Authorization`, `Cookie` and `X-Api-Key` carrying [`SECRETS`], and a
/// harmless `Accept: application/json` that stays visible.
pub(crate) fn credentialed(builder: http::request::Builder) -> http::request::Builder {
    builder
        .header("authorization", "Bearer sk_live_secret123")
        .header("cookie", "session=abc")
        .header("x-api-key", "key_456")
        .header("accept", "application/json")
}
