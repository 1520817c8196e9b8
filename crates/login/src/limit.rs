//! Per-client rate limits on the sign-in routes (`/login`, the callback, `/logout`), with tower_governor.
//!
//! The client is the socket's peer address (axum's `ConnectInfo`), or — only when that peer is one of the
//! configured trusted proxies — the address the proxies name in `X-Forwarded-For` or `Forwarded`: the rightmost one
//! that is not itself a trusted proxy (addresses further left were written by the client and prove nothing).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use ipnet::IpNet;
use serde::Deserialize;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::{Error, ErrorPage};

/// The `[login.rate_limit]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Requests to the sign-in routes one client may make per minute, sustained (default 60).
    pub per_minute: u32,
    /// Requests one client may make at once before the limit applies (default 20).
    pub burst: u32,
    /// Proxies (addresses or networks, e.g. `10.0.0.0/8`) whose forwarded header names the client; from any other
    /// peer it is ignored (default none).
    pub trusted_proxies: Vec<IpNet>,
    /// Which header the trusted proxies write: `x-forwarded-for` (default; nginx's `$proxy_add_x_forwarded_for`) or
    /// `forwarded` (RFC 7239). Only that one is read: the other may come from the client untouched.
    pub forwarded_header: ForwardedHeader,
}

/// The header trusted proxies name the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …`.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self { per_minute: 60, burst: 20, trusted_proxies: Vec::new(), forwarded_header: ForwardedHeader::default() }
    }
}

/// Whether `peer` is in one of `proxies`.
fn among(proxies: &[IpNet], peer: IpAddr) -> bool {
    proxies.iter().any(|net| net.contains(&peer))
}

impl RateLimitSettings {
    /// Whether `peer` (a socket's peer address) is one of the trusted proxies, whose forwarded headers (and
    /// request ids) count.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        among(&self.trusted_proxies, peer)
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.per_minute == 0 || self.burst == 0 {
            return Err(Error::Config("login.rate_limit.per_minute and burst must be positive".into()));
        }
        Ok(())
    }
}

/// Who a request comes from, as the rate limit counts it.
#[derive(Debug, Clone)]
pub(crate) struct ClientAddress {
    trusted: Arc<[IpNet]>,
    header: ForwardedHeader,
}

/// The key of requests whose peer is unknown (served without `ConnectInfo`): they share one limit.
const UNKNOWN_PEER: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl ClientAddress {
    fn trusts(&self, ip: IpAddr) -> bool {
        among(&self.trusted, ip)
    }

    /// The client's address: the peer, or the address trusted proxies name for it.
    pub(crate) fn of<T>(&self, request: &Request<T>) -> IpAddr {
        let Some(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()) else {
            return UNKNOWN_PEER;
        };
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded = forwarded_chain(request.headers(), self.header);
        // Right to left: the nearest hop first; the first address not ours is the client as our proxies saw it.
        forwarded.into_iter().rev().find(|ip| !self.trusts(*ip)).unwrap_or(peer)
    }
}

/// The addresses of the configured header, left to right: `Forwarded: for=` (RFC 7239) or `X-Forwarded-For`.
/// Entries that are not addresses (`unknown`, obfuscated names) are skipped.
fn forwarded_chain(headers: &axum::http::HeaderMap, which: ForwardedHeader) -> Vec<IpAddr> {
    let values = |name| headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    match which {
        ForwardedHeader::Forwarded => values(header::FORWARDED)
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"'))).flatten()
                })
            })
            .collect(),
        ForwardedHeader::XForwardedFor => {
            values(header::HeaderName::from_static("x-forwarded-for")).filter_map(|v| parse_node(v.trim())).collect()
        }
    }
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    node.strip_prefix('[').and_then(|rest| rest.split(']').next()).and_then(|ip| ip.parse().ok())
}

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<Self::Key, GovernorError> {
        Ok(self.of(request))
    }
}

/// The rate-limiting layer of the sign-in routes.
pub(crate) type Limit = GovernorLayer<ClientAddress, NoOpMiddleware, Body>;

/// The layer, and a task that forgets clients that have gone quiet (once a minute, while the layer lives).
pub(crate) fn layer(settings: &RateLimitSettings) -> Result<Limit, Error> {
    settings.check()?;
    let per_request = Duration::from_secs(60) / settings.per_minute;
    let config = GovernorConfigBuilder::default()
        .period(per_request.max(Duration::from_millis(1)))
        .burst_size(settings.burst)
        .key_extractor(ClientAddress {
            trusted: settings.trusted_proxies.clone().into(),
            header: settings.forwarded_header,
        })
        .finish()
        .ok_or_else(|| Error::Config("login.rate_limit cannot work".into()))?;
    let config = Arc::new(config);
    forget_quiet_clients(Arc::downgrade(&config));
    Ok(GovernorLayer::new(config).error_handler(too_many))
}

fn forget_quiet_clients(config: Weak<GovernorConfig<ClientAddress, NoOpMiddleware>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.tick().await;
        loop {
            every.tick().await;
            let Some(config) = config.upgrade() else { return };
            config.limiter().retain_recent();
            config.limiter().shrink_to_fit();
        }
    });
}

/// The 429 page, with `Retry-After`.
fn too_many(error: GovernorError) -> Response<Body> {
    let wait = match error {
        GovernorError::TooManyRequests { wait_time, .. } => wait_time.max(1),
        _ => 1,
    };
    crate::noise::limited(wait);
    let mut response = ErrorPage::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "There have been too many sign-in requests from your network. Please wait a moment and try again.",
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut request = Request::builder().uri("/login");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(()).expect("request");
        request.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().expect("peer")));
        request
    }

    fn client(trusted: &[&str]) -> ClientAddress {
        ClientAddress {
            trusted: trusted.iter().map(|net| net.parse().expect("net")).collect(),
            header: ForwardedHeader::XForwardedFor,
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let client = client(&["10.0.0.0/8"]);
        let spoofed = request("203.0.113.9:5000", &[("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=1.2.3.4")]);
        assert_eq!(client.of(&spoofed), "203.0.113.9".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_rightmost_first() {
        let client = client(&["10.0.0.0/8"]);
        let via_proxies = request("10.0.0.2:5000", &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.1")]);
        assert_eq!(client.of(&via_proxies), "198.51.100.7".parse::<IpAddr>().expect("ip"), "not the forged 6.6.6.6");
        let rfc = ClientAddress { header: ForwardedHeader::Forwarded, ..client.clone() };
        let forwarded = request("10.0.0.2:5000", &[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")]);
        assert_eq!(rfc.of(&forwarded), "2001:db8::1".parse::<IpAddr>().expect("ip"));
        let nothing = request("10.0.0.2:5000", &[]);
        assert_eq!(client.of(&nothing), "10.0.0.2".parse::<IpAddr>().expect("ip"), "the proxy itself");
    }

    #[test]
    fn only_the_configured_header_counts_so_a_clients_other_header_changes_nothing() {
        let client = client(&["10.0.0.0/8"]);
        let both = request(
            "10.0.0.2:5000",
            &[("x-forwarded-for", "198.51.100.7"), ("forwarded", "for=6.6.6.6")], // the client wrote `Forwarded`
        );
        assert_eq!(client.of(&both), "198.51.100.7".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn without_connect_info_every_request_shares_one_key() {
        let request = Request::builder().uri("/login").body(()).expect("request");
        assert_eq!(client(&[]).of(&request), UNKNOWN_PEER);
    }
}
