//! The connect callbacks' inputs and outcomes (DESIGN.md flow 2), pure: GitHub's setup callback
//! and the OAuth callbacks of GitLab and Azure DevOps, which end the same ways.
//!
//! GitHub sends the browser to `GET /github/setup?installation_id=…&setup_action=…&state=…`.
//! `setup_action` is `install` or `update` (with an installation id) or `request` (no id: an org
//! owner must approve). Every way the callback can end is a [`SetupOutcome`]; the browser is
//! sent with a 303 to the portal (`{PORTAL_URL}/connect/{provider}/{done,pending,error}`, the
//! provider being `github`, `gitlab` or `azure-devops`) or, when no portal is configured, to the
//! gateway's own pages at the same paths (see `pages`).

use crate::provider::Provider;
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupAction {
    Install(u64),
    /// The owner changed the installation (e.g. repository selection): a sync of that org.
    Update(u64),
    /// Installation requested; an organization owner has to approve it.
    Request,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupParams {
    pub action: SetupAction,
    pub state: String,
    /// The OAuth code GitHub adds when the App requests user authorization during installation:
    /// it identifies the GitHub user who clicked through. As sent: see [`SetupParams::usable_code`].
    pub code: Option<String>,
}

/// Longest OAuth code accepted (GitHub's are 20 characters).
pub const MAX_CODE_LEN: usize = 256;

/// What an install callback can show about who came back from GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership<'a> {
    /// OAuth during installation: this code's user must list the installation.
    Code(&'a str),
    /// Development only (`ALLOW_UNVERIFIED_INSTALLATIONS`, no OAuth configured): nothing.
    Unverified,
}

impl SetupParams {
    /// How an `install` / `update` callback proves the returning user can access the
    /// installation: with OAuth configured, a usable code (else `InstallationForbidden`);
    /// without it, refused as `Misconfigured` unless unverified installations are allowed.
    pub fn ownership(&self, oauth: bool, allow_unverified: bool) -> Result<Ownership<'_>, Refusal> {
        match (oauth, allow_unverified) {
            (true, _) => self
                .usable_code()
                .map(Ownership::Code)
                .ok_or(Refusal::InstallationForbidden),
            (false, true) => Ok(Ownership::Unverified),
            (false, false) => Err(Refusal::Misconfigured),
        }
    }

    /// The code when it can be one: present, non-empty, at most `MAX_CODE_LEN` bytes of
    /// visible ASCII. Anything else cannot vouch for anyone.
    pub fn usable_code(&self) -> Option<&str> {
        self.code.as_deref().filter(|c| {
            !c.is_empty() && c.len() <= MAX_CODE_LEN && c.bytes().all(|b| b.is_ascii_graphic())
        })
    }
}

/// Why a callback did not connect anything. The code goes into the redirect (`reason=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingParameters,
    StateExpired,
    StateInvalid,
    StateUsed,
    InstallationUnknown,
    /// The installation is already connected to another tenant.
    InstallationClaimed,
    /// The installation is suspended on GitHub: no token can be minted for it.
    InstallationSuspended,
    /// The GitHub user who came back from the install page cannot access that installation
    /// (a spoofed `installation_id`).
    InstallationForbidden,
    GitHubUnavailable,
    /// OAuth: the technician declined on the provider's consent page (or it sent an error).
    AuthorizationDenied,
    /// OAuth: the provider refused the code (expired, used, or a PKCE verifier mismatch).
    AuthorizationRefused,
    /// OAuth: GitLab / Microsoft / Azure DevOps did not answer usefully.
    ProviderUnavailable,
    /// OAuth: the signed-in account can read no group / organization.
    NothingToConnect,
    /// OAuth: a group the technician chose does not exist or cannot be read by that account.
    GroupNotFound,
    Misconfigured,
    Internal,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::MissingParameters => "missing_parameters",
            Refusal::StateExpired => "state_expired",
            Refusal::StateInvalid => "state_invalid",
            Refusal::StateUsed => "state_used",
            Refusal::InstallationUnknown => "installation_unknown",
            Refusal::InstallationClaimed => "installation_claimed",
            Refusal::InstallationSuspended => "installation_suspended",
            Refusal::InstallationForbidden => "installation_forbidden",
            Refusal::GitHubUnavailable => "github_unavailable",
            Refusal::AuthorizationDenied => "authorization_denied",
            Refusal::AuthorizationRefused => "authorization_refused",
            Refusal::ProviderUnavailable => "provider_unavailable",
            Refusal::NothingToConnect => "nothing_to_connect",
            Refusal::GroupNotFound => "group_not_found",
            Refusal::Misconfigured => "misconfigured",
            Refusal::Internal => "internal",
        }
    }

    pub fn from_code(code: &str) -> Option<Refusal> {
        ALL_REFUSALS.iter().copied().find(|r| r.code() == code)
    }

    /// What the technician reads, and what to do about it.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::MissingParameters => "GitHub sent an incomplete answer. Start the connection again from the portal.",
            Refusal::StateExpired => "The link expired (connections must be finished within 10 minutes). Start again from the portal.",
            Refusal::StateInvalid => "This connection link is not valid. Start again from the portal.",
            Refusal::StateUsed => "This connection link was already used. Start again from the portal if the organization is not connected.",
            Refusal::InstallationUnknown => "GitHub does not know this installation. Start again from the portal.",
            Refusal::InstallationClaimed => "This GitHub installation is already connected to another account. Contact support if this is unexpected.",
            Refusal::InstallationSuspended => "The GitHub App is suspended on this organization. Unsuspend it in the organization's GitHub settings, then start again from the portal.",
            Refusal::InstallationForbidden => "Your GitHub account cannot access this installation. Start again from the portal and install the App from the organization you administer.",
            Refusal::GitHubUnavailable => "GitHub did not answer in time. Nothing was saved; start again from the portal in a few minutes.",
            Refusal::AuthorizationDenied => "Access was not granted on the sign-in page. Start again from the portal and approve the access OneCode asks for.",
            Refusal::AuthorizationRefused => "The sign-in could not be completed (the authorization expired or was already used). Nothing was saved; start again from the portal.",
            Refusal::ProviderUnavailable => "GitLab or Azure DevOps did not answer in time. Nothing was saved; start again from the portal in a few minutes.",
            Refusal::NothingToConnect => "The account you signed in with cannot read any group or organization (GitLab needs Reporter access or more to a top-level group; Azure DevOps, membership of an organization). Nothing was saved.",
            Refusal::GroupNotFound => "A group or organization you chose does not exist, or the account you signed in with cannot read it. Nothing was saved; check the names and start again.",
            Refusal::Misconfigured => "The gateway is not fully configured (for GitHub: OAuth during installation must be on, so that it can check who installed the App). An operator has been told; try again later.",
            Refusal::Internal => "Something went wrong on our side. Nothing was lost; try again.",
        }
    }
}

const ALL_REFUSALS: [Refusal; 16] = [
    Refusal::MissingParameters,
    Refusal::StateExpired,
    Refusal::StateInvalid,
    Refusal::StateUsed,
    Refusal::InstallationUnknown,
    Refusal::InstallationClaimed,
    Refusal::InstallationSuspended,
    Refusal::InstallationForbidden,
    Refusal::GitHubUnavailable,
    Refusal::AuthorizationDenied,
    Refusal::AuthorizationRefused,
    Refusal::ProviderUnavailable,
    Refusal::NothingToConnect,
    Refusal::GroupNotFound,
    Refusal::Misconfigured,
    Refusal::Internal,
];

/// Reads the callback query. A missing or unparsable parameter is a refusal, never a panic.
pub fn parse_params<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<SetupParams, Refusal> {
    let (mut id, mut action, mut state, mut code) = (None, None, None, None);
    for (k, v) in pairs {
        match k {
            "installation_id" => id = Some(v),
            "setup_action" => action = Some(v),
            "state" => state = Some(v),
            "code" => code = Some(v.chars().take(MAX_CODE_LEN + 1).collect()),
            _ => {}
        }
    }
    let state = state
        .filter(|s| !s.is_empty())
        .ok_or(Refusal::MissingParameters)?
        .to_string();
    let id = || -> Result<u64, Refusal> {
        id.and_then(|v| v.parse::<u64>().ok())
            .filter(|&n| n > 0)
            .ok_or(Refusal::MissingParameters)
    };
    let action = match action {
        Some("install") => SetupAction::Install(id()?),
        Some("update") => SetupAction::Update(id()?),
        Some("request") => SetupAction::Request,
        _ => return Err(Refusal::MissingParameters),
    };
    Ok(SetupParams {
        action,
        state,
        code,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupOutcome {
    Connected {
        org_id: String,
        login: String,
        /// Repositories recorded so far in this enumeration.
        repos: u64,
        /// Of those, how many are new to the org (reconnects add only new ones).
        added: u64,
        /// False while a large installation is still being enumerated in the background.
        complete: bool,
    },
    /// OAuth providers: every group / organization the connect linked, as `(id, name)`.
    ConnectedOrgs {
        orgs: Vec<(String, String)>,
        repos: u64,
        added: u64,
        complete: bool,
    },
    Pending,
    /// Verified and held: the technician who started the flow confirms it
    /// (`POST /v1/connect/confirm`) before anything is linked. The pending connection's id.
    AwaitingConfirmation(String),
    Refused(Refusal),
}

/// The answer to `POST /v1/connect/confirm`: what the done page shows, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfirmAnswer {
    pub provider: &'static str,
    pub org_ids: Vec<String>,
    /// The orgs' names, joined with ", ".
    pub org: String,
    pub orgs: usize,
    pub repos: u64,
    pub added: u64,
    pub complete: bool,
    /// The done page with the same facts (the portal's, or the gateway's own path).
    pub done_url: String,
}

/// The confirmation's answer for a linked outcome (`None` for any other outcome).
pub fn confirm_answer(
    portal: Option<&Url>,
    provider: Provider,
    outcome: &SetupOutcome,
) -> Option<ConfirmAnswer> {
    let (orgs, repos, added, complete): (Vec<(&str, &str)>, _, _, _) = match outcome {
        SetupOutcome::Connected {
            org_id,
            login,
            repos,
            added,
            complete,
        } => (vec![(org_id, login)], *repos, *added, *complete),
        SetupOutcome::ConnectedOrgs {
            orgs,
            repos,
            added,
            complete,
        } => (
            orgs.iter().map(|(i, n)| (i.as_str(), n.as_str())).collect(),
            *repos,
            *added,
            *complete,
        ),
        _ => return None,
    };
    Some(ConfirmAnswer {
        provider: provider.slug(),
        org_ids: orgs.iter().map(|(id, _)| id.to_string()).collect(),
        org: orgs.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", "),
        orgs: orgs.len(),
        repos,
        added,
        complete,
        done_url: redirect_location(portal, provider, outcome),
    })
}

/// Where the browser goes: an absolute portal URL, or the gateway's own page path.
pub fn redirect_location(
    portal: Option<&Url>,
    provider: Provider,
    outcome: &SetupOutcome,
) -> String {
    let (page, query): (&str, Vec<(&str, String)>) = match outcome {
        SetupOutcome::Connected {
            org_id,
            login,
            repos,
            added,
            complete,
        } => (
            "done",
            vec![
                ("org_id", org_id.clone()),
                ("org", login.clone()),
                ("repos", repos.to_string()),
                ("added", added.to_string()),
                ("complete", complete.to_string()),
            ],
        ),
        SetupOutcome::ConnectedOrgs {
            orgs,
            repos,
            added,
            complete,
        } => (
            "done",
            vec![
                (
                    "org_ids",
                    orgs.iter()
                        .map(|(id, _)| id.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                (
                    "org",
                    orgs.iter()
                        .map(|(_, name)| name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                ("orgs", orgs.len().to_string()),
                ("repos", repos.to_string()),
                ("added", added.to_string()),
                ("complete", complete.to_string()),
            ],
        ),
        SetupOutcome::Pending => ("pending", vec![]),
        SetupOutcome::AwaitingConfirmation(id) => ("confirm", vec![("pending", id.clone())]),
        SetupOutcome::Refused(r) => ("error", vec![("reason", r.code().to_string())]),
    };
    let path = format!("connect/{}/{page}", provider.slug());
    let path = path.as_str();
    let query = (!query.is_empty()).then(|| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
            .finish()
    });
    match portal {
        Some(base) => {
            let mut url = crate::config::join(base, path);
            url.set_query(query.as_deref());
            url.to_string()
        }
        None => match query {
            Some(q) => format!("/{path}?{q}"),
            None => format!("/{path}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<SetupParams, Refusal> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect();
        parse_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    #[test]
    fn actions_parse() {
        assert_eq!(
            parse("installation_id=42&setup_action=install&state=s").unwrap(),
            SetupParams {
                action: SetupAction::Install(42),
                state: "s".into(),
                code: None,
            }
        );
        assert_eq!(
            parse("setup_action=request&state=s&code=abc")
                .unwrap()
                .code
                .as_deref(),
            Some("abc")
        );
        // Kept as sent (cut past the limit); only a usable code vouches for anyone.
        let usable = |q: &str| parse(q).unwrap().usable_code().map(str::to_string);
        assert_eq!(
            usable("installation_id=1&setup_action=install&state=s&code=abc"),
            Some("abc".into())
        );
        for q in [
            "installation_id=1&setup_action=install&state=s",
            "installation_id=1&setup_action=install&state=s&code=",
            "installation_id=1&setup_action=install&state=s&code=a+b",
            "installation_id=1&setup_action=install&state=s&code=%00",
        ] {
            assert_eq!(usable(q), None, "{q}");
        }
        let long = format!(
            "installation_id=1&setup_action=install&state=s&code={}",
            "a".repeat(MAX_CODE_LEN + 1)
        );
        assert_eq!(
            parse(&long).unwrap().code.map(|c| c.len()),
            Some(MAX_CODE_LEN + 1)
        );
        assert_eq!(usable(&long), None);
        let longest = format!(
            "installation_id=1&setup_action=install&state=s&code={}",
            "a".repeat(MAX_CODE_LEN)
        );
        assert_eq!(usable(&longest).map(|c| c.len()), Some(MAX_CODE_LEN));
        assert_eq!(
            parse("installation_id=7&setup_action=update&state=s")
                .unwrap()
                .action,
            SetupAction::Update(7)
        );
        assert_eq!(
            parse("setup_action=request&state=s").unwrap().action,
            SetupAction::Request
        );
    }

    #[test]
    fn ownership_needs_a_usable_code_or_the_development_flag() {
        let with = parse("installation_id=1&setup_action=install&state=s&code=abc").unwrap();
        let without = parse("installation_id=1&setup_action=install&state=s").unwrap();
        let empty = parse("installation_id=1&setup_action=install&state=s&code=").unwrap();
        let long = parse(&format!(
            "installation_id=1&setup_action=install&state=s&code={}",
            "c".repeat(MAX_CODE_LEN + 1)
        ))
        .unwrap();
        // OAuth configured: the code is the proof; the flag changes nothing.
        for allow in [false, true] {
            assert_eq!(with.ownership(true, allow), Ok(Ownership::Code("abc")));
            for bad in [&without, &empty, &long] {
                assert_eq!(
                    bad.ownership(true, allow),
                    Err(Refusal::InstallationForbidden)
                );
            }
        }
        // No OAuth: refused as misconfigured, unless explicitly allowed (development).
        for p in [&with, &without, &empty] {
            assert_eq!(p.ownership(false, false), Err(Refusal::Misconfigured));
            assert_eq!(p.ownership(false, true), Ok(Ownership::Unverified));
        }
    }

    #[test]
    fn incomplete_or_odd_queries_are_refused() {
        for q in [
            "",
            "installation_id=42&setup_action=install",
            "installation_id=42&setup_action=install&state=",
            "setup_action=install&state=s",
            "installation_id=abc&setup_action=install&state=s",
            "installation_id=-1&setup_action=install&state=s",
            "installation_id=0&setup_action=install&state=s",
            "installation_id=42&setup_action=delete&state=s",
        ] {
            assert_eq!(parse(q), Err(Refusal::MissingParameters), "{q}");
        }
    }

    #[test]
    fn redirects_go_to_the_portal_or_our_own_pages() {
        let portal = Url::parse("https://portal.example/app/").unwrap();
        let done = SetupOutcome::Connected {
            org_id: "abc".into(),
            login: "acme & co".into(),
            repos: 250,
            added: 250,
            complete: true,
        };
        assert_eq!(
            redirect_location(Some(&portal), Provider::GitHub, &done),
            "https://portal.example/app/connect/github/done?org_id=abc&org=acme+%26+co&repos=250&added=250&complete=true"
        );
        assert_eq!(
            redirect_location(None, Provider::GitHub, &SetupOutcome::Pending),
            "/connect/github/pending"
        );
        let held = SetupOutcome::AwaitingConfirmation("0f1e".into());
        assert_eq!(
            redirect_location(Some(&portal), Provider::GitLab, &held),
            "https://portal.example/app/connect/gitlab/confirm?pending=0f1e"
        );
        assert_eq!(
            redirect_location(None, Provider::AzureDevOps, &held),
            "/connect/azure-devops/confirm?pending=0f1e"
        );
        assert_eq!(
            redirect_location(
                None,
                Provider::GitHub,
                &SetupOutcome::Refused(Refusal::StateExpired)
            ),
            "/connect/github/error?reason=state_expired"
        );
        let many = SetupOutcome::ConnectedOrgs {
            orgs: vec![
                ("o1".into(), "initech".into()),
                ("o2".into(), "hooli".into()),
            ],
            repos: 47,
            added: 40,
            complete: true,
        };
        assert_eq!(
            redirect_location(Some(&portal), Provider::GitLab, &many),
            "https://portal.example/app/connect/gitlab/done?org_ids=o1%2Co2&org=initech%2C+hooli&orgs=2&repos=47&added=40&complete=true"
        );
        assert_eq!(
            redirect_location(
                None,
                Provider::AzureDevOps,
                &SetupOutcome::Refused(Refusal::AuthorizationDenied)
            ),
            "/connect/azure-devops/error?reason=authorization_denied"
        );
    }

    #[test]
    fn confirmations_answer_what_the_done_page_shows() {
        let one = SetupOutcome::Connected {
            org_id: "o1".into(),
            login: "acme".into(),
            repos: 25,
            added: 3,
            complete: true,
        };
        let answer = confirm_answer(None, Provider::GitHub, &one).unwrap();
        assert_eq!(
            (
                answer.provider,
                answer.org_ids.clone(),
                answer.org.as_str(),
                answer.orgs
            ),
            ("github", vec!["o1".to_string()], "acme", 1)
        );
        assert_eq!((answer.repos, answer.added, answer.complete), (25, 3, true));
        assert_eq!(
            answer.done_url,
            "/connect/github/done?org_id=o1&org=acme&repos=25&added=3&complete=true"
        );
        let many = SetupOutcome::ConnectedOrgs {
            orgs: vec![
                ("o1".into(), "initech".into()),
                ("o2".into(), "hooli".into()),
            ],
            repos: 47,
            added: 40,
            complete: false,
        };
        let answer = confirm_answer(None, Provider::GitLab, &many).unwrap();
        assert_eq!((answer.org.as_str(), answer.orgs), ("initech, hooli", 2));
        assert!(answer
            .done_url
            .starts_with("/connect/gitlab/done?org_ids=o1%2Co2"));
        assert_eq!(
            confirm_answer(None, Provider::GitHub, &SetupOutcome::Pending),
            None
        );
    }

    #[test]
    fn refusal_codes_round_trip() {
        for r in ALL_REFUSALS {
            assert_eq!(Refusal::from_code(r.code()), Some(r));
            assert!(!r.message().is_empty());
        }
        assert_eq!(Refusal::from_code("nope"), None);
    }
}
