//! `github-emulator`: a local stand-in for the GitHub API used by onecode-edge's tests, and
//! for the GitLab and Microsoft identity platform / Azure DevOps APIs the gateway connects
//! through OAuth 2.0 (authorization code + PKCE), all in one process.
//!
//! ```text
//! github-emulator --port <P> --app-id <ID> --app-key <PATH> [--slug <SLUG>] [--setup-url <URL>]
//!                 [--git-root <DIR>]
//! ```
//!
//! Binds 127.0.0.1 only (`--port 0` picks a free port), prints
//! `github-emulator listening on http://127.0.0.1:<PORT>` as its first stdout line, logs one
//! line per request to stderr and serves until killed. Everything lives under that origin:
//!
//! | Prefix | Service | Module |
//! | --- | --- | --- |
//! | `/` (the rest) | GitHub REST API, install page, OAuth during installation | `github.rs` |
//! | `/orgs/{org}/members`, `/repos/{owner}/{repo}/branches/{branch}/protection`, … | GitHub access audit data (members, collaborators, protections, rulesets) | `access/` |
//! | `/gitlab/{instance}/oauth/…` | GitLab OAuth (`authorize`, `token`) | `gitlab/`, `oauth.rs` |
//! | `/gitlab/{instance}/api/v4/…` | GitLab REST API: `user`, `groups`, `groups/:id`, `groups/:id/projects` | `gitlab/` |
//! | `/microsoft/{tenant}/oauth2/v2.0/…` | Microsoft identity platform (`authorize`, `token`) | `azure/`, `oauth.rs` |
//! | `/vssps/_apis/…` | Azure DevOps profile and accounts | `azure/` |
//! | `/azure/{org}/…` | Azure DevOps projects, Git repositories and branch policies | `azure/` |
//! | `/vsaex/{org}/…` | Azure DevOps user entitlements (`vsaex.dev.azure.com`) | `azure/` |
//! | `/{owner}/{repo}.git/…`, `/gitlab/{instance}/{path}.git/…`, `/azure/{org}/{project}/_git/{repo}/…` | git smart HTTP (`info/refs`, `git-upload-pack`) of every listed repository, from real bare repositories | `git/` |
//! | `/sink/…` | another origin: `200 {"ok":true}`, records every credential it receives | `ledger.rs` |
//! | `/_emulator/…` | control API: setup, faults, request log, issued tokens, OAuth grants, credential ledger, access data, webhook deliveries | `admin.rs`, `webhooks.rs` |
//!
//! Fault rules (`faults.rs`), the request log and the credential ledger (`ledger.rs`: which
//! credential was presented to which service) cover every service; see each module for its
//! endpoints.
//!
//! `--git-root <DIR>` is where the bare repositories behind the git routes live (created
//! lazily, kept after exit); without it, a fresh directory under the system temp directory
//! (see `git/repos.rs`). The `git` binary must be on `PATH`.

mod access;
mod admin;
mod auth;
mod azure;
mod faults;
mod git;
mod github;
mod gitlab;
mod http;
mod ledger;
mod oauth;
mod pagination;
mod server;
mod state;
mod webhooks;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use url::Url;

/// Worker threads, so a delayed (fault-injected) response does not block other requests.
const WORKER_THREADS: usize = 32;

const USAGE: &str = "usage: github-emulator --port <P> --app-id <ID> --app-key <PATH> \
                     [--slug <SLUG>] [--setup-url <URL>] [--git-root <DIR>]";

struct Options {
    port: u16,
    app_id: String,
    app_key: String,
    slug: String,
    setup_url: Option<Url>,
    git_root: Option<PathBuf>,
}

fn parse_options(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut port, mut app_id, mut app_key, mut setup_url) = (None, None, None, None);
    let mut git_root = None;
    let mut slug = "the-one-code".to_string();
    let mut args = args;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--port" => port = Some(value.parse().map_err(|_| format!("bad --port {value:?}"))?),
            "--app-id" => app_id = Some(value),
            "--app-key" => app_key = Some(value),
            "--slug" => slug = value,
            "--setup-url" => {
                setup_url = Some(
                    Url::parse(&value).map_err(|e| format!("bad --setup-url {value:?}: {e}"))?,
                )
            }
            "--git-root" => git_root = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    let missing = |name: &str| format!("missing {name}\n{USAGE}");
    Ok(Options {
        port: port.ok_or_else(|| missing("--port"))?,
        app_id: app_id.ok_or_else(|| missing("--app-id"))?,
        app_key: app_key.ok_or_else(|| missing("--app-key"))?,
        slug,
        setup_url,
        git_root,
    })
}

fn run(options: Options) -> Result<(), String> {
    let pem = std::fs::read_to_string(&options.app_key)
        .map_err(|e| format!("cannot read --app-key {}: {e}", options.app_key))?;
    let key =
        auth::load_public_key(&pem).map_err(|e| format!("--app-key {}: {e}", options.app_key))?;
    let http = tiny_http::Server::http(("127.0.0.1", options.port))
        .map_err(|e| format!("cannot bind 127.0.0.1:{}: {e}", options.port))?;
    let port = http
        .server_addr()
        .to_ip()
        .ok_or("server is not bound to an IP address")?
        .port();
    let base_url = format!("http://127.0.0.1:{port}");
    let emulator = server::Emulator::new(
        base_url.clone(),
        options.app_id,
        key,
        options.slug,
        options.setup_url,
        options.git_root,
    );
    let mut stdout = std::io::stdout();
    writeln!(stdout, "github-emulator listening on {base_url}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    server::serve(&http, &emulator, WORKER_THREADS);
    Ok(())
}

fn main() -> ExitCode {
    match parse_options(std::env::args().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("github-emulator: {message}");
            ExitCode::from(2)
        }
    }
}
