//! [`VerifyWebhookResponseBody`]: the response body of [`VerifyWebhook`](super::VerifyWebhook).

crate::body::opaque_body! {
    /// The response body of [`VerifyWebhook`](super::VerifyWebhook): the inner service's
    /// body, untouched, or the text of a [`WebhookRejection`](super::WebhookRejection).
    VerifyWebhookResponseBody
}
