//! The HTTP request each target gets for an event, built without sending it (so tests can
//! check them against the services' documented APIs): a signed JSON webhook, GitHub's
//! `POST /repos/{owner}/{repo}/statuses/{sha}`, GitLab's
//! `POST /api/v4/projects/{id}/statuses/{sha}`.

use hmac::{Hmac, KeyInit, Mac};
use keel_schema::repo_config::{CommitStatusTarget, NotifyEvent, NotifyTarget};
use serde_json::json;
use sha2::Sha256;

/// What happened to which commit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    pub event: NotifyEvent,
    pub branch: String,
    pub commit: String,
    pub message: String,
    pub author: String,
    /// Why a revision failed (located errors), or what is not Healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub time: String,
}

/// A request, ready to send. `Debug` leaves the headers out (they hold tokens).
#[derive(Clone, PartialEq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The request `target` gets for `event`, with `secret` (the HMAC key or the token read
/// from its file). `None` when the target does not report this event.
pub fn build(target: &NotifyTarget, event: &Event, secret: Option<&str>) -> Option<Request> {
    if !target.wants(event.event) {
        return None;
    }
    if let Some(w) = &target.webhook {
        return Some(webhook(&w.url, event, secret));
    }
    if let Some(g) = &target.github {
        return commit_status(g, event, secret.unwrap_or_default(), Service::GitHub);
    }
    let g = target.gitlab.as_ref()?;
    commit_status(g, event, secret.unwrap_or_default(), Service::GitLab)
}

fn webhook(url: &str, event: &Event, key: Option<&str>) -> Request {
    let body = serde_json::to_vec(event).unwrap_or_default();
    let mut headers = vec![
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), "keel".into()),
        ("X-Keel-Event".into(), event.event.as_str().into()),
    ];
    if let Some(key) = key
        && let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes())
    {
        mac.update(&body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        headers.push(("X-Keel-Signature".into(), format!("sha256={hex}")));
    }
    Request {
        url: url.to_string(),
        headers,
        body,
    }
}

#[derive(Clone, Copy)]
enum Service {
    GitHub,
    GitLab,
}

fn commit_status(
    target: &CommitStatusTarget,
    event: &Event,
    token: &str,
    service: Service,
) -> Option<Request> {
    let context = target.context.as_deref().unwrap_or("keel");
    // The commit status each event sets; `applied` leaves it pending until Healthy.
    let (github, gitlab, what) = match event.event {
        NotifyEvent::Started => ("pending", "running", "applying".to_string()),
        NotifyEvent::Applied => (
            "pending",
            "running",
            "applied; waiting for every object to be Healthy".into(),
        ),
        NotifyEvent::Healthy => ("success", "success", "applied and Healthy".into()),
        NotifyEvent::Failed => (
            "failure",
            "failed",
            format!("not applied: {}", event.detail.as_deref().unwrap_or("")),
        ),
        NotifyEvent::Degraded => (
            "failure",
            "failed",
            format!("Degraded: {}", event.detail.as_deref().unwrap_or("")),
        ),
    };
    // GitHub takes at most 140 characters of description.
    let description: String = what.chars().take(140).collect();
    match service {
        Service::GitHub => {
            let base = target
                .url
                .as_deref()
                .unwrap_or("https://api.github.com")
                .trim_end_matches('/');
            let body = json!({"state": github, "description": description, "context": context});
            Some(Request {
                url: format!(
                    "{base}/repos/{}/statuses/{}",
                    target.repository, event.commit
                ),
                headers: vec![
                    ("Accept".into(), "application/vnd.github+json".into()),
                    ("Authorization".into(), format!("Bearer {token}")),
                    ("X-GitHub-Api-Version".into(), "2022-11-28".into()),
                    ("Content-Type".into(), "application/json".into()),
                    ("User-Agent".into(), "keel".into()),
                ],
                body: serde_json::to_vec(&body).unwrap_or_default(),
            })
        }
        // GitLab refuses a status the commit already has (running → running).
        Service::GitLab if event.event == NotifyEvent::Applied => None,
        Service::GitLab => {
            let base = target
                .url
                .as_deref()
                .unwrap_or("https://gitlab.com")
                .trim_end_matches('/');
            // A project path goes URL-encoded in place of the numeric ID.
            let project = target.repository.replace('/', "%2F");
            let body = json!({"state": gitlab, "name": context, "description": description});
            Some(Request {
                url: format!("{base}/api/v4/projects/{project}/statuses/{}", event.commit),
                headers: vec![
                    ("PRIVATE-TOKEN".into(), token.to_string()),
                    ("Content-Type".into(), "application/json".into()),
                    ("User-Agent".into(), "keel".into()),
                ],
                body: serde_json::to_vec(&body).unwrap_or_default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_schema::repo_config::WebhookTarget;

    fn event(kind: NotifyEvent, detail: Option<&str>) -> Event {
        Event {
            event: kind,
            branch: "main".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            message: "web 2".into(),
            author: "Dev".into(),
            detail: detail.map(str::to_string),
            time: "2026-12-05T10:00:00Z".into(),
        }
    }

    fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn github_gets_the_commit_status_its_rest_api_documents() {
        let target = NotifyTarget {
            github: Some(CommitStatusTarget {
                url: Some("https://ghe.example.com/api/v3/".into()),
                repository: "org/shop".into(),
                token: "gh-token".into(),
                context: None,
            }),
            ..Default::default()
        };
        let failed = build(
            &target,
            &event(NotifyEvent::Failed, Some(&"x".repeat(300))),
            Some("s3cret"),
        )
        .unwrap();
        assert_eq!(
            failed.url,
            "https://ghe.example.com/api/v3/repos/org/shop/statuses/0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(header(&failed, "Authorization"), Some("Bearer s3cret"));
        assert_eq!(
            header(&failed, "Accept"),
            Some("application/vnd.github+json")
        );
        assert_eq!(header(&failed, "X-GitHub-Api-Version"), Some("2022-11-28"));
        let body: serde_json::Value = serde_json::from_slice(&failed.body).unwrap();
        assert_eq!(body["state"], "failure");
        assert_eq!(body["context"], "keel");
        assert_eq!(
            body["description"].as_str().unwrap().chars().count(),
            140,
            "GitHub's limit"
        );
        let started = build(&target, &event(NotifyEvent::Started, None), Some("s3cret")).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&started.body).unwrap()["state"],
            "pending"
        );
        let healthy = build(&target, &event(NotifyEvent::Healthy, None), Some("s3cret")).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&healthy.body).unwrap()["state"],
            "success"
        );
        assert!(
            !format!("{failed:?}").contains("s3cret"),
            "Debug hides the token"
        );
    }

    #[test]
    fn gitlab_gets_the_commit_status_its_api_documents() {
        let target = NotifyTarget {
            gitlab: Some(CommitStatusTarget {
                url: None,
                repository: "group/sub/shop".into(),
                token: "gl-token".into(),
                context: Some("deploy/prod".into()),
            }),
            events: Some(vec![NotifyEvent::Failed, NotifyEvent::Healthy]),
            ..Default::default()
        };
        assert!(
            build(&target, &event(NotifyEvent::Started, None), Some("t")).is_none(),
            "not asked for"
        );
        let r = build(&target, &event(NotifyEvent::Healthy, None), Some("glpat")).unwrap();
        assert_eq!(
            r.url,
            "https://gitlab.com/api/v4/projects/group%2Fsub%2Fshop/statuses/0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(header(&r, "PRIVATE-TOKEN"), Some("glpat"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"state": "success", "name": "deploy/prod", "description": "applied and Healthy"})
        );
    }

    #[test]
    fn webhooks_carry_the_event_signed_with_hmac_sha256() {
        let target = NotifyTarget {
            webhook: Some(WebhookTarget {
                url: "http://hooks.example.com/keel".into(),
                secret: Some("key".into()),
            }),
            ..Default::default()
        };
        let r = build(&target, &event(NotifyEvent::Applied, None), Some("the-key")).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["event"], "applied");
        assert_eq!(body["commit"], "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(header(&r, "X-Keel-Event"), Some("applied"));
        // Checked as a receiver checks it: HMAC-SHA256 of the exact body with the shared key.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"the-key").unwrap();
        mac.update(&r.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            header(&r, "X-Keel-Signature"),
            Some(format!("sha256={want}").as_str())
        );
        let unsigned = build(&target, &event(NotifyEvent::Applied, None), None).unwrap();
        assert_eq!(header(&unsigned, "X-Keel-Signature"), None);
    }
}
