//! The web UI over a real store, as a browser's requests reach it: signing in (form and
//! one-time link), the session cookie, pages and their security headers, CSRF and origin
//! checks on what a cookie may change, view tokens, and Secret values in no page.

use keel_reconciler::http::ui::session::csrf_token;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::api::{Api, api, api_with, pod};

/// A browser: no redirects followed, no credentials but the cookie it is given.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Pod `web-1`, on node `n1`.
fn bound_pod() -> Value {
    let mut bound = pod("default", "web-1", "web");
    bound["spec"]["nodeName"] = json!("n1");
    bound
}

/// The session id in a `keel_session=ID` cookie.
fn session_id(cookie: &str) -> &str {
    cookie.strip_prefix("keel_session=").unwrap()
}

/// A form's body, as a browser encodes it.
fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

fn secret() -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "db", "namespace": "default"},
           "data": {"password": "aHVudGVyMg=="}})
}

impl Api {
    /// Signs in with `token` through the form; the session cookie header.
    async fn sign_in(&self, token: &str) -> String {
        let resp = browser()
            .post(format!("{}/ui/login", self.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[("token", token)]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 303);
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
        cookie.split(';').next().unwrap().to_string()
    }

    async fn page(&self, cookie: Option<&str>, path: &str) -> (u16, HeaderMap, String) {
        let mut request = browser().get(format!("{}{path}", self.url));
        if let Some(c) = cookie {
            request = request.header("Cookie", c);
        }
        let resp = request.send().await.unwrap();
        let (code, headers) = (resp.status().as_u16(), resp.headers().clone());
        (code, headers, resp.text().await.unwrap())
    }
}

#[tokio::test]
async fn signing_in_keeps_the_token_in_a_strict_http_only_cookie() {
    let api = api(vec![pod("default", "web-1", "web"), secret()]).await;
    // Signed out: pages send to the form, script endpoints answer 401.
    let (code, headers, _) = api.page(None, "/").await;
    assert_eq!(
        (code, headers["location"].to_str().unwrap()),
        (303, "/ui/login")
    );
    let (code, _, _) = api.page(None, "/ui/api/tree").await;
    assert_eq!(code, 401);
    let (code, _, login) = api.page(None, "/ui/login").await;
    assert!(code == 200 && login.contains(r#"name="token""#), "{login}");

    // A wrong token is refused, saying so.
    let resp = browser()
        .post(format!("{}/ui/login", api.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("token", "0123.abcd")]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("not accepted by this server")
    );

    // The admin token: a cookie no script reads and no other site sends, then the overview.
    let resp = browser()
        .post(format!("{}/ui/login", api.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("token", api.token())]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"], "/");
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains(api.token()),
        "the cookie holds a session id, not the token"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let (code, headers, overview) = api.page(Some(&cookie), "/").await;
    assert_eq!(code, 200, "{overview}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(overview.contains("Overview") && !overview.contains(api.token()));
    // No inline script or style anywhere: the CSP would block it.
    assert!(
        !overview.contains("<script>") && !overview.contains("style="),
        "{overview}"
    );

    // The script and stylesheet come from the server itself.
    for (asset, kind) in [("ui.js", "text/javascript"), ("ui.css", "text/css")] {
        let (code, headers, _) = api.page(None, &format!("/ui/assets/{asset}")).await;
        assert_eq!(code, 200);
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
    }

    // The tree and the Secret's page name it, never its value.
    let (code, _, tree) = api.page(Some(&cookie), "/ui/api/tree").await;
    assert_eq!(code, 200);
    let rows: Vec<Value> = serde_json::from_str(&tree).unwrap();
    assert!(
        rows.iter().any(|r| r["k"] == "Pod" && r["n"] == "web-1"),
        "{tree}"
    );
    let (code, _, page) = api
        .page(Some(&cookie), "/ui/objects/Secret/default/db")
        .await;
    assert_eq!(code, 200, "{page}");
    for leak in ["hunter2", "aHVudGVyMg=="] {
        assert!(
            !page.contains(leak) && !tree.contains(leak),
            "{leak} shown: {page}"
        );
    }
    assert!(page.contains("password"), "the key is named: {page}");
    let (code, _, missing) = api
        .page(Some(&cookie), "/ui/objects/Pod/default/nope")
        .await;
    assert!(
        code == 404 && missing.contains("no Pod nope in the cluster in namespace default"),
        "{missing}"
    );
    let (code, _, nowhere) = api.page(Some(&cookie), "/ui/objects/Pod/default").await;
    assert!(
        code == 404 && nowhere.contains("has no page at /ui/objects/Pod/default"),
        "{nowhere}"
    );
    let (code, _, bad) = api
        .page(Some(&cookie), "/ui/objects/Gadget/default/x")
        .await;
    assert!(
        code == 404 && bad.contains("keel serves no kind Gadget"),
        "{bad}"
    );
}

#[tokio::test]
async fn a_one_time_link_signs_in_once() {
    let api = api(vec![]).await;
    let made: Value = api
        .client
        .post(format!("{}/api/keel/ui-login", api.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = made["path"].as_str().unwrap();
    assert!(path.starts_with("/ui/login?code="), "{made}");
    let (code, headers, _) = api.page(None, path).await;
    assert_eq!(code, 303);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("keel_session=")
    );
    let (code, _, again) = api.page(None, path).await;
    assert!(code == 401 && again.contains("used already"), "{again}");
    // Only a token's holder makes links.
    let resp = browser()
        .post(format!("{}/api/keel/ui-login", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn a_cookie_changes_something_only_with_the_pages_csrf_token() {
    let api = api(vec![bound_pod()]).await;
    let cookie = api.sign_in(api.token()).await;
    let (_, _, page) = api
        .page(Some(&cookie), "/ui/objects/Pod/default/web-1")
        .await;
    assert!(
        page.contains("Restart pod"),
        "an admin may restart it: {page}"
    );
    let csrf = csrf_token(session_id(&cookie));
    assert!(page.contains(&csrf), "the page carries its CSRF token");
    let delete = |headers: Vec<(&'static str, String)>| {
        let mut request = browser()
            .delete(format!("{}/api/v1/namespaces/default/pods/web-1", api.url))
            .header("Cookie", &cookie);
        for (k, v) in headers {
            request = request.header(k, HeaderValue::from_str(&v).unwrap());
        }
        request.send()
    };
    // Another site's page (a form post, a fetch): no token, refused before any handler.
    let refused = delete(vec![]).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused.text().await.unwrap().contains("CSRF"));
    let foreign = delete(vec![
        ("x-keel-csrf", csrf.clone()),
        ("origin", "http://evil.example".into()),
    ])
    .await
    .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    // The page's own request.
    let done = delete(vec![("x-keel-csrf", csrf.clone())]).await.unwrap();
    assert_eq!(
        done.status().as_u16(),
        200,
        "{}",
        done.text().await.unwrap()
    );

    // Signing out needs the token too; then the cookie is cleared.
    let logout = |csrf: String| {
        browser()
            .post(format!("{}/ui/logout", api.url))
            .header("Cookie", &cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf)]))
            .send()
    };
    assert_eq!(logout("wrong".into()).await.unwrap().status().as_u16(), 403);
    let out = logout(csrf).await.unwrap();
    assert_eq!(out.status().as_u16(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The session is over on the server too: its id, kept somewhere, is worth nothing.
    let (code, _, _) = api.page(Some(&cookie), "/ui/api/tree").await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn a_view_token_reads_every_page_and_changes_nothing() {
    let api = api(vec![bound_pod()]).await;
    let made: Value = api
        .client
        .post(format!("{}/api/keel/tokens", api.url))
        .json(&json!({"role": "view", "ttl": "1h"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let view = made["token"].as_str().unwrap();
    let cookie = api.sign_in(view).await;
    // keel ui with a view token: a link that signs in as that view token.
    let link: Value = browser()
        .post(format!("{}/api/keel/ui-login", api.url))
        .bearer_auth(view)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (code, headers, _) = api.page(None, link["path"].as_str().unwrap()).await;
    assert_eq!(code, 303, "{link}");
    let link_cookie = headers["set-cookie"].to_str().unwrap();
    assert!(link_cookie.starts_with("keel_session=") && !link_cookie.contains(view));
    for path in ["/", "/ui/tree", "/ui/nodes", "/ui/history", "/ui/plan"] {
        let (code, _, page) = api.page(Some(&cookie), path).await;
        assert_eq!(code, 200, "{path}: {page}");
    }
    let (_, _, page) = api
        .page(Some(&cookie), "/ui/objects/Pod/default/web-1")
        .await;
    assert!(
        !page.contains("Restart pod") && !page.contains("Terminal"),
        "no actions for a view token: {page}"
    );
    let refused = browser()
        .delete(format!("{}/api/v1/namespaces/default/pods/web-1", api.url))
        .header("Cookie", &cookie)
        .header("x-keel-csrf", csrf_token(session_id(&cookie)))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
}

#[tokio::test]
async fn anonymous_read_serves_pages_without_signing_in_and_without_actions() {
    let api = api_with(vec![pod("default", "web-1", "web")], true).await;
    let (code, _, page) = api.page(None, "/ui/objects/Pod/default/web-1").await;
    assert_eq!(code, 200, "{page}");
    assert!(
        !page.contains("Restart pod") && !page.contains("Sign out"),
        "{page}"
    );
}
