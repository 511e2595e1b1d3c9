//! The portal API's shape: routes and the OpenAPI document (`routes`), problem details
//! (`problem`), organization settings and list filters (`org_settings`), and the gateway's own
//! pages (`pages`).

pub mod org_settings;
pub mod pages;
pub mod problem;
pub mod routes;
