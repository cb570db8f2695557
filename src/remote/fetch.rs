//! Fetching one URL with the guard applied to every hop and every address.
//!
//! The client resolves host names only through [`GuardedResolver`]: it looks the name up
//! once, checks every address it got, and hands exactly those addresses to the connector, so
//! the connection goes to a checked address and a second lookup (DNS rebinding) cannot
//! happen. IP literals never reach a resolver, so [`check_url`] checks them, with the scheme,
//! before each hop. Redirects are followed here, not by the client, so each one is checked and
//! counted; proxies from the environment are never used (they would connect for us).

use std::error::Error as StdError;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use super::guard::{check_url, AddressPolicy, Refusal, UrlRefusal};
use super::FetchError;
use crate::config::MediaConfig;

/// The most headers a caller may send along.
pub const MAX_HEADERS: usize = 64;

/// Methods a caller may ask for: those that answer with a body.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers a caller may not set: the client owns the connection and the framing (`Host`,
/// hop-by-hop headers, lengths), proxies are never used, and the body is stored as received,
/// so asking for a content coding would store coded bytes.
const RESERVED_HEADERS: [&str; 12] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "accept-encoding",
    "content-encoding",
];

/// Resolves host names to IP addresses. The system resolver in production; tests inject
/// their own to point names wherever they need.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo` on the blocking pool).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A resolved name had an address the policy refuses.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves to a {0} address")]
struct ResolvedToRefused(Refusal);

/// A name could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("the host name could not be resolved")]
struct LookupFailed(#[source] Option<io::Error>);

/// The only resolver the client uses: every address checked before any is returned.
struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let found = self.lookup.lookup(name.as_str());
        let policy = self.policy.clone();
        Box::pin(async move {
            let ips = found.await.map_err(|e| LookupFailed(Some(e)))?;
            if ips.is_empty() {
                return Err(LookupFailed(None).into());
            }
            for ip in &ips {
                policy.check(*ip).map_err(ResolvedToRefused)?;
            }
            // Port 0: the connector puts in the URL's port.
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// What the caller asked to fetch, parsed.
#[derive(Debug, Clone)]
pub struct RemoteRequest {
    url: Url,
    method: Method,
    /// Marked sensitive: never printed by `Debug`.
    headers: HeaderMap,
}

impl RemoteRequest {
    /// Parses the caller's `url`, `method` (default GET) and `headers`. Errors name a header,
    /// never its value: values may carry the caller's secrets.
    pub fn parse(
        url: &str,
        method: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<RemoteRequest, FetchError> {
        let url = Url::parse(url.trim()).map_err(FetchError::BadUrl)?;
        let method = match method.map(str::trim).filter(|m| !m.is_empty()) {
            None => Method::GET,
            Some(m) => {
                let upper = m.to_ascii_uppercase();
                if !METHODS.contains(&upper.as_str()) {
                    return Err(FetchError::BadMethod);
                }
                Method::from_bytes(upper.as_bytes()).map_err(|_| FetchError::BadMethod)?
            }
        };
        if headers.len() > MAX_HEADERS {
            return Err(FetchError::BadHeader(format!(
                "At most {MAX_HEADERS} headers can be sent"
            )));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                FetchError::BadHeader("A header name is not a valid HTTP header name".into())
            })?;
            if RESERVED_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("proxy-") {
                return Err(FetchError::HeaderNotAllowed(name.to_string()));
            }
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                FetchError::BadHeader(format!(
                    "The value of header `{name}` is not a valid header value"
                ))
            })?;
            value.set_sensitive(true);
            map.append(name, value);
        }
        Ok(RemoteRequest {
            url,
            method,
            headers: map,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn method(&self) -> &Method {
        &self.method
    }
}

/// A successful answer, its body not read yet.
pub struct Fetched {
    /// The URL after redirects.
    pub url: Url,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    pub content_length: Option<u64>,
    /// The body as it arrives; fails with [`FetchError::Timeout`] when the deadline passes.
    pub body: BoxStream<'static, Result<Bytes, FetchError>>,
}

/// How long, how far and how much.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the whole fetch: every hop, and the body to its last byte.
    pub timeout: Duration,
    pub max_redirects: u32,
    /// A larger `Content-Length` is refused before the body is read.
    pub max_size: u64,
}

pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    limits: Limits,
}

impl Fetcher {
    /// The fetcher the config describes, resolving with the system resolver.
    pub fn from_config(media: &MediaConfig) -> Result<Fetcher, FetchError> {
        let c = &media.from_url;
        let policy = AddressPolicy {
            allow_private: c.allow_private,
            allowed: c.allowed_addresses.clone(),
        };
        let limits = Limits {
            timeout: Duration::from_secs(c.timeout_s),
            max_redirects: c.max_redirects,
            max_size: media.max_file_size,
        };
        Fetcher::new(policy, limits, Arc::new(SystemLookup))
    }

    pub fn new(
        policy: AddressPolicy,
        limits: Limits,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Fetcher, FetchError> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                lookup,
                policy: policy.clone(),
            }))
            // Each fetch makes its own connections, each one checked when it is made.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("flextype/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(FetchError::Client)?;
        Ok(Fetcher {
            client,
            policy,
            limits,
        })
    }

    /// Fetches the URL, following at most `max_redirects` redirects, each checked. The
    /// caller's headers go only to the URL's own origin: from the first redirect to another
    /// origin on, they are left out (as browsers drop `Authorization`).
    pub async fn fetch(&self, request: RemoteRequest) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + self.limits.timeout;
        let origin = request.url.origin();
        let RemoteRequest {
            mut url,
            mut method,
            headers,
        } = request;
        let mut forward_headers = true;
        let mut redirects = 0u32;
        loop {
            let blocked = |why| {
                if redirects == 0 {
                    FetchError::NotAllowed(why)
                } else {
                    FetchError::RedirectNotAllowed(why)
                }
            };
            check_url(&url, &self.policy).map_err(blocked)?;
            let host = url.host_str().unwrap_or_default().to_string();
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.timeout());
            }
            let mut builder = self
                .client
                .request(method.clone(), url.clone())
                .timeout(remaining);
            if forward_headers {
                builder = builder.headers(headers.clone());
            }
            let response = match builder.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(match find::<ResolvedToRefused>(&e) {
                        Some(r) => blocked(UrlRefusal::ResolvesTo(r.0)),
                        None => self.failure(e, &host),
                    })
                }
            };
            let status = response.status();
            if is_redirect(status) {
                if let Some(location) = response.headers().get(header::LOCATION) {
                    if redirects >= self.limits.max_redirects {
                        return Err(FetchError::TooManyRedirects(self.limits.max_redirects));
                    }
                    let next = location
                        .to_str()
                        .ok()
                        .and_then(|l| url.join(l).ok())
                        .ok_or_else(|| FetchError::BadRedirect(host.clone()))?;
                    redirects += 1;
                    if next.origin() != origin {
                        forward_headers = false;
                    }
                    if status == StatusCode::SEE_OTHER
                        || (method == Method::POST
                            && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
                    {
                        method = Method::GET;
                    }
                    url = next;
                    continue;
                }
            }
            if !status.is_success() {
                return Err(FetchError::Status { host, status });
            }
            if response
                .content_length()
                .is_some_and(|n| n > self.limits.max_size)
            {
                return Err(FetchError::TooLarge(self.limits.max_size));
            }
            let text = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let content_type = text(header::CONTENT_TYPE);
            let content_disposition = text(header::CONTENT_DISPOSITION);
            let content_length = response.content_length();
            let secs = self.limits.timeout.as_secs();
            let body = response
                .bytes_stream()
                .map(move |chunk| {
                    chunk.map_err(|e| {
                        if e.is_timeout() {
                            FetchError::Timeout(secs)
                        } else {
                            log_failure(e, &host);
                            FetchError::Failed(host.clone())
                        }
                    })
                })
                .boxed();
            return Ok(Fetched {
                url,
                content_type,
                content_disposition,
                content_length,
                body,
            });
        }
    }

    fn timeout(&self) -> FetchError {
        FetchError::Timeout(self.limits.timeout.as_secs())
    }

    /// What went wrong on the way to a response, in the caller's terms.
    fn failure(&self, e: reqwest::Error, host: &str) -> FetchError {
        let failure = if e.is_timeout() {
            return self.timeout();
        } else if find::<LookupFailed>(&e).is_some() {
            FetchError::Dns(host.to_string())
        } else if e.is_connect() {
            FetchError::Connect(host.to_string())
        } else {
            FetchError::Failed(host.to_string())
        };
        log_failure(e, host);
        failure
    }
}

/// Logs the cause chain, without the URL: its query may hold a secret.
fn log_failure(e: reqwest::Error, host: &str) {
    let e = e.without_url();
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    tracing::info!(host, error = %chain, "upload from a URL failed");
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// The first error of type `T` in a cause chain.
fn find<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    //! The fetcher against small servers on loopback addresses, with an injected resolver
    //! and a policy that allows exactly `127.0.0.1`: so a first hop can be allowed while
    //! everything else on the machine (`127.0.0.2`, names pointing there) stays refused,
    //! as a public host redirecting inwards would be.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A server answering every request with what `reply` makes of the (lowercased) request
    /// head; stops when dropped.
    struct Upstream {
        port: u16,
        heads: Arc<Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Upstream {
        async fn start(ip: &str, reply: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind((ip, 0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let heads = Arc::new(Mutex::new(Vec::new()));
            let seen = heads.clone();
            let reply = Arc::new(reply);
            let task = tokio::spawn(async move {
                while let Ok((mut conn, _)) = listener.accept().await {
                    let (seen, reply) = (seen.clone(), reply.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.ends_with(b"\r\n\r\n") {
                            match conn.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        // Lowercased, so tests need not care how the client spells names.
                        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                        seen.lock().unwrap().push(head.clone());
                        let _ = conn.write_all(reply(&head).as_bytes()).await;
                        let _ = conn.shutdown().await;
                    });
                }
            });
            Upstream { port, heads, task }
        }

        fn requests(&self) -> usize {
            self.heads.lock().unwrap().len()
        }
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn redirect(to: &str) -> String {
        format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    /// Names → addresses, counting lookups; a name may answer differently the second time.
    #[derive(Default)]
    struct FakeDns {
        names: HashMap<&'static str, Vec<Vec<IpAddr>>>,
        calls: AtomicUsize,
    }

    impl Lookup for Arc<FakeDns> {
        fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self
                .names
                .get(host)
                .map(|answers| answers[n.min(answers.len() - 1)].clone());
            Box::pin(async move {
                answer.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"))
            })
        }
    }

    fn dns(entries: &[(&'static str, &[&[&str]])]) -> Arc<FakeDns> {
        let names = entries
            .iter()
            .map(|(name, answers)| {
                let answers = answers
                    .iter()
                    .map(|ips| ips.iter().map(|ip| ip.parse().unwrap()).collect())
                    .collect();
                (*name, answers)
            })
            .collect();
        Arc::new(FakeDns {
            names,
            calls: AtomicUsize::new(0),
        })
    }

    fn fetcher(dns: &Arc<FakeDns>) -> Fetcher {
        let policy = AddressPolicy {
            allow_private: false,
            allowed: vec!["127.0.0.1".parse().unwrap()],
        };
        let limits = Limits {
            timeout: Duration::from_secs(30),
            max_redirects: 3,
            max_size: 1 << 20,
        };
        Fetcher::new(policy, limits, Arc::new(dns.clone())).unwrap()
    }

    fn request(url: &str) -> RemoteRequest {
        RemoteRequest::parse(url, None, &[]).unwrap()
    }

    async fn body_of(f: Fetched) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = f.body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn an_allowed_name_is_fetched_from_the_address_it_resolved_to() {
        let server = Upstream::start("127.0.0.1", |_| ok("hello")).await;
        let dns = dns(&[("files.test", &[&["127.0.0.1"]])]);
        let url = format!("http://files.test:{}/a.txt", server.port);
        let fetched = fetcher(&dns).fetch(request(&url)).await.unwrap();
        assert_eq!(fetched.url.as_str(), url);
        assert_eq!(body_of(fetched).await, b"hello");
        assert!(server.heads.lock().unwrap()[0].contains("host: files.test"));
    }

    #[tokio::test]
    async fn a_redirect_to_a_name_resolving_to_a_refused_address_is_not_followed() {
        let inner = Upstream::start("127.0.0.2", |_| ok("secret")).await;
        let to = format!("http://inner.test:{}/secret", inner.port);
        let outer = Upstream::start("127.0.0.1", move |_| redirect(&to)).await;
        let dns = dns(&[
            ("outer.test", &[&["127.0.0.1"]]),
            ("inner.test", &[&["127.0.0.2"]]),
        ]);
        let url = format!("http://outer.test:{}/start", outer.port);
        let err = fetcher(&dns).fetch(request(&url)).await.err().unwrap();
        assert!(
            matches!(
                err,
                FetchError::RedirectNotAllowed(UrlRefusal::ResolvesTo(Refusal::Loopback))
            ),
            "{err:?}"
        );
        assert_eq!(err.code(), "url-not-allowed");
        assert_eq!(outer.requests(), 1);
        assert_eq!(inner.requests(), 0, "the refused hop was never contacted");
    }

    #[tokio::test]
    async fn a_redirect_to_a_refused_literal_is_not_followed() {
        let inner = Upstream::start("127.0.0.2", |_| ok("secret")).await;
        let to = format!("http://127.0.0.2:{}/secret", inner.port);
        let outer = Upstream::start("127.0.0.1", move |_| redirect(&to)).await;
        let dns = dns(&[]);
        let url = format!("http://127.0.0.1:{}/start", outer.port);
        let err = fetcher(&dns).fetch(request(&url)).await.err().unwrap();
        assert!(
            matches!(
                err,
                FetchError::RedirectNotAllowed(UrlRefusal::Address(Refusal::Loopback))
            ),
            "{err:?}"
        );
        assert_eq!(inner.requests(), 0);
        for to in ["file:///etc/passwd", "gopher://127.0.0.1:70/_x"] {
            let outer = Upstream::start("127.0.0.1", move |_| redirect(to)).await;
            let url = format!("http://127.0.0.1:{}/start", outer.port);
            let err = fetcher(&dns).fetch(request(&url)).await.err().unwrap();
            assert!(
                matches!(err, FetchError::RedirectNotAllowed(UrlRefusal::Scheme)),
                "{to}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_name_with_any_refused_address_is_refused_before_connecting() {
        let server = Upstream::start("127.0.0.1", |_| ok("x")).await;
        let dns = dns(&[("mixed.test", &[&["127.0.0.1", "10.0.0.1"]])]);
        let url = format!("http://mixed.test:{}/", server.port);
        let err = fetcher(&dns).fetch(request(&url)).await.err().unwrap();
        assert!(
            matches!(
                err,
                FetchError::NotAllowed(UrlRefusal::ResolvesTo(Refusal::Private))
            ),
            "{err:?}"
        );
        assert_eq!(server.requests(), 0);
    }

    #[tokio::test]
    async fn a_name_is_resolved_once_so_a_second_answer_cannot_rebind_it() {
        let server = Upstream::start("127.0.0.1", |_| ok("checked")).await;
        let inner = Upstream::start("127.0.0.2", |_| ok("secret")).await;
        // A rebinding name: allowed on the first lookup, refused on any later one.
        let dns = dns(&[("rebind.test", &[&["127.0.0.1"], &["127.0.0.2"]])]);
        let url = format!("http://rebind.test:{}/", server.port);
        let fetched = fetcher(&dns).fetch(request(&url)).await.unwrap();
        assert_eq!(body_of(fetched).await, b"checked");
        assert_eq!(dns.calls.load(Ordering::SeqCst), 1);
        assert_eq!(inner.requests(), 0);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_an_upstream_failure() {
        let dns = dns(&[]);
        let err = fetcher(&dns)
            .fetch(request("http://nowhere.test/a.jpg"))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, FetchError::Dns(ref h) if h == "nowhere.test"),
            "{err:?}"
        );
        assert_eq!(err.code(), "upstream-failed");
    }

    #[tokio::test]
    async fn caller_headers_go_to_the_same_origin_only() {
        let other = Upstream::start("127.0.0.1", |_| ok("b")).await;
        let to = format!("http://127.0.0.1:{}/b", other.port);
        let first = Upstream::start("127.0.0.1", move |head| {
            if head.starts_with("get /a ") {
                redirect("/same")
            } else {
                redirect(&to)
            }
        })
        .await;
        let dns = dns(&[]);
        let url = format!("http://127.0.0.1:{}/a", first.port);
        let headers = [("X-Api-Key".to_string(), "s3cret".to_string())];
        let req = RemoteRequest::parse(&url, None, &headers).unwrap();
        let fetched = fetcher(&dns).fetch(req).await.unwrap();
        assert_eq!(body_of(fetched).await, b"b");
        let first_heads = first.heads.lock().unwrap().clone();
        assert_eq!(first_heads.len(), 2);
        assert!(first_heads.iter().all(|h| h.contains("x-api-key: s3cret")));
        assert!(!other.heads.lock().unwrap()[0].contains("s3cret"));
    }

    #[tokio::test]
    async fn redirects_are_counted() {
        let server = Upstream::start("127.0.0.1", |head| {
            let path = head.split(' ').nth(1).unwrap_or("/");
            match path.strip_prefix("/r").and_then(|n| n.parse::<u32>().ok()) {
                Some(0) => ok("done"),
                Some(n) => redirect(&format!("/r{}", n - 1)),
                None => ok("?"),
            }
        })
        .await;
        let dns = dns(&[]);
        let url = |n: u32| format!("http://127.0.0.1:{}/r{n}", server.port);
        let fetched = fetcher(&dns).fetch(request(&url(3))).await.unwrap();
        assert_eq!(fetched.url.path(), "/r0");
        let err = fetcher(&dns).fetch(request(&url(4))).await.err().unwrap();
        assert!(matches!(err, FetchError::TooManyRedirects(3)), "{err:?}");
    }

    #[test]
    fn callers_cannot_set_host_framing_or_proxy_headers() {
        for name in [
            "Host",
            "connection",
            "Transfer-Encoding",
            "Content-Length",
            "TE",
            "Upgrade",
            "Keep-Alive",
            "Proxy-Authorization",
            "Accept-Encoding",
        ] {
            let headers = [(name.to_string(), "secret-value".to_string())];
            let err = RemoteRequest::parse("http://x.test/", None, &headers).unwrap_err();
            assert!(matches!(err, FetchError::HeaderNotAllowed(_)), "{name}");
            assert!(!err.to_string().contains("secret-value"));
        }
        let ok = [
            ("Authorization".to_string(), "Bearer t".to_string()),
            ("X-Custom".to_string(), "1".to_string()),
        ];
        RemoteRequest::parse("http://x.test/", None, &ok).unwrap();
    }

    #[test]
    fn bad_header_values_are_reported_without_the_value() {
        let headers = [("X-Key".to_string(), "secret\r\nInjected: 1".to_string())];
        let err = RemoteRequest::parse("http://x.test/", None, &headers).unwrap_err();
        assert_eq!(err.code(), "invalid-header");
        assert!(err.to_string().contains("X-Key") || err.to_string().contains("x-key"));
        assert!(!err.to_string().contains("secret"), "{err}");
        let headers = [("bad name".to_string(), "v".to_string())];
        let err = RemoteRequest::parse("http://x.test/", None, &headers).unwrap_err();
        assert_eq!(err.code(), "invalid-header");
    }

    #[test]
    fn methods_default_to_get_and_exclude_those_without_a_body() {
        let parse = |m| RemoteRequest::parse("http://x.test/", m, &[]);
        assert_eq!(parse(None).unwrap().method(), Method::GET);
        assert_eq!(parse(Some("")).unwrap().method(), Method::GET);
        assert_eq!(parse(Some("post")).unwrap().method(), Method::POST);
        for m in ["HEAD", "TRACE", "CONNECT", "FOO", "G ET"] {
            assert!(matches!(parse(Some(m)), Err(FetchError::BadMethod)), "{m}");
        }
    }

    #[test]
    fn malformed_urls_are_bad_requests() {
        for u in ["", "not a url", "http://", "http://[::1/", "http://a b/"] {
            let err = RemoteRequest::parse(u, None, &[]).unwrap_err();
            assert_eq!(err.code(), "invalid-url", "{u}");
        }
    }
}
