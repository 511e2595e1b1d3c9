//! Connecting GitLab groups and Azure DevOps organizations as the portal and the browser do:
//! `POST /v1/connect/{gitlab,azure-devops}` → the provider's authorize page (the emulator signs
//! the chosen user in and redirects) → `GET /{provider}/callback` → the outcome page.

use serde_json::Value;

use super::http::{Callback, Resp};
use super::{technician, Stack};

/// `/connect/{gitlab,azure-devops}/done?…`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub org_ids: Vec<String>,
    /// The groups' full paths / organizations' names, in the order of `org_ids`.
    pub orgs: Vec<String>,
    pub repos: u64,
    pub added: u64,
    pub complete: bool,
}

/// What an OAuth callback ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthOutcome {
    Connected(Connected),
    Refused(String),
    Other(String),
}

impl Callback {
    /// The outcome of an OAuth callback for `slug` (`gitlab` or `azure-devops`).
    pub fn oauth_outcome(&self, slug: &str) -> OAuthOutcome {
        if self.status != 303 {
            return OAuthOutcome::Other(format!("status {} ({})", self.status, self.location));
        }
        let (path, query) = self
            .location
            .split_once('?')
            .unwrap_or((&self.location, ""));
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let number = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
        if path == format!("/connect/{slug}/done") {
            let connected = (|| {
                let org_ids: Vec<String> = get("org_ids")?.split(',').map(str::to_string).collect();
                let orgs: Vec<String> = get("org")?.split(", ").map(str::to_string).collect();
                (number("orgs")? == org_ids.len() as u64 && orgs.len() == org_ids.len()).then_some(
                    Connected {
                        org_ids,
                        orgs,
                        repos: number("repos")?,
                        added: number("added")?,
                        complete: get("complete")? == "true",
                    },
                )
            })();
            return connected.map_or_else(
                || OAuthOutcome::Other(self.location.clone()),
                OAuthOutcome::Connected,
            );
        }
        if path == format!("/connect/{slug}/error") {
            if let Some(reason) = get("reason") {
                return OAuthOutcome::Refused(reason);
            }
        }
        OAuthOutcome::Other(self.location.clone())
    }

    #[track_caller]
    pub fn connected(&self, slug: &str) -> Connected {
        match self.oauth_outcome(slug) {
            OAuthOutcome::Connected(c) => c,
            other => panic!("expected /connect/{slug}/done, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn assert_oauth_refused(&self, slug: &str, reason: &str) {
        assert_eq!(
            self.oauth_outcome(slug),
            OAuthOutcome::Refused(reason.to_string()),
            "Location: {}",
            self.location
        );
    }
}

impl Stack {
    /// `POST /v1/connect/{slug}` as `tenant`'s technician, with an optional JSON body.
    pub fn oauth_start(&self, slug: &str, tenant: &str, body: Option<&Value>) -> Resp {
        let jwt = self.portal_jwt(tenant, &technician(tenant));
        let authorization = format!("Bearer {jwt}");
        let mut headers = vec![("authorization", authorization.as_str())];
        let body = body.map(Value::to_string);
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.http.request(
            "POST",
            &format!("{}/v1/connect/{slug}", self.worker),
            &headers,
            body.as_deref(),
        )
    }

    /// The authorize URL of a successful `POST /v1/connect/{slug}`.
    #[track_caller]
    pub fn oauth_connect(&self, slug: &str, tenant: &str, body: Option<&Value>) -> String {
        let resp = self.oauth_start(slug, tenant, body);
        assert_eq!(resp.status, 200, "POST /v1/connect/{slug}: {}", resp.body);
        resp.json()["authorize_url"]
            .as_str()
            .unwrap_or_else(|| panic!("no authorize_url in {}", resp.body))
            .to_string()
    }

    /// Follows the provider's authorize page signed in as `user`: the callback URL the provider
    /// sends the browser to.
    #[track_caller]
    pub fn walk_authorize(&self, authorize_url: &str, user: &str) -> String {
        let resp = self
            .http
            .get(&format!("{authorize_url}&emulator_user={user}"));
        assert_eq!(resp.status, 302, "authorize page: {}", resp.body);
        let location = resp.header("location").expect("authorize Location");
        assert!(
            location.starts_with(&format!("{}/", self.worker)),
            "the authorize page sent the browser to {location}"
        );
        location.to_string()
    }

    /// connect → authorize as `user` → callback.
    pub fn oauth_connect_as(
        &self,
        slug: &str,
        tenant: &str,
        user: &str,
        body: Option<&Value>,
    ) -> Callback {
        let url = self.oauth_connect(slug, tenant, body);
        let callback = self.walk_authorize(&url, user);
        self.callback(&callback)
    }
}
