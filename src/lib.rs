//! onecode-edge: the edge gateway between an MSP's client organizations on GitHub, GitLab and
//! Azure DevOps and the OneCode backup platform, compiled to wasm32 for Cloudflare Workers.
//!
//! Where each flow lives:
//! - connect (`POST /v1/connect/github`): `edge::connect`, tokens in [`state_token`];
//! - setup callback (`GET /github/setup`): `edge::connect`, inputs/outcomes in [`setup`],
//!   pages in [`pages`];
//! - enumeration of an installation's repositories (callback, then the sync queue):
//!   `edge::enumerate`, SQL in [`sql`], budget in [`budget`];
//! - App authentication: [`app_jwt`] (claims, PEM) and `edge::platform` (WebCrypto);
//! - GitHub API shapes, pagination and retries: [`github`], fetching in `edge::github_client`;
//! - webhooks (`POST /github/webhooks`): `edge::webhooks`, signatures in [`webhook_signature`],
//!   typed events in [`webhook_events`], the push rules in [`dependency_files`];
//! - the organization API (`/v1/orgs…`): `edge::orgs`, settings and filters in
//!   [`org_settings`]; sync, disconnect, fan-out and job dispatch in `edge::sync`;
//! - queue consumers and cron triggers: `edge::queues`;
//! - GitLab / Azure DevOps connect (`POST /v1/connect/{gitlab,azure-devops}`, the OAuth
//!   callbacks): `edge::oauth_connect`; their API shapes and URLs in [`gitlab`] and
//!   [`azure_devops`], fetching in `edge::provider_api`; what all providers share (names, the
//!   repository record, connection ids) in [`provider`]; tokens stored, refreshed and re-sealed
//!   in `edge::provider_tokens`; outbound retries for every provider in `edge::outbound`;
//! - PKCE (RFC 7636, `S256`) for the GitLab and Entra authorizations: [`pkce`];
//! - OAuth token requests, responses and expiry (GitLab, Entra): [`oauth`];
//! - provider tokens at rest in D1 (AES-256-GCM under `TOKEN_KEYS`): [`token_crypto`];
//! - routes and the OpenAPI document: [`routes`] (`openapi.json`);
//! - portal authentication: [`portal_auth`]; errors: [`problem`]; settings: [`config`];
//! - queue messages: [`messages`]; time: [`time`].
//!
//! Everything outside `edge` is plain Rust tested natively with `cargo test`; `edge` holds the
//! Workers bindings (KV, D1, Queues, fetch, WebCrypto) and is compiled for wasm32 only.

pub mod app_jwt;
pub mod azure_devops;
pub mod backup;
pub mod budget;
pub mod config;
pub mod credential_origins;
pub mod dependency_files;
pub mod github;
pub mod gitlab;
pub mod messages;
pub mod oauth;
pub mod org_settings;
pub mod pages;
pub mod pkce;
pub mod portal_auth;
pub mod problem;
pub mod provider;
pub mod routes;
pub mod setup;
pub mod sql;
pub mod state_token;
pub mod time;
pub mod token_crypto;
pub mod webhook_events;
pub mod webhook_signature;

#[cfg(target_arch = "wasm32")]
mod edge;
