//! A client-side rate limit for the controller's Kubernetes client, as client-go's token bucket
//! (`--qps`, `--burst`): up to `burst` requests go out at once, then requests are spaced to `qps`
//! per second. kube-rs has no such limiter, so [`RateLimitLayer`] is a tower layer for
//! [`kube::client::ClientBuilder::with_layer`].
//!
//! Every request takes one token when it is sent, including a watch (a long-running `GET` with
//! `watch=true`) when it is opened, as in client-go; an open watch holds no token. The limiter
//! waits in `poll_ready`, so requests leave in the order they were made. Time is tokio's, so
//! tests can drive it with a paused clock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// Argo Rollouts' default `--qps`.
pub const DEFAULT_QPS: f32 = 40.0;
/// Argo Rollouts' default `--burst`.
pub const DEFAULT_BURST: u32 = 80;

/// Waits of at least this long are logged, as client-go logs client-side throttling.
const LOGGED_WAIT: Duration = Duration::from_secs(1);

/// Why a rate limit cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitError {
    /// `qps` is zero, negative or not a number.
    #[error("qps must be a positive number, got {0}")]
    Qps(f32),
    /// `burst` is zero.
    #[error("burst must be at least 1")]
    Burst,
}

/// A tower layer limiting requests to `qps` per second with bursts of `burst`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitLayer {
    qps: f64,
    burst: u32,
}

impl RateLimitLayer {
    /// A limit of `qps` requests per second on average, `burst` at once.
    pub fn new(qps: f32, burst: u32) -> Result<Self, RateLimitError> {
        if !(qps.is_finite() && qps > 0.0) {
            return Err(RateLimitError::Qps(qps));
        }
        if burst == 0 {
            return Err(RateLimitError::Burst);
        }
        Ok(Self {
            qps: f64::from(qps),
            burst,
        })
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: TokenBucket::full(self.qps, self.burst, Instant::now()),
            wait: None,
            reserved: false,
        }
    }
}

/// The service of [`RateLimitLayer`]: `inner` behind a token bucket.
#[derive(Debug)]
pub struct RateLimited<S> {
    inner: S,
    bucket: TokenBucket,
    /// The wait for the reserved token, while it is in the future.
    wait: Option<Pin<Box<Sleep>>>,
    /// A token is reserved for the next call.
    reserved: bool,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.reserved {
            let now = Instant::now();
            let ready_at = self.bucket.reserve(now);
            self.reserved = true;
            if ready_at > now {
                let wait = ready_at - now;
                if wait >= LOGGED_WAIT {
                    tracing::info!(
                        wait_ms = wait.as_millis(),
                        "waiting for the client-side rate limit (--qps, --burst)"
                    );
                }
                self.wait = Some(Box::pin(tokio::time::sleep_until(ready_at)));
            }
        }
        if let Some(wait) = self.wait.as_mut() {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.wait = None;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.reserved = false;
        self.inner.call(request)
    }
}

/// client-go's token bucket: `burst` tokens at most, refilled at `qps` per second. A reservation
/// may take the bucket below zero; it is then served once the bucket has refilled to zero.
#[derive(Debug, Clone)]
struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn full(qps: f64, burst: u32, now: Instant) -> Self {
        Self {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refilled_at: now,
        }
    }

    /// Takes one token and returns when the request holding it may be sent.
    fn reserve(&mut self, now: Instant) -> Instant {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.refilled_at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, WatchParams};
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn invalid_limits_are_refused() {
        assert_eq!(
            RateLimitLayer::new(0.0, 10).err(),
            Some(RateLimitError::Qps(0.0))
        );
        assert!(RateLimitLayer::new(-1.0, 10).is_err());
        assert!(RateLimitLayer::new(f32::NAN, 10).is_err());
        assert_eq!(
            RateLimitLayer::new(5.0, 0).err(),
            Some(RateLimitError::Burst)
        );
        assert!(RateLimitLayer::new(DEFAULT_QPS, DEFAULT_BURST).is_ok());
    }

    /// What reached the inner service: milliseconds since the recorder was made, and what.
    #[derive(Clone)]
    struct Recorder {
        start: Instant,
        sent: Arc<Mutex<Vec<(u128, String)>>>,
    }

    impl Recorder {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                sent: Arc::default(),
            }
        }

        fn record(&self, what: String) {
            let at = self.start.elapsed().as_millis();
            self.sent.lock().expect("lock").push((at, what));
        }

        fn times(&self) -> Vec<u128> {
            self.sent
                .lock()
                .expect("lock")
                .iter()
                .map(|(at, _)| *at)
                .collect()
        }

        /// A rate-limited service recording the requests it gets.
        fn service(
            &self,
            qps: f32,
            burst: u32,
        ) -> impl Service<usize, Response = (), Error = std::convert::Infallible> {
            let recorder = self.clone();
            let inner = tower::service_fn(move |request: usize| {
                recorder.record(request.to_string());
                std::future::ready(Ok(()))
            });
            RateLimitLayer::new(qps, burst).expect("limit").layer(inner)
        }
    }

    async fn send(
        service: &mut impl Service<usize, Response = (), Error = std::convert::Infallible>,
        count: usize,
    ) {
        for request in 0..count {
            let ready = service.ready().await.expect("ready");
            ready.call(request).await.expect("call");
        }
    }

    /// `times` are `expected`, give or take the millisecond the paused clock's timers round to.
    fn assert_times(times: &[u128], expected: &[u128]) {
        assert_eq!(times.len(), expected.len(), "{times:?} vs {expected:?}");
        for (index, (at, due)) in times.iter().zip(expected).enumerate() {
            assert!(
                (*due..=due + 1).contains(at),
                "request {index} sent at {at} ms, due at {due} ms: {times:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_beyond_the_burst_are_spaced_to_the_qps() {
        let recorder = Recorder::new();
        let mut service = recorder.service(DEFAULT_QPS, DEFAULT_BURST);
        send(&mut service, 90).await;
        // 80 at once, then one every 25 ms
        let expected: Vec<u128> = std::iter::repeat_n(0, 80)
            .chain((1..=10).map(|k| 25 * k))
            .collect();
        assert_times(&recorder.times(), &expected);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_up_to_the_burst_only() {
        let recorder = Recorder::new();
        let mut service = recorder.service(10.0, 3);
        send(&mut service, 4).await;
        // an hour idle refills the bucket to 3 tokens, not more
        tokio::time::sleep(Duration::from_secs(3600)).await;
        send(&mut service, 4).await;
        let later = 3_600_100;
        assert_times(
            &recorder.times(),
            &[0, 0, 0, 100, later, later, later, later + 100],
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_kube_client_watch_takes_a_token_when_opened() {
        let recorder = Recorder::new();
        let api_server = {
            let recorder = recorder.clone();
            tower::service_fn(move |request: http::Request<kube::client::Body>| {
                let uri = request.uri().to_string();
                recorder.record(uri.clone());
                // a watch whose stream ends at once; a ConfigMap for a GET
                let body = if uri.contains("watch=true") {
                    Vec::new()
                } else {
                    br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#.to_vec()
                };
                std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(
                    kube::client::Body::from(body),
                )))
            })
        };
        let client = kube::client::ClientBuilder::new(api_server, "default")
            .with_layer(&RateLimitLayer::new(1.0, 2).expect("limit"))
            .build();
        let api = Api::<ConfigMap>::namespaced(client, "default");
        let watch = api
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watch");
        drop(watch);
        for _ in 0..3 {
            api.get("c").await.expect("get");
        }
        let sent = recorder.sent.lock().expect("lock").clone();
        assert!(sent[0].1.contains("watch=true"), "{sent:?}");
        assert!(
            sent[1..].iter().all(|(_, uri)| !uri.contains("watch")),
            "{sent:?}"
        );
        // the watch and the first GET use the burst; the others wait a second each
        assert_times(&recorder.times(), &[0, 0, 1000, 2000]);
    }
}
