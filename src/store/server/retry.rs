//! One retry loop for every request: transient failures (unreachable, restarting, overloaded,
//! slow) are retried with capped exponential backoff and jitter; anything else is the server's
//! answer and returned at once.

use super::*;

/// Upper bound for one backoff pause.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Retry settings for requests other than upsert (upsert takes them from [`LoadOptions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubles per retry (capped at 30 s).
    pub base_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let d = LoadOptions::default();
        RetryPolicy { max_retries: d.max_retries, base_ms: d.retry_base_ms }
    }
}

impl From<&LoadOptions> for RetryPolicy {
    fn from(o: &LoadOptions) -> Self {
        RetryPolicy { max_retries: o.max_retries, base_ms: o.retry_base_ms }
    }
}

/// What a request is about, for error messages.
pub(super) struct Ctx<'a> {
    pub(super) url: &'a str,
    /// `*`: a request about no one collection (listing collections or aliases).
    pub(super) collection: &'a str,
    pub(super) what: &'a str,
}

impl Ctx<'_> {
    /// " on collection 'x'" for messages, nothing for a request about no one collection.
    fn on(&self) -> String {
        if self.collection == "*" {
            String::new()
        } else {
            format!(" on collection '{}'", self.collection)
        }
    }
}

/// Whether an error is worth retrying, and the server's requested pause if it gave one.
pub(super) fn transient(err: &QdrantError) -> Option<Option<Duration>> {
    match err {
        QdrantError::ResourceExhaustedError { retry_after_seconds, .. } => {
            Some(Some(Duration::from_secs(*retry_after_seconds)))
        }
        QdrantError::ResponseError { status } => {
            let msg = status.message().to_ascii_lowercase();
            let connection_trouble =
                ["failed to connect", "transport error", "connection", "broken pipe", "h2 protocol"]
                    .iter()
                    .any(|s| msg.contains(s));
            match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => Some(None),
                // qdrant-client reports a failed connect as Internal("Failed to connect to ...");
                // a connection dropped mid-request surfaces as Unknown/Cancelled transport errors.
                Code::Internal | Code::Unknown | Code::Cancelled if connection_trouble => Some(None),
                _ => None,
            }
        }
        QdrantError::Io(_) => Some(None),
        _ => None,
    }
}

pub(super) fn describe_err(err: &QdrantError) -> String {
    match err {
        QdrantError::ResponseError { status } | QdrantError::ResourceExhaustedError { status, .. } => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

/// Backoff before retry number `retry` (0-based): base * 2^retry, capped, with up to 25% jitter so
/// parallel requests do not retry in lockstep.
pub(super) fn backoff(base_ms: u64, retry: u32) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << retry.min(20));
    let capped = Duration::from_millis(exp).min(MAX_BACKOFF);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = capped.mul_f64((nanos % 1000) as f64 / 4000.0);
    capped + jitter
}

pub(super) async fn with_retry<T, F, Fut>(ctx: &Ctx<'_>, policy: RetryPolicy, f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, QdrantError>>,
{
    let start = Instant::now();
    let mut retry = 0u32;
    loop {
        let err = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(server_pause) = transient(&err) else {
            let auth = matches!(
                &err,
                QdrantError::ResponseError { status } if matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied)
            );
            let hint = if auth {
                " (authentication: the API key is missing or wrong; set QDRANT_API_KEY, the CLI's --api-key, or the \
                 password of the Airflow connection)"
            } else {
                ""
            };
            return Err(VdbError::new(
                if auth { ErrorKind::StoreAuth } else { ErrorKind::Store },
                format!("Qdrant at {} rejected {}{}: {}{hint}", ctx.url, ctx.what, ctx.on(), describe_err(&err)),
            )
            .with_source(err));
        };
        if retry >= policy.max_retries {
            return Err(VdbError::new(
                ErrorKind::StoreUnavailable,
                format!(
                    "Qdrant at {} is unavailable: {}{} failed after {} attempts over {:.1}s; last error: {}",
                    ctx.url,
                    ctx.what,
                    ctx.on(),
                    retry + 1,
                    start.elapsed().as_secs_f64(),
                    describe_err(&err)
                ),
            )
            .with_source(err));
        }
        let pause = backoff(policy.base_ms, retry).max(server_pause.unwrap_or_default().min(MAX_BACKOFF));
        log::warn!(
            "Qdrant at {}: {}{} failed ({}); retry {}/{} in {:.1}s",
            ctx.url,
            ctx.what,
            ctx.on(),
            describe_err(&err),
            retry + 1,
            policy.max_retries,
            pause.as_secs_f64()
        );
        tokio::time::sleep(pause).await;
        retry += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        let t = |s: tonic::Status| transient(&QdrantError::ResponseError { status: s }).is_some();
        assert!(t(tonic::Status::unavailable("down")));
        assert!(t(tonic::Status::deadline_exceeded("slow")));
        assert!(t(tonic::Status::resource_exhausted("busy")));
        assert!(t(tonic::Status::internal("Failed to connect to http://127.0.0.1:1/: ...")));
        assert!(!t(tonic::Status::internal("segment corrupted")));
        assert!(!t(tonic::Status::invalid_argument("Wrong input: vector dimension")));
        assert!(!t(tonic::Status::not_found("Collection `x` doesn't exist!")));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let a = backoff(100, 0);
        let b = backoff(100, 3);
        assert!(a >= Duration::from_millis(100) && a <= Duration::from_millis(125));
        assert!(b >= Duration::from_millis(800) && b <= Duration::from_millis(1000));
        assert!(backoff(100, 30) <= MAX_BACKOFF + MAX_BACKOFF / 4);
    }
}
