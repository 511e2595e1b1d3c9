//! Talking to GitHub, GitLab and Azure DevOps: every outbound call with its credential check,
//! retries and budget (`outbound`), the GitHub App's calls (`github_client`), GitLab and Azure
//! DevOps API calls (`provider_api`), and OAuth tokens stored, refreshed and re-sealed
//! (`provider_tokens`).

pub mod github_client;
pub mod outbound;
pub mod provider_api;
pub mod provider_tokens;
