//! The browser a person uses on a simulated device to open a web clip: GET pages, submit
//! forms (`application/x-www-form-urlencoded`), follow redirects, and keep cookies as a
//! browser does (by name, scoped to their `Path`, deleted by `Max-Age=0`). Enough for the
//! sign-in portal; not a general browser (no scripts, no cache, one origin's cookies).
//!
//! A clone shares the cookie jar (the same web app). On a device each web clip opens in its
//! own web app with its own jar, which ends with the clip ([`crate::SimDevice::open_web_clip`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::html_form::HtmlForm;
use crate::transport::origin_of;
use crate::{HttpReply, SimError, Transport};

/// Most redirects followed for one navigation.
pub const MAX_REDIRECTS: usize = 5;

/// A page the browser ended on.
#[derive(Debug, Clone)]
pub struct WebPage {
    /// Its URL (after redirects).
    pub url: String,
    /// The final HTTP status.
    pub status: u16,
    /// The body as text (lossy UTF-8).
    pub html: String,
}

impl WebPage {
    /// The page's forms.
    pub fn forms(&self) -> Vec<HtmlForm> {
        crate::html_form::forms(&self.html)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cookie {
    name: String,
    value: String,
    path: String,
}

/// One web app (or browser): a cookie jar over the simulator's shared transport.
#[derive(Debug, Clone)]
pub struct Browser {
    transport: Transport,
    cookies: Arc<Mutex<Vec<Cookie>>>,
}

fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

/// `reference` (an `action` or `Location`) resolved against the page at `base`.
pub fn resolve_url(base: &str, reference: &str) -> Result<String, SimError> {
    if reference.starts_with("http://") || reference.starts_with("https://") {
        return Ok(reference.to_owned());
    }
    if reference.is_empty() {
        return Ok(base.to_owned());
    }
    let origin = origin_of(base)?;
    if reference.starts_with('/') {
        return Ok(format!("{origin}{reference}"));
    }
    let path = path_of(base);
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    Ok(format!("{origin}{dir}{reference}"))
}

/// Percent-encodes one `application/x-www-form-urlencoded` component.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            cookies: Arc::default(),
        }
    }

    fn jar(&self) -> std::sync::MutexGuard<'_, Vec<Cookie>> {
        self.cookies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of cookies held.
    pub fn cookie_count(&self) -> usize {
        self.jar().len()
    }

    /// Empties the cookie jar (its web clip was removed).
    pub fn clear_cookies(&self) {
        self.jar().clear();
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let path = path_of(url);
        let pairs: Vec<String> = self
            .jar()
            .iter()
            .filter(|c| {
                path.starts_with(&c.path)
                    && (c.path.ends_with('/')
                        || path.len() == c.path.len()
                        || path[c.path.len()..].starts_with(['/', '?']))
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn keep_cookies(&mut self, reply: &HttpReply, url: &str) {
        for header in reply.headers.get_all(http::header::SET_COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            let mut parts = text.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut path = path_of(url).to_owned();
            if let Some(i) = path.rfind('/') {
                path.truncate(i.max(1));
            }
            let mut expired = value.is_empty();
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                if k.eq_ignore_ascii_case("path") && v.starts_with('/') {
                    path = v.to_owned();
                } else if k.eq_ignore_ascii_case("max-age") && v.trim().starts_with(['0', '-']) {
                    expired = true;
                }
            }
            let mut jar = self.jar();
            jar.retain(|c| !(c.name == name && c.path == path));
            if !expired {
                jar.push(Cookie {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    path,
                });
            }
        }
    }

    async fn request(
        &mut self,
        method: Method,
        url: &str,
        form: Option<String>,
    ) -> Result<HttpReply, SimError> {
        let cookie = self.cookie_header(url);
        let mut headers: Vec<(&str, &str)> = vec![("Accept", "text/html")];
        if let Some(c) = &cookie {
            headers.push(("Cookie", c.as_str()));
        }
        if form.is_some() {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        let body = form.map_or_else(Bytes::new, Bytes::from);
        let reply = self.transport.send(method, url, &headers, body).await?;
        self.keep_cookies(&reply, url);
        Ok(reply)
    }

    /// Follows redirects from `reply` (an answer for `url`) with GETs, up to [`MAX_REDIRECTS`].
    async fn follow(&mut self, mut url: String, mut reply: HttpReply) -> Result<WebPage, SimError> {
        for _ in 0..=MAX_REDIRECTS {
            if !matches!(reply.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(WebPage {
                    url,
                    status: reply.status,
                    html: String::from_utf8_lossy(&reply.body).into_owned(),
                });
            }
            let location = reply
                .headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| SimError::Portal(format!("{url}: redirect without Location")))?;
            url = resolve_url(&url, location)?;
            reply = self.request(Method::GET, &url, None).await?;
        }
        Err(SimError::Portal(format!(
            "{url}: more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Opens `url` (following redirects).
    pub async fn open(&mut self, url: &str) -> Result<WebPage, SimError> {
        let reply = self.request(Method::GET, url, None).await?;
        self.follow(url.to_owned(), reply).await
    }

    /// Submits `form` of `page` with `typed` values (hidden fields are added, see
    /// [`HtmlForm::submission`]) and follows the redirect. Returns how long the submission
    /// itself took (request sent to answer read, before any redirect) and the page reached.
    pub async fn submit(
        &mut self,
        page: &WebPage,
        form: &HtmlForm,
        typed: &[(&str, &str)],
    ) -> Result<(Duration, WebPage), SimError> {
        let url = resolve_url(&page.url, &form.action)?;
        let encoded = form
            .submission(typed)
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let started = Instant::now();
        let reply = if form.method == "post" {
            self.request(Method::POST, &url, Some(encoded)).await?
        } else {
            let sep = if url.contains('?') { '&' } else { '?' };
            self.request(Method::GET, &format!("{url}{sep}{encoded}"), None)
                .await?
        };
        let took = started.elapsed();
        Ok((took, self.follow(url, reply).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerTrust;

    #[test]
    fn urls_resolve_like_a_browser() {
        let base = "https://h:1/portal/tok?x=1";
        assert_eq!(
            resolve_url(base, "/portal/tok/sign-in").unwrap(),
            "https://h:1/portal/tok/sign-in"
        );
        assert_eq!(
            resolve_url(base, "progress").unwrap(),
            "https://h:1/portal/progress"
        );
        assert_eq!(resolve_url(base, "").unwrap(), base);
        assert_eq!(resolve_url(base, "http://o/p").unwrap(), "http://o/p");
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn cookies_follow_path_and_max_age() {
        let mut b = Browser::new(Transport::new(&ServerTrust::AcceptAny).unwrap());
        let reply = |cookie: &str| {
            let mut headers = http::HeaderMap::new();
            headers.append(http::header::SET_COOKIE, cookie.parse().unwrap());
            HttpReply {
                status: 303,
                headers,
                body: Bytes::new(),
            }
        };
        b.keep_cookies(
            &reply("s=v1; Path=/portal/tok; HttpOnly; SameSite=Strict"),
            "http://h/portal/tok/sign-in",
        );
        assert_eq!(
            b.cookie_header("http://h/portal/tok/progress").as_deref(),
            Some("s=v1")
        );
        assert_eq!(
            b.cookie_header("http://h/portal/tok").as_deref(),
            Some("s=v1")
        );
        assert_eq!(b.cookie_header("http://h/portal/tok2"), None);
        assert_eq!(b.cookie_header("http://h/other"), None);
        b.keep_cookies(
            &reply("s=; Path=/portal/tok; Max-Age=0"),
            "http://h/portal/tok/sign-out",
        );
        assert_eq!(b.cookie_count(), 0);
    }
}
