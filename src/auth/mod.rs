//! Who may do what, and what is kept secret: connect state tokens (`state_token`), portal JWTs
//! (`portal_auth`), provider tokens sealed at rest (`token_crypto`), and where each provider's
//! credential may be sent (`credential_origins`).

pub mod credential_origins;
pub mod portal_auth;
pub mod state_token;
pub mod token_crypto;
