//! `Debug` helpers that keep credentials and bodies out of logs and panic messages.
//!
//! `legacy().unwrap()` on a `Result<_, ForwardToEZThrottle>` prints the error with `Debug`;
//! so does every `tracing` field and `dbg!`. Each type that holds a request (a [`Job`], a
//! [`Step`](crate::Step), a [`ProxyEnvelope`](super::ProxyEnvelope), ...) writes its `Debug`
//! with these helpers: header names stay visible, the values of credential headers
//! ([`CREDENTIAL_HEADERS`] plus the names a step adds with
//! [`Step::credential_header`](crate::Step::credential_header)), credential-like query
//! parameters of URLs ([`RedactedUrl`]) and bodies do not.
//! `Serialize` and the wire format are not affected.

use std::fmt;

use super::headers::CREDENTIAL_HEADERS;
use super::job::{Headers, Job, LOCAL_STEPS_METADATA_KEY, Metadata};

/// What a redacted value prints as.
const REDACTED: &str = "[redacted]";

/// The headers of a *response* that are credentials, besides [`CREDENTIAL_HEADERS`]:
/// `Set-Cookie`, for [`RedactedHeaders::with_credential_headers`].
pub fn response_credential_headers() -> &'static [String] {
    static NAMES: std::sync::OnceLock<[String; 1]> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| ["set-cookie".to_owned()])
}

/// Whether `name` is a credential header: one of [`CREDENTIAL_HEADERS`] or of `extra`
/// (names compared without case).
pub fn is_credential_header(name: &str, extra: &[String]) -> bool {
    let name = name.trim();
    CREDENTIAL_HEADERS.iter().any(|credential| credential.eq_ignore_ascii_case(name))
        || extra.iter().any(|credential| credential.trim().eq_ignore_ascii_case(name))
}

/// `Debug` of a header collection (a job's [`Headers`] or an [`http::HeaderMap`]): every
/// name, with the value of each credential header replaced by `[redacted]` (and, in a
/// `HeaderMap`, of each value marked [sensitive](http::HeaderValue::set_sensitive)).
///
/// ```
/// use ezthrottle_core::protocol::{Headers, redact::RedactedHeaders};
///
/// let headers = Headers::from([
///     ("Authorization".to_owned(), "Bearer sk_live_secret".to_owned()),
///     ("x-tenant".to_owned(), "acme".to_owned()),
///     ("accept".to_owned(), "application/json".to_owned()),
/// ]);
/// let extra = ["X-Tenant".to_owned()];
/// let shown = format!("{:?}", RedactedHeaders::new(&headers).with_credential_headers(&extra));
/// assert_eq!(shown, r#"{"Authorization": [redacted], "accept": "application/json", "x-tenant": [redacted]}"#);
///
/// let mut map = http::HeaderMap::new();
/// map.insert("cookie", http::HeaderValue::from_static("session=abc"));
/// map.insert("accept", http::HeaderValue::from_static("*/*"));
/// assert_eq!(format!("{:?}", RedactedHeaders::new(&map)), r#"{"cookie": [redacted], "accept": "*/*"}"#);
/// ```
pub struct RedactedHeaders<'a, H: ?Sized = Headers> {
    headers: &'a H,
    extra: &'a [String],
}

impl<'a, H: HeaderList + ?Sized> RedactedHeaders<'a, H> {
    /// `headers`, with the values of [`CREDENTIAL_HEADERS`] hidden.
    pub fn new(headers: &'a H) -> Self {
        Self { headers, extra: &[] }
    }

    /// Hides the values of the headers named in `extra` as well.
    pub fn with_credential_headers(self, extra: &'a [String]) -> Self {
        Self { extra, ..self }
    }
}

impl<H: HeaderList + ?Sized> fmt::Debug for RedactedHeaders<'_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        self.headers.redacted_entries(self.extra, &mut map);
        map.finish()
    }
}

/// A header collection [`RedactedHeaders`] can show: a job's [`Headers`] or an
/// [`http::HeaderMap`]. Sealed.
pub trait HeaderList: sealed::Sealed {
    /// Adds every header to `map`, credential values replaced.
    #[doc(hidden)]
    fn redacted_entries(&self, extra: &[String], map: &mut fmt::DebugMap<'_, '_>);
}

impl HeaderList for Headers {
    fn redacted_entries(&self, extra: &[String], map: &mut fmt::DebugMap<'_, '_>) {
        for (name, value) in self {
            if is_credential_header(name, extra) {
                map.entry(name, &Verbatim(REDACTED));
            } else {
                map.entry(name, value);
            }
        }
    }
}

impl HeaderList for http::HeaderMap {
    fn redacted_entries(&self, extra: &[String], map: &mut fmt::DebugMap<'_, '_>) {
        for (name, value) in self {
            if value.is_sensitive() || is_credential_header(name.as_str(), extra) {
                map.entry(&name.as_str(), &Verbatim(REDACTED));
            } else {
                map.entry(&name.as_str(), value);
            }
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Headers {}
    impl Sealed for http::HeaderMap {}
}

/// `Debug` of a body: its length only (`<42 bytes>`), never its text.
///
/// ```
/// use ezthrottle_core::protocol::redact::BodyLen;
///
/// assert_eq!(format!("{:?}", BodyLen::of("card=4242")), "<9 bytes>");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BodyLen(usize);

impl BodyLen {
    /// The length of `body`, in bytes.
    pub fn of(body: impl AsRef<[u8]>) -> Self {
        Self(body.as_ref().len())
    }
}

impl fmt::Debug for BodyLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

/// `Debug` of a URL: the values of query parameters that look like credentials (a name
/// holding `key`, `token`, `secret`, `password`, `auth` or `sig`, without case) and the
/// password of a `user:password@` part are `[redacted]`; the rest is kept, so the URL
/// still says where a request goes.
///
/// ```
/// use ezthrottle_core::protocol::redact::RedactedUrl;
///
/// let url = "https://bot:hunter2@api.example.com/v1/search?q=tea&api_key=sk_live_1&Access-Token=t#top";
/// assert_eq!(
///     format!("{:?}", RedactedUrl::new(url)),
///     r#""https://bot:[redacted]@api.example.com/v1/search?q=tea&api_key=[redacted]&Access-Token=[redacted]#top""#
/// );
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RedactedUrl<'a>(&'a str);

impl<'a> RedactedUrl<'a> {
    /// Redacts `url` when printed.
    pub fn new(url: &'a str) -> Self {
        Self(url)
    }
}

/// Whether a query parameter's name says its value is a credential.
fn is_credential_param(name: &str) -> bool {
    const MARKS: [&str; 6] = ["key", "token", "secret", "password", "auth", "sig"];
    let name = name.to_ascii_lowercase();
    MARKS.iter().any(|mark| name.contains(mark))
}

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (url, fragment) = match self.0.split_once('#') {
            Some((url, fragment)) => (url, Some(fragment)),
            None => (self.0, None),
        };
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        match base.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
                match authority.rsplit_once('@').and_then(|(userinfo, host)| Some((userinfo.split_once(':')?, host))) {
                    Some(((user, _password), host)) => write!(f, "{scheme}://{user}:{REDACTED}@{host}{path}")?,
                    None => f.write_str(base)?,
                }
            }
            None => f.write_str(base)?,
        }
        if let Some(query) = query {
            f.write_str("?")?;
            for (index, pair) in query.split('&').enumerate() {
                if index > 0 {
                    f.write_str("&")?;
                }
                match pair.split_once('=') {
                    Some((name, _)) if is_credential_param(name) => write!(f, "{name}={REDACTED}")?,
                    _ => f.write_str(pair)?,
                }
            }
        }
        if let Some(fragment) = fragment {
            write!(f, "#{fragment}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// Text printed as it is, without the quotes `Debug` of a `str` adds.
struct Verbatim(&'static str);

impl fmt::Debug for Verbatim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `Debug` of a job's [`Metadata`]: every entry, but the FRUGAL steps carried under
/// [`LOCAL_STEPS_METADATA_KEY`] (requests with their credentials) only as the relations
/// they run on.
///
/// ```
/// use ezthrottle_core::protocol::{LOCAL_STEPS_METADATA_KEY, Metadata, redact::RedactedMetadata};
///
/// let mut metadata = Metadata::new();
/// metadata.insert("order".into(), "A-1".into());
/// metadata.insert(LOCAL_STEPS_METADATA_KEY.into(), serde_json::json!({"on_success": {"request": {"headers": {"authorization": "Bearer sk_live"}}}}));
/// let printed = format!("{:?}", RedactedMetadata(&metadata));
/// assert!(printed.contains("A-1") && printed.contains("on_success") && !printed.contains("sk_live"), "{printed}");
/// ```
pub struct RedactedMetadata<'a>(pub &'a Metadata);

impl fmt::Debug for RedactedMetadata<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Carried<'a>(&'a serde_json::Value);
        impl fmt::Debug for Carried<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let relations = self.0.as_object().map(|steps| steps.keys().collect::<Vec<_>>()).unwrap_or_default();
                write!(f, "[FRUGAL steps: {relations:?}]")
            }
        }
        let mut map = f.debug_map();
        for (key, value) in self.0 {
            if key == LOCAL_STEPS_METADATA_KEY {
                map.entry(key, &Carried(value));
            } else {
                map.entry(key, value);
            }
        }
        map.finish()
    }
}

/// `Debug` of a job, redacted: what `Debug` of [`Job`] prints, and what a step prints for
/// its request with its own credential headers. Nested jobs are redacted the same way.
pub(crate) struct RedactedJob<'a> {
    pub(crate) job: &'a Job,
    pub(crate) extra: &'a [String],
}

impl RedactedJob<'_> {
    fn nested<'b>(&'b self, job: &'b Option<Box<Job>>) -> Option<RedactedJob<'b>> {
        job.as_deref().map(|job| RedactedJob { job, extra: self.extra })
    }
}

impl fmt::Debug for RedactedJob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let job = self.job;
        f.debug_struct("Job")
            .field("url", &RedactedUrl::new(&job.url))
            .field("method", &job.method)
            .field("headers", &RedactedHeaders::new(&job.headers).with_credential_headers(self.extra))
            .field("body", &job.body.as_ref().map(BodyLen::of))
            .field("metadata", &RedactedMetadata(&job.metadata))
            .field("webhooks", &job.webhooks)
            .field("webhook_quorum", &job.webhook_quorum)
            .field("regions", &job.regions)
            .field("region_policy", &job.region_policy)
            .field("execution_mode", &job.execution_mode)
            .field("retry_policy", &job.retry_policy)
            .field("retry_at", &job.retry_at)
            .field("idempotent_key", &job.idempotent_key)
            .field("trigger", &job.trigger)
            .field("fallback_job", &self.nested(&job.fallback_job))
            .field("on_success", &self.nested(&job.on_success))
            .field("on_failure", &self.nested(&job.on_failure))
            .field("on_failure_timeout", &job.on_failure_timeout)
            .finish_non_exhaustive()
    }
}
