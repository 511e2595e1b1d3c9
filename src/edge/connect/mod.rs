//! Connecting organizations: the GitHub App's connect and install callback (`github`), the
//! GitLab / Azure DevOps OAuth connect and callbacks (`oauth`), and the technician's
//! confirmation that links what a callback held (`confirm`).

pub mod confirm;
pub mod github;
pub mod oauth;
