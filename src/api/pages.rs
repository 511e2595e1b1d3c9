//! The gateway's own browser pages, used when `PORTAL_URL` is not set (local development) and
//! for browser-facing failures: `/connect/{provider}/done`, `/connect/{provider}/pending`,
//! `/connect/{provider}/error?reason=…` (`github`, `gitlab`, `azure-devops`), and
//! `/connect/{provider}/confirm?pending=…`, where the technician who started a connection
//! confirms it with their portal token (its script, `/connect/confirm.js`, is
//! `assets/confirm.js`: no inline script, see [`CONFIRM_CSP`]). Everything interpolated is
//! HTML-escaped.

use crate::github::setup::Refusal;

/// Safe in text and in quoted attributes alike.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(s)
}

fn page(title: &str, body_html: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · OneCode</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2328}}\
         h1{{font-size:1.4rem}}p.note{{color:#59636e}}</style></head>\
         <body><h1>{t}</h1>{body_html}</body></html>\n",
        t = escape(title)
    )
}

/// `done?org=…&repos=…&added=…&complete=…`
pub fn connected(org: &str, repos: &str, added: &str, complete: bool) -> String {
    let more = if complete {
        String::new()
    } else {
        "<p class=\"note\">This organization has many repositories; the rest are being added in the background.</p>".into()
    };
    page(
        "Organization connected",
        &format!(
            "<p><strong>{}</strong> connected: {} repositories recorded ({} new), each queued for its first backup.</p>{more}",
            escape(org),
            escape(repos),
            escape(added)
        ),
    )
}

pub fn pending() -> String {
    page(
        "Waiting for approval",
        "<p>The installation was requested. An owner of the GitHub organization has to approve it; \
         the organization will appear in OneCode once they do.</p>",
    )
}

/// An unknown reason code shows the generic message rather than echoing the input.
pub fn refused(reason: &str) -> String {
    let message = Refusal::from_code(reason)
        .unwrap_or(Refusal::Internal)
        .message();
    page(
        "The organization was not connected",
        &format!("<p>{}</p>", escape(message)),
    )
}

/// The confirm page's Content-Security-Policy: its own script and API only, nothing inline
/// but the page's style, never framed.
pub const CONFIRM_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `assets/confirm.js`, served at `/connect/confirm.js`.
pub const CONFIRM_SCRIPT: &str = include_str!("../../assets/confirm.js");

/// `confirm?pending=…`: the technician pastes (or the URL fragment `#token=` carries) their
/// portal token and confirms; the script calls `POST /v1/connect/confirm` and then opens the
/// done page it answers with.
pub fn confirm(provider_name: &str, pending: &str) -> String {
    page(
        "Confirm the connection",
        &format!(
            "<main id=\"confirm\" data-pending=\"{}\">\
             <p>{} answered. Nothing is connected until you confirm, as the technician who started \
             this connection, within 10 minutes of starting it.</p>\
             <form id=\"confirm-form\"><p><label>Portal token<br>\
             <input id=\"token\" type=\"password\" autocomplete=\"off\" size=\"40\" required></label></p>\
             <p><button type=\"submit\">Confirm</button></p></form>\
             <p id=\"status\" class=\"note\" role=\"status\"></p>\
             <script src=\"/connect/confirm.js\"></script></main>",
            escape(pending),
            escape(provider_name)
        ),
    )
}

pub fn not_found() -> String {
    page("Not found", "<p>There is nothing at this address.</p>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolated_values_are_escaped() {
        let html = connected("<script>alert(1)</script>", "3", "3", true);
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn the_confirm_page_carries_no_inline_script() {
        let html = confirm("GitHub", "\"><script>x</script>");
        assert!(!html.contains("<script>x"), "{html}");
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(html.contains("<script src=\"/connect/confirm.js\"></script>"));
        assert!(CONFIRM_CSP.contains("script-src 'self'") && !CONFIRM_CSP.contains("unsafe-eval"));
        assert!(!CONFIRM_CSP.contains("script-src 'self' 'unsafe-inline'"));
        assert!(CONFIRM_SCRIPT.contains("/v1/connect/confirm"));
    }

    #[test]
    fn expired_state_says_start_again_and_unknown_reasons_are_not_echoed() {
        assert!(refused("state_expired").contains("Start again"));
        let html = refused("<b>x</b>");
        assert!(!html.contains("<b>x</b>"));
        assert!(html.contains(Refusal::Internal.message()));
        assert!(connected("acme", "10", "2", false).contains("background"));
    }
}
