//! The HTTP client through which every provider call goes: no redirects, a timeout, a body-size cap.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Why an HTTP call to the provider failed. Its messages name no URL query, header or body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The call took longer than the configured timeout.
    #[error("the provider did not answer in time")]
    Timeout,
    /// Connection refused, reset, TLS failure and the like.
    #[error("the provider could not be reached")]
    Transport(#[source] reqwest::Error),
    /// A 5xx answer (or a redirect, which is never followed).
    #[error("the provider answered with HTTP status {0}")]
    Status(u16),
    /// The body was larger than `max_response_bytes`.
    #[error("the provider's answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The request could not be built (a bug, or a bad URL in the discovery document).
    #[error("the request to the provider could not be built")]
    Build,
}

/// A reqwest client that never follows redirects, gives up after a timeout and stops reading past a size cap.
#[derive(Clone)]
pub(crate) struct HttpClient {
    inner: reqwest::Client,
    timeout: Duration,
    max_bytes: usize,
}

impl HttpClient {
    pub(crate) fn new(timeout: Duration, max_bytes: usize) -> Result<Self, reqwest::Error> {
        let inner = reqwest::Client::builder()
            // Following redirects would let whoever controls a provider URL point us anywhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self { inner, timeout, max_bytes })
    }

    pub(crate) async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request).map_err(|_| HttpError::Build)?;
        // The endpoint by its path (discovery, keys, token, userinfo): a few values per provider.
        let endpoint = request.url().path().to_owned();
        let started = std::time::Instant::now();
        // reqwest's own timeout covers the body too, but the outer one makes the bound obvious.
        let result = match tokio::time::timeout(self.timeout, self.fetch(request)).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(HttpError::Timeout) => "timeout",
            Err(_) => "error",
        };
        metrics::histogram!("signin_provider_request_seconds", "endpoint" => endpoint, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn fetch(&self, request: reqwest::Request) -> Result<HttpResponse, HttpError> {
        let mut response = self.inner.execute(request).await.map_err(transport)?;
        let status = response.status();
        // 5xx means "the provider is broken", whatever JSON it carries; a redirect is never followed. Both are
        // errors here so that oauth2 cannot read a 5xx `{"error": ...}` body as a rejection of our request.
        if status.is_server_error() || status.is_redirection() {
            return Err(HttpError::Status(status.as_u16()));
        }
        if response.content_length().is_some_and(|len| len > self.max_bytes as u64) {
            return Err(HttpError::TooLarge(self.max_bytes));
        }
        let mut builder = http::Response::builder().status(status.as_u16()).version(response.version());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        // Read chunk by chunk so that a provider without Content-Length cannot make us buffer without limit.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(HttpError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(|_| HttpError::Build)
    }
}

fn transport(err: reqwest::Error) -> HttpError {
    if err.is_timeout() { HttpError::Timeout } else { HttpError::Transport(err.without_url()) }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}
