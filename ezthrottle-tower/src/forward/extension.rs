//! What a forwarded (or not forwarded) answer carries as typed response extensions.

use std::fmt;

use ezthrottle_core::SubmitReceipt;
use http::StatusCode;

/// Why a call was forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardReason {
    /// The target answered a status the policy forwards (e.g. 429).
    Status(StatusCode),
    /// The call failed in transport (the wrapped service returned an error).
    TransportError,
    /// The target's circuit was open: the target was not called.
    CircuitOpen,
    /// The layer runs as [`StepType::Performance`](ezthrottle_core::StepType::Performance):
    /// every call is submitted without calling the target.
    Performance,
}

impl ForwardReason {
    /// The wire name used in the `202` body's `reason` field.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Status(_) => "status",
            Self::TransportError => "transport_error",
            Self::CircuitOpen => "circuit_open",
            Self::Performance => "performance",
        }
    }

    /// The target's status, for [`ForwardReason::Status`].
    pub fn original_status(&self) -> Option<StatusCode> {
        match self {
            Self::Status(status) => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for ForwardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(f, "the target answered {status}"),
            Self::TransportError => f.write_str("the call failed in transport"),
            Self::CircuitOpen => f.write_str("the target's circuit is open"),
            Self::Performance => f.write_str("PERFORMANCE: submitted without calling the target"),
        }
    }
}

/// Response extension of a forwarded call (`202 Accepted`): EZThrottle's receipt.
///
/// ```
/// # use ezthrottle_tower::ForwardedJob;
/// # fn handle(response: http::Response<()>) {
/// if let Some(job) = response.extensions().get::<ForwardedJob>() {
///     println!("queued as {} after {:?}", job.receipt.job_id, job.original_status);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardedJob {
    /// EZThrottle's answer: the job id, its status, the idempotency key, `duplicate`.
    pub receipt: SubmitReceipt,
    /// The status the target answered; `None` for a transport error, or when the target
    /// was not called ([`ForwardReason::CircuitOpen`], [`ForwardReason::Performance`]).
    pub original_status: Option<StatusCode>,
    /// Why the call was forwarded.
    pub reason: ForwardReason,
}

/// Response extension of a call that should have been forwarded but was not: the
/// response is the target's own, unchanged.
///
/// Set when EZThrottle refused the job or could not be reached, when the request could
/// not become a job (its body was not captured, is not UTF-8 text, or its URI is not
/// absolute), or when the replay rule ([`ezthrottle_core::replay`]) keeps it: a `POST`
/// without `Idempotency-Key` the API may have run. When the wrapped service returned an *error*, that error is returned
/// unchanged and the reason is only logged (`tracing`, level `warn`).
///
/// One more case: when the request body fails while it is being captured (before the
/// target is called), the request cannot be sent at all; the layer then answers a
/// synthesized `400 Bad Request` carrying this extension. And one more: when the target
/// was not called (circuit open) and EZThrottle may have accepted the job, the layer
/// answers a synthesized `502 Bad Gateway` (`x-ezthrottle-forwarded: unknown`) with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardFailed {
    /// What went wrong, for logs.
    pub reason: String,
    /// The status of EZThrottle's refusal, if it answered one (e.g. `401`, `400`).
    pub status: Option<StatusCode>,
}

impl fmt::Display for ForwardFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not forwarded to EZThrottle: {}", self.reason)
    }
}

/// What the caller gets for a forwarded call: set with `respond_with` on
/// [`ForwardLayer`](crate::ForwardLayer) (and `ForwardMiddleware`).
///
/// Either way the answer carries the [`ForwardedJob`] extension and the headers
/// `x-ezthrottle-job-id` and `x-ezthrottle-forwarded: true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardResponse {
    /// `202 Accepted` with the JSON receipt (the default; see the
    /// [module docs](crate::forward)).
    #[default]
    Receipt,
    /// The target's own answer (its status, headers and body, e.g. the `429`), with the
    /// extension and the headers added: for callers that already handle the API's
    /// statuses. Where there is no answer of the target (a transport error, a circuit
    /// open, PERFORMANCE), the caller gets the `202` receipt.
    Original,
}
