//! Signing in to the web UI, and the session that follows.
//!
//! - The token (admin or view) is kept by the browser in the cookie [`COOKIE`]: HttpOnly
//!   (no script reads it), SameSite=Strict (no other site's page sends it), Secure over
//!   HTTPS. After sign-in no token appears in a URL.
//! - `keel ui` asks for a one-time code ([`OneTimeLogins`]): `/ui/login?code=…` trades it
//!   for the cookie once, within [`CODE_LIFETIME`], then the code is worthless.
//! - Every request a cookie authenticates that changes something carries the session's
//!   CSRF token ([`csrf_token`], an HMAC of the token that only pages of this server hold)
//!   in [`CSRF_HEADER`] or a form's `csrf` field, and WebSocket upgrades must come from this
//!   server's own origin ([`check_cookie_request`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "keel_session";
/// The header pages send their CSRF token in.
pub const CSRF_HEADER: &str = "x-keel-csrf";
/// How long a session lasts before signing in again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a one-time sign-in code may wait to be used.
pub const CODE_LIFETIME: Duration = Duration::from_secs(120);
/// Codes waiting at once; the oldest goes when more are asked.
const MAX_CODES: usize = 64;

/// The token the session cookie holds, if the request carries one.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session: an HMAC of its token, so a page of this server can hold
/// it but no other site can compute it.
pub fn csrf_token(token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"keel web UI CSRF v1");
    hex::encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether a request authenticated by the session cookie may go on: a request that
/// changes something carries the CSRF token, and any request naming another origin (a
/// WebSocket upgrade always names one) comes from this server's. `Err` says why not.
///
/// The UI's own forms (`/ui/…`: sign-out) carry the token in a field their handler checks,
/// so for them only the origin is checked here.
pub fn check_cookie_request(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), &'static str> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let upgrade = headers.contains_key(header::UPGRADE);
    match origin {
        Some(origin) if !same_origin(origin, headers) => {
            return Err("the request comes from another site's page");
        }
        None if upgrade => return Err("a WebSocket from the web UI must name its origin"),
        _ => {}
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || path.starts_with("/ui/") {
        return Ok(());
    }
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match given {
        Some(given) if same(given, &csrf_token(token)) => Ok(()),
        _ => Err("the request lacks the page's CSRF token (reload the page)"),
    }
}

/// `Origin: http://host:port` against the request's `Host`.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// `Set-Cookie` for a session of `token` (`Secure` when the page came over HTTPS).
pub fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    let value = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| cleared_cookie())
}

/// `Set-Cookie` that ends the session.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("keel_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether `token` can sit in a cookie as it is (tokens are hex and dots; anything else
/// is not a token keel made, and could break the header).
pub fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 512
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// One-time sign-in codes (`keel ui`), by their SHA-256, with the token each signs in as.
#[derive(Default)]
pub struct OneTimeLogins {
    codes: Mutex<HashMap<String, (String, Instant)>>,
}

impl OneTimeLogins {
    /// A new code for `token`; `Err` when the system has no randomness to give.
    pub fn issue(&self, token: &str) -> Result<String, keel_tls::Error> {
        let code = hex::encode(keel_tls::files::random_bytes::<32>()?);
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|_, (_, at)| at.elapsed() < CODE_LIFETIME);
        if codes.len() >= MAX_CODES
            && let Some(oldest) = codes
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            codes.remove(&oldest);
        }
        codes.insert(digest(&code), (token.to_string(), Instant::now()));
        Ok(code)
    }

    /// The token of `code`, once: the code is gone after this, used or expired.
    pub fn redeem(&self, code: &str) -> Option<String> {
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        let (token, at) = codes.remove(&digest(code))?;
        (at.elapsed() < CODE_LIFETIME).then_some(token)
    }
}

fn digest(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; keel_session=abc.def; b=2")]);
        assert_eq!(cookie_token(&h), Some("abc.def"));
        assert_eq!(cookie_token(&headers(&[("cookie", "keel_session=")])), None);
        assert_eq!(cookie_token(&HeaderMap::new()), None);
    }

    #[test]
    fn changes_need_the_csrf_token_and_this_origin() {
        let token = "t0k3n";
        let get = headers(&[("host", "127.0.0.1:8080")]);
        assert!(check_cookie_request(&Method::GET, "/", &get, token).is_ok());
        let delete = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(check_cookie_request(&Method::DELETE, "/api/v1/x", &delete, token).is_err());
        let mut with_csrf = delete.clone();
        with_csrf.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&csrf_token(token)).unwrap(),
        );
        assert!(check_cookie_request(&Method::DELETE, "/api/v1/x", &with_csrf, token).is_ok());
        // Another session's token does not do.
        let mut other = delete.clone();
        other.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&csrf_token("other")).unwrap(),
        );
        assert!(check_cookie_request(&Method::DELETE, "/api/v1/x", &other, token).is_err());
        // Another site's page, even with a token it somehow had.
        let mut foreign = with_csrf.clone();
        foreign.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(check_cookie_request(&Method::DELETE, "/api/v1/x", &foreign, token).is_err());
        // A WebSocket without an origin, or from another one.
        let upgrade = headers(&[("host", "h:1"), ("upgrade", "websocket")]);
        assert!(check_cookie_request(&Method::GET, "/api/v1/x", &upgrade, token).is_err());
        let mut ours = upgrade.clone();
        ours.insert("origin", HeaderValue::from_static("http://h:1"));
        assert!(check_cookie_request(&Method::GET, "/api/v1/x", &ours, token).is_ok());
    }

    #[test]
    fn a_code_signs_in_once() {
        let logins = OneTimeLogins::default();
        let code = logins.issue("admin-token").unwrap();
        assert_eq!(logins.redeem("wrong"), None);
        assert_eq!(logins.redeem(&code).as_deref(), Some("admin-token"));
        assert_eq!(logins.redeem(&code), None, "used");
    }

    #[test]
    fn cookies_hold_only_token_characters() {
        assert!(cookie_safe("0123abcd.ef"));
        assert!(!cookie_safe("a; Path=/evil"));
        assert!(!cookie_safe(""));
    }
}
