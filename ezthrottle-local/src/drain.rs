//! Reading an answer the engine does not need: a webhook receiver's body.
//!
//! A receiver's answer carries nothing the engine records but its status, yet a receiver
//! could answer an endless body: read at most [`WEBHOOK_ANSWER_LIMIT`] bytes (enough for
//! the usual short answer, so the connection can go back to the pool), then drop the
//! connection.

/// The most bytes of a webhook receiver's answer body the engine reads (4 KiB); past it the
/// connection is closed (the delivery still counts by its status).
pub(crate) const WEBHOOK_ANSWER_LIMIT: usize = 4 * 1024;

/// Reads `response`'s body up to `limit` bytes and drops it. Answers how many bytes were
/// read. A body longer than `limit` closes the connection (dropping a response mid-body
/// never returns its connection to the pool).
pub(crate) async fn drain(mut response: reqwest::Response, limit: usize) -> usize {
    let mut read = 0usize;
    while read <= limit {
        match response.chunk().await {
            Ok(Some(chunk)) => read = read.saturating_add(chunk.len()),
            Ok(None) | Err(_) => break,
        }
    }
    read
}
