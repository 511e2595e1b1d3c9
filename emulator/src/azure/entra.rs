//! The Microsoft identity platform's (Entra ID) OAuth rules and wording: `AADSTS` error codes,
//! the Azure DevOps resource scope, refresh tokens only with `offline_access`.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::state::new_guid;
use crate::oauth::{AuthorizeProblem, GrantError, Issued, PageProblem, Provider, Realm};
use crate::state::Store;

/// Access token lifetime unless the admin API sets another.
pub const DEFAULT_TOKEN_TTL: i64 = 3599;
/// The Azure DevOps resource.
pub const DEVOPS_RESOURCE: &str = "499b84ac-1321-427f-aa17-267ca6975798";
/// Scopes that may accompany the Azure DevOps one.
const OIDC_SCOPES: [&str; 4] = ["offline_access", "openid", "profile", "email"];

/// The identity platform as reached through one tenant segment.
pub struct EntraOAuth<'a> {
    pub tenant: &'a str,
}

/// Whether a scope asks for Azure DevOps (`.default` or `user_impersonation`).
fn is_devops_scope(scope: &str) -> bool {
    scope
        .to_ascii_lowercase()
        .strip_prefix(DEVOPS_RESOURCE)
        .is_some_and(|rest| rest == "/.default" || rest == "/user_impersonation")
}

impl Provider for EntraOAuth<'_> {
    fn realm(&self) -> Realm {
        Realm::Azure
    }

    fn instance(&self) -> &str {
        self.tenant
    }

    fn check_scopes(&self, scopes: &[String]) -> Result<(), String> {
        if let Some(unknown) = scopes
            .iter()
            .find(|s| !is_devops_scope(s) && !OIDC_SCOPES.contains(&s.as_str()))
        {
            return Err(format!(
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid. \
                 The scope '{unknown}' does not exist."
            ));
        }
        if !scopes.iter().any(|s| is_devops_scope(s)) {
            return Err(format!(
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid. \
                 The scope must include '{DEVOPS_RESOURCE}/.default' (Azure DevOps)."
            ));
        }
        Ok(())
    }

    fn describe(&self, problem: &AuthorizeProblem) -> String {
        match problem {
            AuthorizeProblem::UnsupportedResponseType(value) => {
                format!("AADSTS700054: response_type '{value}' is not enabled for the application.")
            }
            AuthorizeProblem::MissingChallenge => "AADSTS50148: The code_challenge parameter is \
                 required: this application must use Proof Key for Code Exchange (PKCE)."
                .into(),
            AuthorizeProblem::UnsupportedChallengeMethod(method) => format!(
                "AADSTS50148: The code_challenge_method '{method}' is not supported; use S256."
            ),
        }
    }

    fn page_message(&self, problem: &PageProblem) -> String {
        match problem {
            PageProblem::UnknownClient(id) => format!(
                "AADSTS700016: Application with identifier '{id}' was not found in the directory \
                 '{}'. This can happen if the application has not been installed by the \
                 administrator of the tenant or consented to by any user in the tenant.",
                self.tenant
            ),
            PageProblem::BadRedirectUri => "AADSTS50011: The redirect URI specified in the \
                 request is missing or is not an absolute URI."
                .into(),
            PageProblem::UnregisteredRedirectUri(uri, client) => format!(
                "AADSTS50011: The redirect URI '{uri}' specified in the request does not match \
                 the redirect URIs configured for the application '{client}'. Make sure the \
                 redirect URI sent in the request matches one added to your application in the \
                 Azure portal."
            ),
        }
    }

    fn sign_in(&self, store: &Store, requested: Option<&str>) -> Result<String, String> {
        let user = match requested {
            Some(id) => store
                .azure
                .user(id)
                .ok_or_else(|| format!("github-emulator: no Microsoft user {id}"))?,
            None => store
                .azure
                .default_user()
                .ok_or("github-emulator: the Microsoft directory has no users to sign in")?,
        };
        Ok(user.id.clone())
    }

    fn issues_refresh_token(&self, scopes: &[String]) -> bool {
        scopes.iter().any(|s| s == "offline_access")
    }

    fn grant_error(&self, error: &GrantError) -> (u16, &'static str, String) {
        let invalid_grant = |text: &str| (400, "invalid_grant", text.to_string());
        match error {
            GrantError::UnknownClient(id) => (
                400,
                "unauthorized_client",
                format!(
                    "AADSTS700016: Application with identifier '{id}' was not found in the \
                     directory '{}'.",
                    self.tenant
                ),
            ),
            GrantError::WrongSecret(id) => (
                401,
                "invalid_client",
                format!(
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent \
                     in the request is the client secret value, not the client secret ID, for a \
                     secret added to app '{id}'."
                ),
            ),
            GrantError::Missing(name) => (
                400,
                "invalid_request",
                format!("AADSTS900144: The request body must contain the following parameter: '{name}'."),
            ),
            GrantError::UnsupportedGrantType => (
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.".into(),
            ),
            GrantError::UnknownCode => {
                invalid_grant("AADSTS70000: The provided value for the 'code' parameter is not valid.")
            }
            GrantError::RedeemedCode => invalid_grant(
                "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a \
                 new valid code or use an existing refresh token.",
            ),
            GrantError::ExpiredCode => invalid_grant(
                "AADSTS70008: The provided authorization code or refresh token has expired due \
                 to inactivity. Send a new interactive authorization request for this user and \
                 resource.",
            ),
            GrantError::RedirectMismatch => invalid_grant(
                "AADSTS70000: The provided value for the 'redirect_uri' is not valid. The value \
                 must exactly match the redirect URI used to obtain the authorization code.",
            ),
            GrantError::VerifierMismatch => invalid_grant(
                "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in \
                 the authorization request.",
            ),
            GrantError::BadRefreshToken => invalid_grant(
                "AADSTS70000: The provided value for the 'refresh_token' parameter is not valid: \
                 the grant is expired, revoked or was already used.",
            ),
        }
    }

    fn error_body(&self, error: &str, description: &str) -> Value {
        let code: Option<u64> = description
            .strip_prefix("AADSTS")
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok());
        let (trace_id, correlation_id) = (new_guid(), new_guid());
        let now = Utc::now();
        let timestamp = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
        json!({
            "error": error,
            "error_description": format!(
                "{description} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {}",
                now.to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
            "error_codes": code.into_iter().collect::<Vec<_>>(),
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!(
                "https://login.microsoftonline.com/error?code={}",
                code.unwrap_or_default()
            ),
        })
    }

    fn token_body(&self, issued: &Issued) -> Value {
        let mut body = json!({
            "token_type": "Bearer",
            "scope": format!("{DEVOPS_RESOURCE}/user_impersonation"),
            "expires_in": issued.expires_in,
            "ext_expires_in": issued.expires_in,
            "access_token": issued.access_token,
        });
        if let Some(refresh) = &issued.refresh_token {
            body["refresh_token"] = json!(refresh);
        }
        body
    }
}
