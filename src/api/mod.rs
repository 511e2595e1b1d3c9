//! The portal API's shape: routes and the OpenAPI document (`routes`), problem details
//! (`problem`), organization settings and list filters (`org_settings`), browser access for the
//! portal (`cors`), the gateway's own pages (`pages`) and its console (`console`).

pub mod console;
pub mod cors;
pub mod org_settings;
pub mod pages;
pub mod problem;
pub mod routes;
