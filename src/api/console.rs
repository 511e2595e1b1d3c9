//! The gateway's console: `GET /console` (`assets/console/index.html`), its script
//! `/console/app.js` and stylesheet `/console/app.css`. A small static page, no build step and no
//! third-party asset (it works offline), with which a person holding a portal token drives the
//! `/v1/*` API by hand: the tenant's organizations, an organization's repositories, snapshots
//! (with a restore command), activity, access and posture, and connect, sync, back up,
//! disconnect and settings. It uses the public API only, as the portal would; whatever it needs
//! the API has to provide. The token stays in the browser tab (see the script's header).

/// No inline script or style anywhere (so an injected tag cannot run), the gateway's own API
/// only, never framed, no form posts elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

pub const PAGE: &str = include_str!("../../assets/console/index.html");
pub const SCRIPT: &str = include_str!("../../assets/console/app.js");
pub const STYLE: &str = include_str!("../../assets/console/app.css");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_own_script_and_style_and_nothing_inline() {
        assert!(PAGE.contains("<script src=\"/console/app.js\" defer></script>"));
        assert!(PAGE.contains("<link rel=\"stylesheet\" href=\"/console/app.css\">"));
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert!(!PAGE.contains("<style") && !PAGE.contains(" style="));
        assert!(!PAGE.contains("onclick=") && !PAGE.contains("onsubmit="));
        // Nothing from another origin.
        for text in [PAGE, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("@import"));
        }
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("eval("));
    }

    #[test]
    fn the_policy_forbids_inline_code_and_other_origins() {
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(CSP.contains(directive), "{directive}");
        }
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
    }

    #[test]
    fn the_script_calls_only_documented_api_routes() {
        // Every `/v1/…` path prefix the script names is one of the API's routes.
        let api: Vec<&str> = crate::api::routes::ROUTES
            .iter()
            .filter(|r| r.documented)
            .map(|r| r.template)
            .collect();
        for (i, _) in SCRIPT.match_indices("\"/v1/") {
            let literal = &SCRIPT[i + 1..];
            let literal = &literal[..literal.find('"').unwrap()];
            assert!(
                api.iter().any(|t| t.starts_with(literal)),
                "{literal} is no API route"
            );
        }
    }
}
