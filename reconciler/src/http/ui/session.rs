//! Signing in to the web UI, and the session that follows.
//!
//! - Signing in (a pasted token, or `keel ui`'s link) starts a session: a random id the
//!   browser keeps in the cookie [`COOKIE`] (HttpOnly: no script reads it; SameSite=Strict:
//!   no other site's page sends it; Secure over HTTPS), mapped in this server's memory to
//!   the token ([`Sessions`]). The token itself never reaches the browser, and no URL holds
//!   it. Browsers send a host's cookies to all its ports, so a page served on another port
//!   of the same host (a NodePort app) could see the id; it is worth a session of at most
//!   [`SESSION_LIFETIME`] that signing out ends, not the token.
//! - `keel ui` asks for a one-time code ([`OneTimeLogins`]): `/ui/login?code=…` trades it
//!   for a session once, within [`CODE_LIFETIME`].
//! - [`crate::http::auth::cookie_guard`] turns a live session into the request's bearer
//!   token, after checking that a request that changes something carries the session's
//!   CSRF token ([`csrf_token`]) in [`CSRF_HEADER`], and that a request naming an origin
//!   (every WebSocket does) names this server's ([`check_cookie_request`]).

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
/// Sessions kept at once; the oldest ends when more start.
const MAX_SESSIONS: usize = 10_000;
/// How long a one-time sign-in code may wait to be used.
pub const CODE_LIFETIME: Duration = Duration::from_secs(120);
/// Codes waiting at once; the oldest goes when more are asked.
const MAX_CODES: usize = 64;

/// The session id the cookie holds, if the request carries one.
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

/// The CSRF token of a session: an HMAC keyed with its id, so a page of this server can
/// hold it but no other site can compute it.
pub fn csrf_token(session: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(session.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"keel web UI CSRF v1");
    hex::encode(mac.finalize().into_bytes())
}

/// Equal, in constant time.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether a request authenticated by the session cookie may go on: a request that
/// changes something carries the CSRF token, and any request naming an origin (a
/// WebSocket upgrade always names one) comes from this server's: same scheme, same host.
/// `Err` says why not.
///
/// The UI's own forms (sign-in, sign-out) carry no header; sign-out's handler checks the
/// token its form carries, and sign-in uses no session.
pub fn check_cookie_request(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    over_tls: bool,
    session: &str,
) -> Result<(), &'static str> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let upgrade = headers.contains_key(header::UPGRADE);
    match origin {
        Some(origin) if !same_origin(origin, headers, over_tls) => {
            return Err("the request comes from another site's page");
        }
        None if upgrade => return Err("a WebSocket from the web UI must name its origin"),
        _ => {}
    }
    if matches!(*method, Method::GET | Method::HEAD) || matches!(path, "/ui/login" | "/ui/logout") {
        return Ok(());
    }
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match given {
        Some(given) if same(given, &csrf_token(session)) => Ok(()),
        _ => Err("the request lacks the page's CSRF token (reload the page)"),
    }
}

/// `Origin: scheme://host:port` against this connection's scheme and the request's `Host`.
fn same_origin(origin: &str, headers: &HeaderMap, over_tls: bool) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let scheme = if over_tls { "https://" } else { "http://" };
    let origin_host = origin.strip_prefix(scheme);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// `Set-Cookie` for session `id` (`Secure` when the page came over HTTPS).
pub fn session_cookie(id: &str, secure: bool) -> HeaderValue {
    let value = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| cleared_cookie())
}

/// `Set-Cookie` that ends the session.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("keel_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A session: the token it signs in with, until when.
struct Session {
    token: String,
    until: Instant,
}

/// The sessions of this server, by the SHA-256 of their id (a memory dump shows no
/// usable id).
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `token`: its id, for the cookie.
    pub fn start(&self, token: &str) -> Result<String, keel_tls::Error> {
        let id = hex::encode(keel_tls::files::random_bytes::<32>()?);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        live.retain(|_, s| s.until > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.until)
                .map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(
            digest(&id),
            Session {
                token: token.to_string(),
                until: now + SESSION_LIFETIME,
            },
        );
        Ok(id)
    }

    /// The token of live session `id`.
    pub fn token(&self, id: &str) -> Option<String> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(&digest(id))
            .filter(|s| s.until > Instant::now())
            .map(|s| s.token.clone())
    }

    /// Ends session `id` (signing out).
    pub fn end(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(&digest(id));
    }
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
        let session = "5e55";
        let check = |method: Method, headers: &HeaderMap| {
            check_cookie_request(&method, "/api/v1/x", headers, false, session)
        };
        let get = headers(&[("host", "127.0.0.1:8080")]);
        assert!(check(Method::GET, &get).is_ok());
        let delete = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(check(Method::DELETE, &delete).is_err());
        let mut with_csrf = delete.clone();
        with_csrf.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&csrf_token(session)).unwrap(),
        );
        assert!(check(Method::DELETE, &with_csrf).is_ok());
        // Another session's token does not do.
        let mut other = delete.clone();
        other.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&csrf_token("other")).unwrap(),
        );
        assert!(check(Method::DELETE, &other).is_err());
        // Another site's page, even with a token it somehow had; or this host over HTTPS
        // when the server speaks HTTP (and the other way round).
        for origin in ["http://evil.example", "https://127.0.0.1:8080"] {
            let mut foreign = with_csrf.clone();
            foreign.insert("origin", HeaderValue::from_str(origin).unwrap());
            assert!(check(Method::DELETE, &foreign).is_err(), "{origin}");
        }
        assert!(
            check_cookie_request(&Method::DELETE, "/api/v1/x", &with_csrf, true, session).is_err(),
            "an http:// origin on an HTTPS server"
        );
        // A WebSocket without an origin, or from another one.
        let upgrade = headers(&[("host", "h:1"), ("upgrade", "websocket")]);
        assert!(check(Method::GET, &upgrade).is_err());
        let mut ours = upgrade.clone();
        ours.insert("origin", HeaderValue::from_static("http://h:1"));
        assert!(check(Method::GET, &ours).is_ok());
        // Only sign-in and sign-out go without the header (their forms carry no header).
        let post = headers(&[("host", "h:1")]);
        for (path, ok) in [
            ("/ui/logout", true),
            ("/ui/login", true),
            ("/ui/other", false),
        ] {
            let checked = check_cookie_request(&Method::POST, path, &post, false, session);
            assert_eq!(checked.is_ok(), ok, "{path}");
        }
    }

    #[test]
    fn a_session_holds_its_token_until_it_ends() {
        let sessions = Sessions::default();
        let id = sessions.start("admin-token").unwrap();
        assert_eq!(sessions.token(&id).as_deref(), Some("admin-token"));
        assert_eq!(sessions.token("not-a-session"), None);
        sessions.end(&id);
        assert_eq!(sessions.token(&id), None);
    }

    #[test]
    fn a_code_signs_in_once() {
        let logins = OneTimeLogins::default();
        let code = logins.issue("admin-token").unwrap();
        assert_eq!(logins.redeem("wrong"), None);
        assert_eq!(logins.redeem(&code).as_deref(), Some("admin-token"));
        assert_eq!(logins.redeem(&code), None, "used");
    }
}
