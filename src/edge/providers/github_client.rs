//! Calls to the GitHub API (through `outbound`): the App JWT, installations and their tokens,
//! profiles, OAuth during installation and repository pages.

use crate::edge::bindings::Ctx;

use crate::edge::platform;
use crate::edge::providers::outbound::{call, Answer, Auth, CallError};
use crate::github::app_jwt::{assemble, pkcs8_der_from_pem, AppJwtClaims};
use crate::github::{self, Account, Installation, Profile, RepositoryPage};
use url::Url;
use worker::Method;

/// Signs a fresh App JWT with WebCrypto.
pub async fn app_jwt(ctx: &Ctx) -> Result<String, crate::api::problem::Problem> {
    use crate::api::problem::Problem;
    let pem = ctx.secret("GITHUB_APP_PRIVATE_KEY")?;
    let der = pkcs8_der_from_pem(pem.expose())
        .map_err(|_| Problem::Misconfigured("GITHUB_APP_PRIVATE_KEY".into()))?;
    let input = AppJwtClaims::new(&ctx.config.app_id, ctx.now).signing_input();
    let signature = platform::sign_rs256(&der, input.as_bytes())
        .await
        .map_err(|e| {
            worker::console_error!("App key rejected by WebCrypto: {e}");
            Problem::Misconfigured("GITHUB_APP_PRIVATE_KEY".into())
        })?;
    Ok(assemble(&input, &signature))
}

fn parse<T: serde::de::DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, CallError> {
    answer.parse(&format!("{what} from GitHub"))
}

/// `GET /app/installations/{id}`: proves the installation exists (the id in the callback can be spoofed).
pub async fn installation(ctx: &Ctx, jwt: &str, id: u64) -> Result<Installation, CallError> {
    let answer = call(
        ctx,
        Method::Get,
        &github::installation_url(&ctx.config.api_url, id),
        Auth::AppJwt(jwt),
    )
    .await?;
    let installation: Installation = parse(&answer, "installation")?;
    if installation.id != id {
        return Err(CallError::Refused(
            "GitHub answered for another installation".into(),
        ));
    }
    Ok(installation)
}

/// `POST /app/installations/{id}/access_tokens`: a 1-hour token for the work at hand.
pub async fn installation_token(ctx: &Ctx, jwt: &str, id: u64) -> Result<String, CallError> {
    let url = github::access_tokens_url(&ctx.config.api_url, id);
    let answer = call(ctx, Method::Post, &url, Auth::AppJwt(jwt)).await?;
    let token: github::AccessToken = parse(&answer, "access token")?;
    Ok(token.token)
}

/// `GET /orgs/{login}` or `/users/{login}`: the display name.
pub async fn profile(ctx: &Ctx, token: &str, account: &Account) -> Result<Profile, CallError> {
    let url = github::profile_url(&ctx.config.api_url, account);
    parse(
        &call(ctx, Method::Get, &url, Auth::Installation(token)).await?,
        "profile",
    )
}

/// Exchanges the OAuth `code` GitHub adds when the App requests user authorization during
/// installation for a user token, used for the request at hand and dropped. `None` when OAuth
/// is not configured here (`GITHUB_CLIENT_ID` / `GITHUB_CLIENT_SECRET`).
async fn user_token(ctx: &Ctx, code: &str) -> Result<Option<String>, CallError> {
    let (Some(client_id), Ok(secret)) = (&ctx.config.client_id, ctx.secret("GITHUB_CLIENT_SECRET"))
    else {
        return Ok(None);
    };
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("client_secret", secret.expose())
        .append_pair("code", code)
        .finish();
    let url = crate::config::join(&ctx.config.web_url, "login/oauth/access_token");
    let exchanged: github::CodeExchange = parse(
        &call(ctx, Method::Post, &url, Auth::CodeExchange(&form)).await?,
        "OAuth token",
    )?;
    exchanged.access_token.map(Some).ok_or_else(|| {
        CallError::Refused(format!(
            "OAuth code refused: {}",
            exchanged.error.unwrap_or_default()
        ))
    })
}

/// The GitHub login of the user who clicked through the install page (`None` without OAuth).
pub async fn requester(ctx: &Ctx, code: &str) -> Result<Option<String>, CallError> {
    let Some(token) = user_token(ctx, code).await? else {
        return Ok(None);
    };
    let url = crate::config::join(&ctx.config.api_url, "user");
    let user: github::User = parse(
        &call(ctx, Method::Get, &url, Auth::User(&token)).await?,
        "user",
    )?;
    Ok(Some(user.login))
}

/// Pages of `GET /user/installations` read before giving up (100 installations a page).
const MAX_USER_INSTALLATION_PAGES: u32 = 5;

/// Whether the user who clicked through can access `installation_id` (`GET /user/installations`):
/// the `installation_id` of a callback can be spoofed, the user's own list cannot. `None`
/// without OAuth.
pub async fn user_can_access(
    ctx: &Ctx,
    code: &str,
    installation_id: u64,
) -> Result<Option<bool>, CallError> {
    let Some(token) = user_token(ctx, code).await? else {
        return Ok(None);
    };
    let mut url = github::user_installations_url(&ctx.config.api_url);
    for _ in 0..MAX_USER_INSTALLATION_PAGES {
        let answer = call(ctx, Method::Get, &url, Auth::User(&token)).await?;
        let page: github::UserInstallations = parse(&answer, "user installations")?;
        if page.installations.iter().any(|i| i.id == installation_id) {
            return Ok(Some(true));
        }
        match github::next_page(answer.link.as_deref(), &ctx.config.api_url)
            .map_err(|e| CallError::Refused(format!("unusable Link header: {e:?}")))?
        {
            Some(next) => url = next,
            None => return Ok(Some(false)),
        }
    }
    Ok(Some(false))
}

/// One page of `GET /installation/repositories`, with the checked `rel="next"` URL.
pub async fn repositories_page(
    ctx: &Ctx,
    token: &str,
    url: &Url,
) -> Result<(RepositoryPage, Option<Url>), CallError> {
    let answer = call(ctx, Method::Get, url, Auth::Installation(token)).await?;
    let page: RepositoryPage = parse(&answer, "repository page")?;
    let next = github::next_page(answer.link.as_deref(), &ctx.config.api_url)
        .map_err(|e| CallError::Refused(format!("unusable Link header: {e:?}")))?;
    Ok((page, next))
}
