//! FRUGAL children of a job that EZThrottle runs, carried to the webhook receiver.
//!
//! A FRUGAL step runs *here*. When its parent runs on EZThrottle (a PERFORMANCE step, or a
//! FRUGAL step forwarded after a local failure), "here" is wherever the parent's webhook is
//! received: the child is not sent as the job's `on_success` / `on_failure` (EZThrottle
//! would run it, billed and without its local rules), but in the job's metadata under
//! [`LOCAL_STEPS_METADATA_KEY`], which EZThrottle echoes back in the webhook. The receiver
//! reads it with [`Continuation::of`] and runs it with its own FRUGAL rules
//! ([`WorkflowInbox`](crate::inbox::WorkflowInbox) does both, once per job).
//!
//! What is carried is the whole child step: its request, idempotency key (fixed when the
//! parent is built, so a forward of the child is deduplicated whichever receiver makes it),
//! local timeout, `fallback_on_error`, replay policy, fallbacks and its own children.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{IdempotentStrategy, Step, StepResult, StepType};
use crate::client::EZThrottle;
use crate::protocol::time::duration_to_ms;
use crate::protocol::{
    ChildRelation, DeliveryStatus, InvalidJob, Job, LOCAL_STEPS_METADATA_KEY, Trigger, WebhookPayload,
};
use crate::replay::ReplayPolicy;

/// The metadata entry of a job carrying FRUGAL children: `{"on_success": step,
/// "on_failure": step}`, either optional.
#[derive(Serialize, Deserialize)]
struct Carried {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_success: Option<StepForm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_failure: Option<StepForm>,
}

/// A [`Step`] on the wire. Unknown fields are ignored, so a newer SDK's carried step can
/// still be run by an older receiver.
#[derive(Serialize, Deserialize)]
struct StepForm {
    request: Job,
    #[serde(rename = "type")]
    step_type: StepType,
    idempotent_strategy: IdempotentStrategy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    credential_headers: Vec<String>,
    replay: ReplayPolicy,
    fallback_on_error: Vec<u16>,
    local_timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fallbacks: Vec<FallbackForm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_success: Option<Box<StepForm>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_failure: Option<Box<StepForm>>,
}

#[derive(Serialize, Deserialize)]
struct FallbackForm {
    step: StepForm,
    trigger: Trigger,
}

impl StepForm {
    /// `step` with its idempotency key fixed: a receiver's forward of it then carries the
    /// key its parent was built with, even under [`IdempotentStrategy::Unique`].
    fn of(step: &Step) -> Self {
        let mut request = step.request.clone();
        request.idempotent_key = step.resolved_key();
        Self {
            request,
            step_type: step.step_type,
            idempotent_strategy: step.idempotent_strategy,
            credential_headers: step.credential_headers.clone(),
            replay: step.replay,
            fallback_on_error: step.fallback_on_error.clone(),
            local_timeout_ms: duration_to_ms(step.local_timeout),
            fallbacks: step
                .fallbacks
                .iter()
                .map(|(step, trigger)| FallbackForm { step: Self::of(step), trigger: trigger.clone() })
                .collect(),
            on_success: step.on_success.as_deref().map(|child| Box::new(Self::of(child))),
            on_failure: step.on_failure.as_deref().map(|child| Box::new(Self::of(child))),
        }
    }

    /// The step, refused when a local timeout in it is over [`MAX_CARRIED_LOCAL_TIMEOUT`].
    fn into_step(self) -> Result<Step, InvalidJob> {
        let local_timeout = Duration::from_millis(self.local_timeout_ms);
        if local_timeout > MAX_CARRIED_LOCAL_TIMEOUT {
            return Err(InvalidJob::new(
                crate::protocol::local_steps_field(),
                format!(
                    "a local_timeout_ms of {} is over the most a carried step may wait, 1 h",
                    self.local_timeout_ms
                ),
            ));
        }
        let nested = |form: Option<Box<StepForm>>| form.map(|form| form.into_step().map(Box::new)).transpose();
        Ok(Step {
            request: self.request,
            step_type: self.step_type,
            idempotent_strategy: self.idempotent_strategy,
            credential_headers: self.credential_headers,
            replay: self.replay,
            fallback_on_error: self.fallback_on_error,
            local_timeout,
            fallbacks: self
                .fallbacks
                .into_iter()
                .map(|form| Ok((form.step.into_step()?, form.trigger)))
                .collect::<Result<_, InvalidJob>>()?,
            on_success: nested(self.on_success)?,
            on_failure: nested(self.on_failure)?,
        })
    }
}

impl Carried {
    /// The carried steps of a metadata entry, or the error naming it.
    fn read(value: &serde_json::Value) -> Result<Self, InvalidJob> {
        Self::deserialize(value).map_err(|err| {
            InvalidJob::new(crate::protocol::local_steps_field(), format!("is not a carried step: {err}"))
        })
    }
}

/// Refuses a job (or a job nested in it) carrying a step its receiver would refuse
/// ([`Continuation::of`]): a client checks before sending, so the mistake is the
/// sender's `InvalidInput`, not a child dropped where the webhook lands.
pub(crate) fn check_carried(job: &Job) -> Result<(), InvalidJob> {
    if let Some(value) = job.metadata.get(LOCAL_STEPS_METADATA_KEY) {
        let carried = Carried::read(value)?;
        for form in [carried.on_success, carried.on_failure].into_iter().flatten() {
            let _checked: Step = form.into_step()?;
        }
    }
    [&job.on_success, &job.on_failure, &job.fallback_job]
        .into_iter()
        .flatten()
        .try_for_each(|nested| check_carried(nested))
}

/// The longest local timeout a carried step may have (1 h): a receiver refuses a longer
/// one ([`Continuation::of`]) rather than hold a task that long, and a client refuses to
/// send one (`InvalidInput` naming `metadata.ezthrottle_local_steps`).
pub const MAX_CARRIED_LOCAL_TIMEOUT: Duration = Duration::from_secs(3_600);

/// Moves the FRUGAL children of `step` into `job`'s metadata, leaving its PERFORMANCE
/// children as its `on_success` / `on_failure` jobs.
pub(super) fn carry_children(step: &Step, job: &mut Job) {
    let frugal = |child: &Option<Box<Step>>| child.as_deref().filter(|child| child.is_frugal()).map(StepForm::of);
    let carried = Carried { on_success: frugal(&step.on_success), on_failure: frugal(&step.on_failure) };
    if carried.on_success.is_none() && carried.on_failure.is_none() {
        return;
    }
    // Plain data with string keys: encoding cannot fail. Were it to, `Null` is carried and
    // `Job::validate` refuses the job rather than dropping the child.
    let value = serde_json::to_value(&carried).unwrap_or(serde_json::Value::Null);
    job.metadata.insert(LOCAL_STEPS_METADATA_KEY.to_owned(), value);
}

/// The FRUGAL child a webhook delivery carries for its status: the parent's `on_success`
/// when it succeeded, its `on_failure` when it failed.
///
/// ```
/// use ezthrottle_core::step::Continuation;
/// use ezthrottle_core::{DeliveryStatus, Step, StepType, WebhookPayload, Webhook};
///
/// let parent = Step::new("https://payments.example.com/charge")
///     .webhook(Webhook::new("https://app.example.com/webhook"))
///     .on_success(Step::new("https://analytics.example.com/track").step_type(StepType::Frugal));
/// // EZThrottle echoes the job's metadata in its webhook:
/// let delivered = WebhookPayload::new("job_1", DeliveryStatus::Success).with_metadata(parent.to_job().metadata);
/// let child = Continuation::of(&delivered)?.expect("a FRUGAL on_success");
/// assert_eq!(child.step().request().url, "https://analytics.example.com/track");
/// // child.run(&client).await runs it here, and forwards it by its own rules if it fails.
/// # Ok::<(), ezthrottle_core::protocol::InvalidJob>(())
/// ```
#[derive(Debug, Clone)]
pub struct Continuation {
    relation: ChildRelation,
    step: Step,
}

impl Continuation {
    /// The child `payload` carries for its status, if any.
    ///
    /// # Errors
    ///
    /// [`InvalidJob`] naming `metadata.ezthrottle_local_steps` when the entry is not a
    /// carried step (a hand-written or foreign entry under the reserved key), or when a
    /// local timeout in it is over [`MAX_CARRIED_LOCAL_TIMEOUT`].
    pub fn of(payload: &WebhookPayload) -> Result<Option<Self>, InvalidJob> {
        let Some(value) = payload.metadata.get(LOCAL_STEPS_METADATA_KEY) else { return Ok(None) };
        let carried = Carried::read(value)?;
        let (relation, form) = match payload.status {
            DeliveryStatus::Success => (ChildRelation::OnSuccess, carried.on_success),
            DeliveryStatus::Failed => (ChildRelation::OnFailure, carried.on_failure),
        };
        form.map(|form| Ok(Self { relation, step: form.into_step()? })).transpose()
    }

    /// Why the child runs: [`ChildRelation::OnSuccess`] or [`ChildRelation::OnFailure`].
    pub fn relation(&self) -> ChildRelation {
        self.relation
    }

    /// The child step.
    pub fn step(&self) -> &Step {
        &self.step
    }

    /// Runs the child here, as [`Step::execute`] does: FRUGAL, so a failure in its
    /// `fallback_on_error` is forwarded to EZThrottle through `client`.
    ///
    /// # Errors
    ///
    /// As [`Step::execute`].
    pub async fn run(&self, client: &EZThrottle) -> StepResult {
        self.step.execute(client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdempotentStrategy;
    use crate::protocol::Webhook;

    fn frugal(url: &str) -> Step {
        Step::new(url).step_type(StepType::Frugal)
    }

    fn parent() -> Step {
        Step::new("https://pay.test/charge").webhook(Webhook::new("https://app.test/webhook"))
    }

    fn delivered(job: &Job, status: DeliveryStatus) -> WebhookPayload {
        WebhookPayload::new("job_1", status).with_metadata(job.metadata.clone())
    }

    #[test]
    fn a_frugal_child_travels_whole_in_the_metadata_and_a_performance_one_stays_a_child_job() {
        let child = frugal("https://track.test/event")
            .header("Authorization", "Bearer child-token")
            .local_timeout(Duration::from_millis(1500))
            .fallback_on_error([503])
            .replay(ReplayPolicy::Always)
            .credential_header("X-Tenant")
            .fallback(frugal("https://backup.test/event"), Trigger::on_error([503]))
            .on_success(frugal("https://track.test/after"));
        let job = parent().on_success(child.clone()).on_failure(Step::new("https://alert.test/page"), None).to_job();
        assert!(job.on_success.is_none());
        assert_eq!(job.on_failure.as_ref().map(|child| child.url.as_str()), Some("https://alert.test/page"));
        job.validate().expect("valid");

        let carried = Continuation::of(&delivered(&job, DeliveryStatus::Success)).unwrap().expect("carried");
        assert_eq!(carried.relation(), ChildRelation::OnSuccess);
        // The same step, its key fixed to the one it computes.
        assert_eq!(carried.step().to_job(), child.to_job());
        assert_eq!(carried.step().local_timeout, Duration::from_millis(1500));
        assert_eq!(carried.step().replay, ReplayPolicy::Always);
        assert!(carried.step().fallbacks.first().is_some_and(|(step, _)| step.is_frugal()));
        assert!(
            Continuation::of(&delivered(&job, DeliveryStatus::Failed)).unwrap().is_none(),
            "on_failure is PERFORMANCE"
        );
    }

    #[test]
    fn a_unique_key_is_fixed_when_the_parent_is_built() {
        let job = parent()
            .on_success(frugal("https://track.test/e").idempotent_strategy(IdempotentStrategy::Unique))
            .to_job();
        let payload = delivered(&job, DeliveryStatus::Success);
        let key = |payload| Continuation::of(payload).unwrap().unwrap().step().to_job().idempotent_key;
        assert!(key(&payload).is_some());
        assert_eq!(key(&payload), key(&payload), "every receiver forwards it under one key");
    }

    #[test]
    fn jobs_that_could_never_run_their_frugal_child_are_refused() {
        let child = || frugal("https://track.test/e");
        let no_webhook = Step::new("https://pay.test/charge").on_success(child()).to_job();
        let refused = no_webhook.validate().unwrap_err();
        assert_eq!(refused.field, "metadata.ezthrottle_local_steps");
        assert!(refused.reason.contains("no webhook"), "{refused}");

        let timed = parent().on_failure(child(), Some(Duration::from_secs(5))).to_job();
        assert_eq!(timed.validate().unwrap_err().field, "on_failure_timeout_ms");

        let fallback = parent().fallback(Step::new("https://b.test/charge").on_success(child()), Trigger::Any).to_job();
        assert_eq!(fallback.validate().unwrap_err().field, "fallback_job.metadata.ezthrottle_local_steps");
    }

    #[test]
    fn a_foreign_entry_under_the_reserved_key_is_an_error_naming_it() {
        let mut payload = WebhookPayload::new("job_1", DeliveryStatus::Success);
        payload.metadata.insert(LOCAL_STEPS_METADATA_KEY.into(), serde_json::json!({"on_success": 3}));
        let error = Continuation::of(&payload).unwrap_err();
        assert_eq!(error.field, "metadata.ezthrottle_local_steps");
    }

    #[test]
    fn a_carried_local_timeout_over_an_hour_is_refused_at_any_depth() {
        let within = frugal("https://track.test/e").local_timeout(MAX_CARRIED_LOCAL_TIMEOUT);
        let job = parent().on_success(within.clone()).to_job();
        assert!(Continuation::of(&delivered(&job, DeliveryStatus::Success)).is_ok());
        let over = MAX_CARRIED_LOCAL_TIMEOUT + Duration::from_millis(1);
        let nested = within.on_success(frugal("https://track.test/after").local_timeout(over));
        for child in [frugal("https://track.test/e").local_timeout(over), nested] {
            let job = parent().on_success(child).to_job();
            let refused = Continuation::of(&delivered(&job, DeliveryStatus::Success)).unwrap_err();
            assert!(refused.reason.contains("3600001"), "{refused}");
        }
    }

    #[test]
    fn a_carried_local_timeout_over_an_hour_is_refused_before_sending_at_any_depth() {
        let over = frugal("https://track.test/e").local_timeout(MAX_CARRIED_LOCAL_TIMEOUT + Duration::from_secs(1));
        assert!(check_carried(&parent().on_success(frugal("https://track.test/e")).to_job()).is_ok());
        let direct = parent().on_success(over.clone()).to_job();
        // Under a PERFORMANCE child: the child job carries it.
        let nested = parent().on_failure(parent().on_success(over), None).to_job();
        for job in [direct, nested] {
            let refused = check_carried(&job).unwrap_err();
            assert_eq!(refused.field, "metadata.ezthrottle_local_steps");
            assert!(refused.reason.contains("over the most a carried step may wait"), "{refused}");
        }
    }

    #[tokio::test]
    async fn a_step_carrying_such_a_timeout_is_refused_before_anything_is_sent() {
        // Port 1 on loopback: nothing listens, and nothing is sent anyway.
        let client = EZThrottle::builder().direct("http://127.0.0.1:1").build().unwrap();
        let over = frugal("https://track.test/e").local_timeout(MAX_CARRIED_LOCAL_TIMEOUT * 2);
        let refused = parent().on_success(over).execute(&client).await.unwrap_err();
        assert!(
            matches!(&refused, crate::Error::InvalidInput { field, .. } if field == "metadata.ezthrottle_local_steps"),
            "{refused:?}"
        );
    }

    #[test]
    fn debug_of_the_job_and_of_its_delivery_keeps_the_carried_credentials_out() {
        let job =
            parent().on_success(frugal("https://track.test/e").header("Authorization", "Bearer sk_child")).to_job();
        for printed in [format!("{job:?}"), format!("{:?}", delivered(&job, DeliveryStatus::Success))] {
            assert!(!printed.contains("sk_child") && printed.contains("on_success"), "{printed}");
        }
    }
}
