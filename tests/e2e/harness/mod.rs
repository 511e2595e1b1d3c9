//! The end-to-end fixture: one GitHub emulator and one `wrangler dev` (the real worker on
//! workerd + miniflare with local D1, KV and Queues) shared by every test of a run, started on
//! first use and stopped when the run ends.
//!
//! Start-up ([`Stack::start`]):
//! 1. `.dev.vars` is created from `.dev.vars.example` when missing and read: the suite uses
//!    the same secrets as the worker, and hands the App key to the emulator.
//! 2. The emulator is built (`cargo build -p github-emulator`, same target dir) and the worker
//!    bundle with `scripts/build-worker` (what `wrangler dev` runs as its `[build]`), with the
//!    `e2e` feature (never deployed): cron triggers can be fired as at a given time, and every
//!    queue message sent, retried and handled is logged (`src/edge/queue_trace.rs`), so that
//!    [`Stack::queues_settled`] waits for queued work without sleeping and the credential scan
//!    reads message bodies.
//! 3. A temporary directory receives a copy of the bundle and a `wrangler.toml` derived from
//!    the project's (same bindings; `main` pointing at the copy, no `[build]`), so that edits to
//!    `src/` while the suite runs cannot make wrangler rebuild and restart the worker mid-test.
//!    Its `.dev.vars` is the project's with two rotations in progress: `GITHUB_WEBHOOK_SECRET`
//!    is `["<ROTATED_WEBHOOK_SECRET>", "<the dev secret>"]`, so that both verify, and
//!    `TOKEN_KEYS` is `"<CURRENT_TOKEN_KEY>,<the dev keys>"`.
//! 4. The emulator starts on a free port; migrations are applied to a fresh persistence
//!    directory; `wrangler dev` starts on free ports (its own process group, output in
//!    `wrangler.log`) with `GITHUB_API_URL`/`GITHUB_WEB_URL` (and the GitLab, Microsoft and
//!    Azure DevOps URLs) pointing at the emulator and an
//!    empty `PORTAL_URL` (the worker's own result pages), `PORTAL_ORIGINS` naming one loopback
//!    origin the suite holds ([`Stack::portal_origin`], for the CORS tests), and
//!    `--test-scheduled` so that tests
//!    can fire the cron triggers ([`Stack::trigger_cron`]); a watchdog stops everything should
//!    the test process die; `/health` is awaited (up to 300 s).
//!
//! Isolation: tests share the stack, so each uses its own tenant, installation and account
//! ids; the rest (fault rules and global counts) is arbitrated in `main.rs`.

pub mod auth;
pub mod binding_faults;
pub mod checks;
pub mod emulator;
pub mod http;
pub mod inspector;
pub mod oauth;
pub mod panics;
pub mod portal;
pub mod procs;
pub mod store;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use auth::{AppSigner, DevVars};
use emulator::Emulator;
use http::{Callback, Held, Http, Resp};
use procs::Managed;
use store::Store;

/// The App id and slug the emulator and the worker are both started with.
pub const APP_ID: &str = "3034314";
pub const APP_SLUG: &str = "the-one-code";
/// The webhook secret the test worker accepts besides the one in `.dev.vars` (a rotation).
pub const ROTATED_WEBHOOK_SECRET: &str = "e2e-rotated-webhook-secret";
/// The token key the test worker encrypts with (`TOKEN_KEYS` is `"<this>,<the .dev.vars keys>"`:
/// a rotation in progress, so records sealed under the older key still open).
pub const CURRENT_TOKEN_KEY: &str = "e2e2:ZTJlLWN1cnJlbnQtdG9rZW4ta2V5LTMyLWJ5dGVzISE=";
/// The emulated GitLab instance the worker's `GITLAB_URL` names (others are "self-managed").
pub const GITLAB_INSTANCE: &str = "com";
/// Self-managed GitLab instances the test worker is configured for (`GITLAB_INSTANCES`), each
/// with an OAuth application of its own: `(instance, client id, client secret)`.
pub const SELF_MANAGED_GITLAB: [(&str, &str, &str); 3] = [
    (
        "selfmanaged-e2e",
        "e2e-selfmanaged-app",
        "e2e-selfmanaged-secret",
    ),
    ("short-e2e", "e2e-short-app", "e2e-short-secret"),
    ("cron-e2e", "e2e-cron-app", "e2e-cron-secret"),
];
/// The scale fixtures' repositories (hundreds to 10,000 per org) are empty git repositories:
/// each still gets a real backup (ref advertisement, an `empty` snapshot), at a cost the suite
/// can afford. Every other fixture's repositories have the emulator's real history.
const EMPTY_REPOSITORIES: [&str; 7] = [
    "github/e2e-huge/",
    "github/e2e-quarter/",
    "github/e2e-fault-",
    "github/e2e-hygiene/",
    "github/e2e-orgs-concurrent/",
    "github/e2e-wh-2124/",
    "gitlab/com/grp-71003/",
];
/// The GitHub user who clicks through the emulator's install page (OAuth during installation
/// is on, as in production: every install link carries a code for this user, who can access
/// every installation unless a test says otherwise).
pub const GITHUB_USER: &str = "e2e-installer";
/// How long `wrangler dev` may take to answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything a test needs. Obtained with [`stack`].
pub struct Stack {
    /// The project root (`CARGO_MANIFEST_DIR`).
    pub root: PathBuf,
    /// The run's temporary directory (bundle copy, config, persistence, logs).
    pub dir: PathBuf,
    /// `--persist-to` of wrangler: D1, KV and cache state.
    pub persist: PathBuf,
    /// `http://127.0.0.1:<port>` of the worker.
    pub worker: String,
    /// The portal origin the worker allows cross-origin calls from (`PORTAL_ORIGINS`):
    /// `http://127.0.0.1:<port>` of [`Stack::portal_listener`], bound for the whole run so that
    /// nothing else takes the port.
    pub portal_origin: String,
    /// Bound on the portal origin's port; a browser test serves its "portal" page from it.
    pub portal_listener: std::net::TcpListener,
    pub emulator: Emulator,
    pub store: Store,
    pub http: Http,
    pub secrets: DevVars,
    /// The DevTools client attached to wrangler's inspector proxy (the benchmark's profiler).
    #[allow(dead_code)] // Read by the benchmark only.
    pub inspector: inspector::Inspector,
    procs: Mutex<Procs>,
}

/// The processes, stopped in reverse order of start.
struct Procs {
    running: Vec<Managed>,
    /// Held so the emulator never gets EPIPE on stdout.
    _emulator_stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Procs {
    fn stop(&mut self) {
        while let Some(mut p) = self.running.pop() {
            p.stop(Duration::from_secs(10));
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop();
    }
}

static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();

/// The shared stack, started on first call. Panics (failing the calling test) if it could not
/// be started; the error is kept, so later tests fail fast with the same message.
pub fn stack() -> &'static Stack {
    let started = STACK.get_or_init(|| {
        let t0 = Instant::now();
        eprintln!("e2e: starting the GitHub emulator and wrangler dev (the first build is slow)");
        let result = std::panic::catch_unwind(Stack::start).unwrap_or_else(|payload| {
            Err(format!(
                "the fixture panicked while starting: {} at {}",
                panics::panic_message(payload.as_ref()),
                panics::panic_location().unwrap_or_default()
            ))
        });
        match &result {
            Ok(s) => eprintln!(
                "e2e: worker {} and emulator {} ready after {:.0?} (state in {})",
                s.worker,
                s.emulator.base,
                t0.elapsed(),
                s.dir.display()
            ),
            Err(e) => eprintln!("e2e: the fixture did not start: {e}"),
        }
        result
    });
    match started {
        Ok(stack) => stack,
        Err(e) => panic!("the e2e fixture is unavailable: {e}"),
    }
}

/// Stops the stack if it was started; called once by `main` after the tests.
pub fn shutdown(print_logs: bool) {
    if let Some(Ok(stack)) = STACK.get() {
        if print_logs {
            eprintln!(
                "\n---- wrangler.log (last 80 lines) ----\n{}",
                tail(&stack.dir.join("wrangler.log"), 80)
            );
        }
        stack
            .procs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop();
        if std::env::var_os("ONECODE_E2E_KEEP").is_some() {
            eprintln!("e2e: kept {}", stack.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&stack.dir) {
            eprintln!("e2e: could not remove {}: {e}", stack.dir.display());
        }
    }
}

/// The last `lines` lines of a text file (for diagnostics).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `probe` every 250 ms until it returns `Ok`, or panics after `timeout` with `what` and
/// the probe's last `Err` (a description of the state it saw).
#[track_caller]
pub fn poll_until<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {state}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn run_logged(command: &mut Command, log: &Path, what: &str) -> Result<(), String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail(log, 40)
        ))
    }
}

/// Builds the emulator and returns its executable (from cargo's JSON messages).
fn build_emulator(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let output = Command::new(cargo)
        .args([
            "build",
            "-p",
            "github-emulator",
            "--bin",
            "github-emulator",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo build -p github-emulator: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build -p github-emulator failed ({})",
            output.status
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "github-emulator")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo did not report the github-emulator executable".to_string())
}

/// Copies a directory tree, skipping hidden entries (`build/.tmp`).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    Ok(())
}

/// The project's `wrangler.toml` with `main` pointing at the bundle copy, an absolute
/// `migrations_dir`, and no `[build]` table.
fn test_config(original: &str, main: &Path, migrations: &Path) -> Result<String, String> {
    let mut out = String::new();
    let (mut in_build, mut saw_main) = (false, false);
    let is_key = |line: &str, key: &str| {
        line.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    for line in original.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_build = trimmed == "[build]";
        }
        if in_build {
            continue;
        }
        if is_key(trimmed, "main") {
            out.push_str(&format!("main = {:?}\n", main.display().to_string()));
            saw_main = true;
        } else if is_key(trimmed, "migrations_dir") {
            out.push_str(&format!(
                "migrations_dir = {:?}\n",
                migrations.display().to_string()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    saw_main
        .then_some(out)
        .ok_or_else(|| "wrangler.toml has no `main`".into())
}

/// `.dev.vars` for the test worker: the same lines, except two rotations in progress:
/// `GITHUB_WEBHOOK_SECRET` becomes `["<ROTATED_WEBHOOK_SECRET>", "<webhook_secret>"]` and
/// `TOKEN_KEYS` becomes `"<CURRENT_TOKEN_KEY>,<token_keys>"`; and `GITLAB_INSTANCES` lists the
/// emulator's self-managed instances ([`SELF_MANAGED_GITLAB`]).
fn test_dev_vars(
    original: &str,
    webhook_secret: &str,
    token_keys: &str,
    gitlab_instances: &str,
) -> String {
    let rotation = serde_json::to_string(&[ROTATED_WEBHOOK_SECRET, webhook_secret])
        .expect("strings serialize");
    let replaced = [
        (
            "GITHUB_WEBHOOK_SECRET",
            format!("GITHUB_WEBHOOK_SECRET='{rotation}'"),
        ),
        (
            "TOKEN_KEYS",
            format!("TOKEN_KEYS=\"{CURRENT_TOKEN_KEY},{token_keys}\""),
        ),
        (
            "GITLAB_INSTANCES",
            format!("GITLAB_INSTANCES='{gitlab_instances}'"),
        ),
    ];
    let name_of = |l: &str| {
        replaced.iter().find(|(name, _)| {
            l.trim_start()
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    let mut out: Vec<String> = original
        .lines()
        .map(|l| name_of(l).map_or_else(|| l.to_string(), |(_, line)| line.clone()))
        .collect();
    for (name, line) in &replaced {
        if !original
            .lines()
            .any(|l| name_of(l).is_some_and(|(n, _)| n == name))
        {
            out.push(line.clone());
        }
    }
    out.join("\n") + "\n"
}

/// The environment every wrangler invocation gets: offline, quiet, no telemetry, and any
/// npm registry lookup (wrangler's update check) sent to a closed loopback port.
pub fn wrangler(root: &Path, dir: &Path) -> Command {
    let mut command = Command::new(root.join("node_modules/.bin/wrangler"));
    command
        .current_dir(dir)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("WRANGLER_LOG_PATH", dir.join("wrangler-logs"))
        .env("npm_config_registry", "http://127.0.0.1:9/")
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0");
    command
}

impl Stack {
    fn start() -> Result<Stack, String> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dev_vars = root.join(".dev.vars");
        if !dev_vars.exists() {
            std::fs::copy(root.join(".dev.vars.example"), &dev_vars)
                .map_err(|e| format!("creating .dev.vars from .dev.vars.example: {e}"))?;
        }
        let secrets = DevVars::load(&dev_vars)?;
        let signer = AppSigner::new(APP_ID, secrets.get("GITHUB_APP_PRIVATE_KEY")?)?;

        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("onecode-e2e-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut procs = Procs {
            running: Vec::new(),
            _emulator_stdout: None,
        };
        let result = Stack::start_in(root, dir.clone(), secrets, signer, &mut procs);
        match result {
            Ok(mut stack) => {
                stack.procs = Mutex::new(procs);
                Ok(stack)
            }
            Err(e) => {
                procs.stop();
                if std::env::var_os("ONECODE_E2E_KEEP").is_none() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Err(e)
            }
        }
    }

    fn start_in(
        root: PathBuf,
        dir: PathBuf,
        secrets: DevVars,
        signer: AppSigner,
        procs: &mut Procs,
    ) -> Result<Stack, String> {
        let emulator_bin = build_emulator(&root)?;
        let t0 = Instant::now();
        let mut build = Command::new(root.join("scripts/build-worker"));
        // `e2e` (never in a deployed build): the cron triggers can be fired as at a given time
        // (`Stack::trigger_cron_at`), and queue messages are traced in the worker's log
        // (`Stack::queues_settled`). The benchmark (benches/gateway.rs) asks for its
        // instrumented build instead with `ONECODE_BENCH_FEATURES` (no tracing: it would weigh on
        // what is measured).
        let features = std::env::var_os("ONECODE_BENCH_FEATURES").unwrap_or_else(|| "e2e".into());
        build.current_dir(&root).env("ONECODE_FEATURES", features);
        run_logged(&mut build, &dir.join("build.log"), "scripts/build-worker")?;
        eprintln!("e2e: worker built in {:.0?}", t0.elapsed());

        let bundle = dir.join("bundle");
        copy_tree(&root.join("build"), &bundle)?;
        let original = std::fs::read_to_string(root.join("wrangler.toml"))
            .map_err(|e| format!("wrangler.toml: {e}"))?;
        let config = dir.join("wrangler.toml");
        let text = test_config(
            &original,
            &bundle.join("worker/shim.mjs"),
            &root.join("migrations"),
        )?;
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let key_file = dir.join("app-key.pem");
        std::fs::write(&key_file, secrets.get("GITHUB_APP_PRIVATE_KEY")?)
            .map_err(|e| e.to_string())?;

        let port = procs::free_port().map_err(|e| e.to_string())?;
        let inspector = procs::free_port().map_err(|e| e.to_string())?;
        let worker = format!("http://127.0.0.1:{port}");
        let portal_listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
        let portal_origin = format!(
            "http://127.0.0.1:{}",
            portal_listener
                .local_addr()
                .map_err(|e| e.to_string())?
                .port()
        );

        // The emulator: its first stdout line names its URL.
        let mut command = Command::new(&emulator_bin);
        command
            .args(["--port", "0", "--app-id", APP_ID, "--slug", APP_SLUG])
            .arg("--app-key")
            .arg(&key_file)
            .args(["--setup-url", &format!("{worker}/github/setup")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("emulator.log")).map_err(|e| e.to_string())?);
        let mut emulator_proc =
            Managed::spawn("github-emulator", &mut command).map_err(|e| e.to_string())?;
        let mut stdout = BufReader::new(
            emulator_proc
                .child_mut()
                .stdout
                .take()
                .ok_or("no emulator stdout")?,
        );
        procs.running.push(emulator_proc);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        procs._emulator_stdout = Some(stdout);
        let emulator_base = line
            .trim()
            .strip_prefix("github-emulator listening on ")
            .filter(|url| url.starts_with("http://127.0.0.1:"))
            .ok_or_else(|| {
                format!(
                    "unexpected first line from the emulator: {line:?}; its log:\n{}",
                    tail(&dir.join("emulator.log"), 20)
                )
            })?
            .to_string();

        let instances: Vec<serde_json::Value> = SELF_MANAGED_GITLAB
            .iter()
            .map(|(instance, client_id, secret)| {
                serde_json::json!({
                    "url": format!("{emulator_base}/gitlab/{instance}"),
                    "client_id": client_id,
                    "client_secret": secret,
                })
            })
            .collect();
        let dev_vars = std::fs::read_to_string(root.join(".dev.vars"))
            .map_err(|e| format!(".dev.vars: {e}"))?;
        let dev_vars = test_dev_vars(
            &dev_vars,
            secrets.get("GITHUB_WEBHOOK_SECRET")?,
            secrets.get("TOKEN_KEYS")?,
            &serde_json::Value::from(instances).to_string(),
        );
        std::fs::write(dir.join(".dev.vars"), dev_vars).map_err(|e| e.to_string())?;

        let persist = dir.join("state");
        let mut migrate = wrangler(&root, &dir);
        migrate
            .args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"])
            .arg(&persist)
            .arg("-c")
            .arg(&config);
        run_logged(
            &mut migrate,
            &dir.join("migrations.log"),
            "wrangler d1 migrations apply",
        )?;

        let log = std::fs::File::create(dir.join("wrangler.log")).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut dev = wrangler(&root, &dir);
        dev.arg("dev")
            .arg("-c")
            .arg(&config)
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &inspector.to_string()])
            .arg("--persist-to")
            .arg(&persist)
            .args(["--var", &format!("GITHUB_API_URL:{emulator_base}")])
            .args(["--var", &format!("GITHUB_WEB_URL:{emulator_base}")])
            .args(["--var", "PORTAL_URL:"])
            // Browser pages of this origin may call the API (CORS); the console is same-origin.
            .args(["--var", &format!("PORTAL_ORIGINS:{portal_origin}")])
            // Where browsers reach the worker: the OAuth redirect URIs are built on it, whatever
            // origin the portal called (the emulator's OAuth applications register only these).
            .args(["--var", &format!("PUBLIC_URL:{worker}")])
            .args(["--var", &format!("GITHUB_APP_ID:{APP_ID}")])
            .args(["--var", &format!("GITHUB_APP_SLUG:{APP_SLUG}")])
            .args([
                "--var",
                &format!("GITLAB_URL:{emulator_base}/gitlab/{GITLAB_INSTANCE}"),
            ])
            .args([
                "--var",
                &format!("AZURE_AUTHORITY_URL:{emulator_base}/microsoft/organizations"),
            ])
            .args([
                "--var",
                &format!("AZURE_DEVOPS_API_URL:{emulator_base}/azure"),
            ])
            .args(["--var", &format!("AZURE_VSSPS_URL:{emulator_base}/vssps")])
            .args(["--var", &format!("AZURE_VSAEX_URL:{emulator_base}/vsaex")])
            // `ONECODE_E2E_SUBREQUEST_LIMIT`: the worker's per-invocation budget (`SUBREQUEST_LIMIT`),
            // for benchmarks of a paid plan's 1,000; the suite runs with the default 45.
            .args(
                std::env::var("ONECODE_E2E_SUBREQUEST_LIMIT")
                    .ok()
                    .map(|n| vec!["--var".to_string(), format!("SUBREQUEST_LIMIT:{n}")])
                    .unwrap_or_default(),
            )
            // `GET /__scheduled?cron=…` runs a cron trigger ([`Stack::trigger_cron`]).
            .arg("--test-scheduled")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let wrangler_proc =
            Managed::spawn_group("wrangler dev", &mut dev).map_err(|e| e.to_string())?;
        let keep = std::env::var_os("ONECODE_E2E_KEEP").is_some();
        let targets = [wrangler_proc.kill_target(), procs.running[0].kill_target()];
        procs.running.push(wrangler_proc);
        let watchdog = procs::watchdog(&targets, (!keep).then_some(dir.as_path()))
            .map_err(|e| format!("watchdog: {e}"))?;
        procs.running.insert(0, watchdog);

        let http = Http::default();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let wrangler_proc = procs.running.last_mut().expect("wrangler is running");
            if let Some(status) = wrangler_proc.exited() {
                return Err(format!(
                    "wrangler dev exited ({status}) before answering; wrangler.log:\n{}",
                    tail(&dir.join("wrangler.log"), 60)
                ));
            }
            if health(&worker) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "wrangler dev did not answer /health within {READY_TIMEOUT:?}; wrangler.log:\n{}",
                    tail(&dir.join("wrangler.log"), 60)
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }

        let inspector = inspector::drain(inspector);

        let d1 = store::object_sqlite(&persist.join("v3/d1/miniflare-D1DatabaseObject"))
            .ok_or("no D1 database file under the persistence directory")?;
        let store = Store::new(d1, persist.join("v3/kv"));
        let emulator = Emulator::new(emulator_base, worker.clone(), http.clone(), signer);
        // The OAuth applications the worker's GITLAB_/AZURE_CLIENT_ID name.
        emulator.gitlab_oauth(
            GITLAB_INSTANCE,
            secrets.get("GITLAB_CLIENT_ID")?,
            secrets.get("GITLAB_CLIENT_SECRET")?,
            None,
        );
        emulator.azure_oauth(
            secrets.get("AZURE_CLIENT_ID")?,
            secrets.get("AZURE_CLIENT_SECRET")?,
            None,
        );
        emulator.github_oauth(
            secrets.get("GITHUB_CLIENT_ID")?,
            secrets.get("GITHUB_CLIENT_SECRET")?,
            GITHUB_USER,
            None,
        );
        for prefix in EMPTY_REPOSITORIES {
            emulator.empty_git(prefix);
        }
        // Access changes made through the emulator's admin API reach the worker as signed
        // webhooks, as GitHub would send them.
        emulator.set_webhook_target(
            &format!("{worker}/github/webhooks"),
            secrets.get("GITHUB_WEBHOOK_SECRET")?,
        );
        Ok(Stack {
            root,
            dir,
            persist,
            worker,
            portal_origin,
            portal_listener,
            emulator,
            store,
            http,
            secrets,
            inspector,
            procs: Mutex::new(Procs {
                running: Vec::new(),
                _emulator_stdout: None,
            }),
        })
    }

    // ---- the worker's API as the portal and the browser use it ----

    /// `POST /v1/connect/github` with an `Authorization` header (or none).
    pub fn connect_raw(&self, authorization: Option<&str>) -> Resp {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        self.http.request(
            "POST",
            &format!("{}/v1/connect/github", self.worker),
            &headers,
            Some("{}"),
        )
    }

    pub fn portal_secret(&self) -> &str {
        self.secrets
            .get("PORTAL_JWT_SECRET")
            .expect("PORTAL_JWT_SECRET")
    }

    pub fn state_secret(&self) -> &str {
        self.secrets.get("STATE_SECRET").expect("STATE_SECRET")
    }

    /// A valid portal JWT for `tenant` / `technician`.
    pub fn portal_jwt(&self, tenant: &str, technician: &str) -> String {
        auth::portal_jwt(self.portal_secret(), tenant, technician)
    }

    /// Starts a connection as the portal would (technician `<tenant>-tech`): the install URL.
    #[track_caller]
    pub fn connect(&self, tenant: &str) -> String {
        let jwt = self.portal_jwt(tenant, &technician(tenant));
        let resp = self.connect_raw(Some(&format!("Bearer {jwt}")));
        assert_eq!(resp.status, 200, "POST /v1/connect/github: {}", resp.body);
        let body = resp.json();
        let url = body["install_url"]
            .as_str()
            .unwrap_or_else(|| panic!("no install_url in {body}"))
            .to_string();
        assert!(
            url.starts_with(&format!(
                "{}/apps/{APP_SLUG}/installations/new?state=",
                self.emulator.base
            )),
            "install URL {url} is not the emulator's install page"
        );
        url
    }

    /// Follows the install page as the browser would, choosing `installation_id`: the setup
    /// URL GitHub sends the browser to.
    #[track_caller]
    pub fn walk_install(&self, install_url: &str, installation_id: u64) -> String {
        let resp = self
            .http
            .get(&format!("{install_url}&target={installation_id}"));
        assert_eq!(resp.status, 302, "install page: {}", resp.body);
        let location = resp.header("location").expect("install page Location");
        assert!(
            location.starts_with(&format!("{}/github/setup?", self.worker)),
            "the install page sent the browser to {location}"
        );
        location.to_string()
    }

    /// A connect callback as the browser and then the technician go through it: `GET` the
    /// callback URL (absolute, or a path on the worker) without following its redirect; when it
    /// holds the connection for confirmation (`/connect/{provider}/confirm?pending=`), the
    /// technician who started the flow (the state's tenant and technician) confirms it with
    /// `POST /v1/connect/confirm`, and the answer's `done_url` is the Location the outcome is
    /// read from (a failed confirmation's status and body otherwise).
    pub fn callback(&self, url: &str) -> Callback {
        let held = self.callback_held(url);
        let Some(pending) = held.held.clone() else {
            return held;
        };
        let state = auth::query_param(&self.absolute(url), "state")
            .expect("a callback that held a connection has a state");
        let claims = onecode_edge::auth::state_token::verify(
            self.state_secret().as_bytes(),
            &state,
            auth::now(),
        )
        .expect("the callback's state was issued by the worker");
        let resp = self.confirm_as(&claims.tenant, &claims.technician, &pending.pending);
        if resp.status != 200 {
            return Callback {
                status: resp.status,
                location: format!("confirmation refused: {}", resp.body),
                held: Some(pending),
            };
        }
        let done_url = resp.json()["done_url"]
            .as_str()
            .unwrap_or_else(|| panic!("no done_url in {}", resp.body))
            .to_string();
        Callback {
            status: held.status,
            location: done_url,
            held: Some(pending),
        }
    }

    /// `GET` a callback URL and stop there: the connection is only held, if anything.
    pub fn callback_held(&self, url: &str) -> Callback {
        let resp = self.http.get(&self.absolute(url));
        let location = resp.header("location").unwrap_or_default().to_string();
        Callback {
            status: resp.status,
            held: (resp.status == 303)
                .then(|| Held::from_location(&location))
                .flatten(),
            location,
        }
    }

    /// `POST /v1/connect/confirm` as `tenant`'s `technician`.
    pub fn confirm_as(&self, tenant: &str, technician: &str, pending: &str) -> Resp {
        let jwt = self.portal_jwt(tenant, technician);
        self.http.request(
            "POST",
            &format!("{}/v1/connect/confirm", self.worker),
            &[("authorization", &format!("Bearer {jwt}"))],
            Some(&serde_json::json!({ "pending": pending }).to_string()),
        )
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.worker)
        } else {
            url.to_string()
        }
    }

    /// A setup URL on the worker with these query parameters and, unless they name one, a fresh
    /// OAuth `code` of [`GITHUB_USER`] (as GitHub adds with OAuth during installation).
    pub fn setup_url(&self, params: &[(&str, &str)]) -> String {
        let code = self.emulator.github_code();
        let mut all = params.to_vec();
        if !params.iter().any(|(k, _)| *k == "code") {
            all.push(("code", &code));
        }
        self.setup_url_as_sent(&all)
    }

    /// A setup URL with exactly these query parameters (no code added).
    pub fn setup_url_as_sent(&self, params: &[(&str, &str)]) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("{}/github/setup?{query}", self.worker)
    }

    /// connect → install page → callback.
    pub fn connect_and_install(&self, tenant: &str, installation_id: u64) -> Callback {
        let install_url = self.connect(tenant);
        let setup = self.walk_install(&install_url, installation_id);
        self.callback(&setup)
    }

    /// Last lines of the worker's log, for failure messages.
    pub fn wrangler_tail(&self, lines: usize) -> String {
        tail(&self.dir.join("wrangler.log"), lines)
    }

    /// The queue messages the worker traced in its log (`src/edge/queue_trace.rs`, in `e2e`
    /// builds): `(event, queue, body)` with `event` one of `sent`, `retried`, `ended`.
    pub fn queue_trace(&self) -> Vec<(String, String, String)> {
        let log = std::fs::read(self.dir.join("wrangler.log")).unwrap_or_default();
        String::from_utf8_lossy(&log)
            .lines()
            .filter_map(|line| {
                let (_, traced) = line.split_once("e2e-queue ")?;
                let mut parts = traced.splitn(3, ' ');
                Some((
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                    parts.next()?.trim_end().to_string(),
                ))
            })
            .collect()
    }

    /// Waits until every queue message whose body `involves` has settled: each body was
    /// delivered, and its handling ended without a retry, as many times as it was sent. Work
    /// a message starts is traced before its own handling ends, so once nothing involved is in
    /// flight, nothing it started is either (a message that exhausted its retries settles when
    /// the dead-letter queue has handled it).
    #[track_caller]
    pub fn queues_settled(&self, what: &str, involves: impl Fn(&str) -> bool) {
        poll_until(Duration::from_secs(300), what, || {
            let mut in_flight: HashMap<String, i64> = HashMap::new();
            for (event, _, body) in self.queue_trace() {
                if involves(&body) {
                    *in_flight.entry(body).or_default() += match event.as_str() {
                        "sent" | "retried" => 1,
                        "ended" => -1,
                        _ => 0,
                    };
                }
            }
            let unsettled: Vec<String> = in_flight
                .into_iter()
                .filter(|(_, n)| *n != 0)
                .map(|(body, n)| format!("{n:+} {body}"))
                .collect();
            if unsettled.is_empty() {
                Ok(())
            } else {
                Err(format!("in flight: {}", unsettled.join("; ")))
            }
        })
    }

    /// Waits (at most `limit`) until the queues are quiet: every message sent was handled as
    /// often as it was sent, except those waiting out a retry's delay (a backoff of up to
    /// minutes that no test should have to sit through). Tests that run alone start here, so
    /// that the work earlier tests left queued (thousands of backups after a large connect)
    /// does not run under them. `false` if the queues were still busy at `limit`.
    pub fn queues_quiet(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let mut in_flight: HashMap<String, (i64, bool)> = HashMap::new();
            for (event, _, body) in self.queue_trace() {
                let entry = in_flight.entry(body).or_default();
                match event.as_str() {
                    "sent" => *entry = (entry.0 + 1, false),
                    "retried" => *entry = (entry.0 + 1, true),
                    "ended" => entry.0 -= 1,
                    _ => {}
                }
            }
            let busy = in_flight
                .values()
                .filter(|(n, backing_off)| *n > 0 && !backing_off)
                .count();
            if busy == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                eprintln!("e2e: {busy} queue messages still in flight after {limit:?}");
                return false;
            }
            // The whole log is read each time: once a second is plenty.
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// [`Stack::trigger_cron`] as at `unix_secs`: the worker (built with its `e2e`
    /// feature) takes the time of the pass from the cron (`"<cron> @<unix seconds>"`).
    #[track_caller]
    pub fn trigger_cron_at(&self, cron: &str, unix_secs: i64) {
        self.trigger_cron(&format!("{cron} @{unix_secs}"));
    }

    /// Runs the worker's scheduled handler for `cron` (e.g. `"15 * * * *"`) through wrangler's
    /// `--test-scheduled` route; returns once the handler has finished (the queue work it starts
    /// goes on in the background).
    #[track_caller]
    pub fn trigger_cron(&self, cron: &str) {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cron", cron)
            .finish();
        let resp = self
            .http
            .get(&format!("{}/__scheduled?{query}", self.worker));
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (200, "Ran scheduled event"),
            "cron {cron}; wrangler.log:\n{}",
            self.wrangler_tail(30)
        );
    }
}

/// The technician id the helpers use for a tenant.
pub fn technician(tenant: &str) -> String {
    format!("{tenant}-tech")
}

fn health(worker: &str) -> bool {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    agent
        .get(&format!("{worker}/health"))
        .call()
        .ok()
        .and_then(|r| r.into_json::<serde_json::Value>().ok())
        .is_some_and(|v| v["ok"] == true)
}
