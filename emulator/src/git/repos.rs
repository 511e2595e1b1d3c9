//! The bare repositories behind the git routes, made and read by the real `git` binary.
//!
//! They live under the git root (`--git-root <dir>`, kept; by default a fresh
//! `github-emulator-git-{pid}-{random}` under the system temp directory, removed when the
//! emulator is dropped and, since the binary is usually killed, by the next emulator to start
//! once its process is gone), at `{root}/{key}.git` with every key segment lowercase and
//! percent-encoded: `github/{owner}/{repo}.git`, `gitlab/{instance}/{group}/…/{project}.git`,
//! `azure/{org}/{project}/{repo}.git`. A repository is created on the first git request or admin
//! call for it, never when it is listed, in a scratch directory renamed into place, so a
//! directory that exists is complete. Git runs with no system or user configuration
//! (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`, its own `HOME`, a cleared
//! environment, so `GIT_PROTOCOL` never reaches `upload-pack`).
//!
//! **Empty repositories.** A repository whose key starts with a prefix registered with
//! `POST /_emulator/git/empty` (see `admin.rs`) starts empty, as a repository just created on
//! the real service: no refs, `HEAD` symbolic to `refs/heads/{default branch}`. Until an admin
//! call touches it, it has no directory of its own and runs no git per advertisement: its
//! `info/refs` answer is the advertisement of one shared empty bare repository
//! (`{root}/.empty.git`, made on first use, kept in a given root), computed once with
//! `git upload-pack --stateless-rpc --advertise-refs` and cached (protocol v0 never shows an
//! unborn `HEAD`, so it is the same for every default branch), and an upload-pack POST runs
//! `git upload-pack --stateless-rpc` in that shared repository (git itself answers: nothing
//! to a bare flush, `ERR upload-pack: not our ref …` to a `want`; clients never POST after an
//! empty advertisement). The first admin call (`GET …/refs` included) creates its own bare
//! repository, empty (same configuration, sequence file, no history), served from then on
//! like any other; `POST …/commits` on it makes the first commit a root commit. A repository
//! created before its prefix was registered keeps its content.
//!
//! **Initial content**, deterministic per repository (the same key gives the same object ids
//! on every run): author and committer `Emulator <emulator@example.invalid>`, dates from
//! 2020-01-01T00:00:00Z one hour apart, made with one `git fast-import`:
//!
//! | Ref | Points at |
//! | --- | --- |
//! | `HEAD` | symbolic, `refs/heads/{default branch}` (`main` unless a GitHub repository is listed with another) |
//! | `refs/heads/{default}` | C3 "Update README" ← C2 "Add source" ← C1 "Initial commit" (`README.md`, `src/main.txt`) |
//! | `refs/heads/develop` (`feature` when the default is `develop`) | "Work on develop" (`docs/notes.md`) ← C2 |
//! | `refs/tags/v1.0` | annotated tag "Release 1.0" of C2 |
//! | `refs/tags/v0.1` | lightweight, C1 |
//! | GitHub: `refs/pull/1/head` | P "Proposed change" (`src/feature.txt`) ← C3 |
//! | GitHub: `refs/pull/1/merge` | "Merge pull request #1" with parents C3 and P |
//! | GitLab: `refs/merge-requests/1/head` | P ← C3 |
//!
//! Admin changes (`admin.rs`) number their commits with a per-repository sequence (the file
//! `emulator-sequence` in the bare repository): commit `n` adds `emulator/commit-{n:06}.txt`,
//! or `data/blob-{n:06}.bin` of `file_bytes` bytes (compressible text, or with `incompressible`
//! bytes of a SplitMix64 stream seeded by the key and `n`, written with pack compression 0),
//! dated 2020-02-01 plus `n` minutes, so re-created histories get new object ids. Content is
//! streamed into `git fast-import` (blobs over 1 MiB go straight to the pack); each repository
//! sets `core.bigFileThreshold = 1m` so `upload-pack` never delta-compresses large blobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use serde_json::{json, Value};

use super::{Flavor, Located};
use crate::http::{encode_segment, BodyStream};

const IDENT: &str = "Emulator <emulator@example.invalid>";
/// 2020-01-01T00:00:00Z: the initial commits, one hour apart.
const INITIAL_EPOCH: i64 = 1_577_836_800;
/// 2020-02-01T00:00:00Z: admin commits, one minute per sequence number.
const ADMIN_EPOCH: i64 = 1_580_515_200;
const SEQUENCE_FILE: &str = "emulator-sequence";
/// The shared empty bare repository, under the git root.
const EMPTY_DIR: &str = ".empty.git";
/// Prefix of default git roots under the temp directory.
const TEMP_PREFIX: &str = "github-emulator-git-";

/// A refused or failed git operation: the HTTP status and message for the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitError {
    pub status: u16,
    pub message: String,
}

fn failed(message: impl Into<String>) -> GitError {
    GitError {
        status: 500,
        message: message.into(),
    }
}

fn refused(status: u16, message: impl Into<String>) -> GitError {
    GitError {
        status,
        message: message.into(),
    }
}

/// Commits to add (`POST …/commits`, and after a forced update).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCommits {
    pub count: u32,
    pub file_bytes: u64,
    pub incompressible: bool,
}

struct Root {
    dir: PathBuf,
    /// `HOME` of every git process.
    home: PathBuf,
    /// Scratch space for repositories being created.
    scratch: PathBuf,
    /// Made by the emulator (removed on drop) rather than given.
    owned: bool,
}

impl Drop for Root {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The git root and a lock per repository (creation and admin changes hold it; `upload-pack`
/// needs none, git's own ref locking keeps reads consistent).
pub struct Repos {
    configured: Option<PathBuf>,
    root: OnceLock<Result<Root, String>>,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Key prefixes of repositories that start empty (only ever added to).
    empty_prefixes: Mutex<BTreeSet<String>>,
    /// The shared empty repository, made on first use.
    empty: Mutex<Option<Arc<EmptyRepo>>>,
}

/// The bare repository every not yet created empty repository is served from, and its
/// advertisement (no refs, so the same for every default branch).
struct EmptyRepo {
    dir: PathBuf,
    advertisement: Vec<u8>,
}

/// Where a repository's git requests are served from.
enum Served {
    /// Its own bare repository.
    Own(PathBuf),
    /// Not created yet and starting empty: the shared empty repository.
    Empty(Arc<EmptyRepo>),
}

impl Repos {
    /// Repositories under `dir`, or under a fresh temporary directory made on first use.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Repos {
            configured: dir,
            root: OnceLock::new(),
            locks: Mutex::new(HashMap::new()),
            empty_prefixes: Mutex::new(BTreeSet::new()),
            empty: Mutex::new(None),
        }
    }

    /// Registers a key prefix (lowercase, see `git/admin.rs` for what is accepted) of
    /// repositories that start empty; every prefix registered so far.
    pub fn add_empty_prefix(&self, prefix: &str) -> Vec<String> {
        let mut prefixes = self
            .empty_prefixes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        prefixes.insert(prefix.to_lowercase());
        prefixes.iter().cloned().collect()
    }

    /// Every registered empty prefix.
    pub fn empty_prefixes(&self) -> Vec<String> {
        let prefixes = self
            .empty_prefixes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        prefixes.iter().cloned().collect()
    }

    /// Whether a repository not created yet starts empty.
    fn starts_empty(&self, key: &str) -> bool {
        let prefixes = self
            .empty_prefixes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// The shared empty repository, created (or found, in a kept git root) and advertised once.
    fn empty_repo(&self) -> Result<Arc<EmptyRepo>, String> {
        let mut slot = self.empty.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(empty) = slot.as_ref() {
            return Ok(empty.clone());
        }
        let root = self.root()?;
        let dir = root.dir.join(EMPTY_DIR);
        if !dir.is_dir() {
            build_in_scratch(root, &dir, |scratch| init_bare(root, scratch, "main"))?;
        }
        let advertisement = advertise(root, &dir)?;
        let empty = Arc::new(EmptyRepo { dir, advertisement });
        *slot = Some(empty.clone());
        Ok(empty)
    }

    /// Where `found` is served from: its own bare repository (created first, with its initial
    /// content, unless it starts empty) or, while an empty one has no directory, the shared
    /// empty repository.
    fn served(&self, found: &Located) -> Result<Served, String> {
        let root = self.root()?;
        let dir = root.dir.join(relative_dir(&found.key));
        if dir.is_dir() {
            return Ok(Served::Own(dir));
        }
        if self.starts_empty(&found.key) {
            return self.empty_repo().map(Served::Empty);
        }
        let lock = self.lock(&found.key);
        let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        create_if_missing(root, found, &dir, false)?;
        Ok(Served::Own(dir))
    }

    fn root(&self) -> Result<&Root, String> {
        self.root
            .get_or_init(|| open_root(self.configured.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn lock(&self, key: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(key.to_string()).or_default().clone()
    }

    /// Runs `change` on the repository (created first if needed, empty when it starts empty)
    /// while holding its lock, then answers its refs.
    fn change(
        &self,
        found: &Located,
        change: impl FnOnce(&Git, &Path) -> Result<(), GitError>,
    ) -> Result<Value, GitError> {
        let root = self.root().map_err(failed)?;
        let dir = root.dir.join(relative_dir(&found.key));
        let lock = self.lock(&found.key);
        let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        create_if_missing(root, found, &dir, self.starts_empty(&found.key)).map_err(failed)?;
        let git = Git::new(root, &dir);
        change(&git, &dir)?;
        refs_json(&git, &dir)
    }

    /// `{"refs":{name: oid},"head","path"}` of the repository.
    pub fn refs(&self, found: &Located) -> Result<Value, GitError> {
        self.change(found, |_, _| Ok(()))
    }

    /// Adds commits to `branch` (created from `HEAD` when missing, or as a new root commit
    /// when `HEAD` names no commit yet: an empty repository).
    pub fn add_commits(
        &self,
        found: &Located,
        branch: &str,
        commits: &NewCommits,
    ) -> Result<Value, GitError> {
        self.change(found, |git, dir| {
            check_ref_name(git, "heads", branch)?;
            let start = match git.resolve(&format!("refs/heads/{branch}"))? {
                Some(_) => Some(format!("refs/heads/{branch}^0")),
                None => git.resolve("HEAD")?,
            };
            append_commits(git, dir, found, branch, start.as_deref(), commits)
        })
    }

    /// Creates `refs/heads/{name}` at `from` (default `HEAD`).
    pub fn create_branch(
        &self,
        found: &Located,
        name: &str,
        from: Option<&str>,
    ) -> Result<Value, GitError> {
        self.change(found, |git, _| {
            check_ref_name(git, "heads", name)?;
            let target = git.commit(from.unwrap_or("HEAD"))?;
            git.create_ref(&format!("refs/heads/{name}"), &target)
        })
    }

    /// Deletes `refs/heads/{name}` (not the one `HEAD` names).
    pub fn delete_branch(&self, found: &Located, name: &str) -> Result<Value, GitError> {
        self.change(found, |git, _| {
            let refname = format!("refs/heads/{name}");
            if git.resolve(&refname)?.is_none() {
                return Err(refused(404, format!("no branch {name}")));
            }
            if git.head()? == refname {
                return Err(refused(
                    400,
                    format!("{name} is the default branch (HEAD); it cannot be deleted"),
                ));
            }
            git.run(&["update-ref", "-d", &refname]).map(drop)
        })
    }

    /// Creates `refs/tags/{name}` at `target` (default `HEAD`), annotated or lightweight.
    pub fn create_tag(
        &self,
        found: &Located,
        name: &str,
        target: Option<&str>,
        annotated: bool,
    ) -> Result<Value, GitError> {
        self.change(found, |git, dir| {
            check_ref_name(git, "tags", name)?;
            let refname = format!("refs/tags/{name}");
            let commit = git.commit(target.unwrap_or("HEAD"))?;
            if git.resolve(&refname)?.is_some() {
                return Err(refused(409, format!("tag {name} already exists")));
            }
            if !annotated {
                return git.create_ref(&refname, &commit);
            }
            let seq = take_sequence(dir, 1)?;
            let message = format!("Tag {name}\n");
            let stream = format!(
                "tag {name}\nfrom {commit}\ntagger {IDENT} {} +0000\ndata {}\n{message}\ndone\n",
                admin_time(seq),
                message.len()
            );
            git.fast_import(false, |out| out.write_all(stream.as_bytes()))
        })
    }

    /// Resets `branch` to `to` (default its parent), then adds `commits` on top: a rewritten
    /// history, as after a force push.
    pub fn force_push(
        &self,
        found: &Located,
        branch: &str,
        to: Option<&str>,
        commits: &NewCommits,
    ) -> Result<Value, GitError> {
        self.change(found, |git, dir| {
            let refname = format!("refs/heads/{branch}");
            if git.resolve(&refname)?.is_none() {
                return Err(refused(404, format!("no branch {branch}")));
            }
            let target = git.commit(to.unwrap_or(&format!("{refname}~1")))?;
            git.run(&["update-ref", &refname, &target])?;
            if commits.count == 0 {
                return Ok(());
            }
            append_commits(git, dir, found, branch, Some(&target), commits)
        })
    }

    /// `git upload-pack --stateless-rpc --advertise-refs` of a repository (created first if
    /// needed); for an empty one not created yet, that of the shared empty repository, computed
    /// once.
    pub fn advertisement(&self, found: &Located) -> Result<Vec<u8>, String> {
        match self.served(found)? {
            Served::Own(dir) => advertise(self.root()?, &dir),
            Served::Empty(empty) => Ok(empty.advertisement.clone()),
        }
    }

    /// `git upload-pack --stateless-rpc` with `request` on stdin, in the repository (created
    /// first if needed) or, for an empty one not created yet, in the shared empty repository
    /// (git answers a request to an empty repository itself); its output as it comes.
    pub fn upload_pack(&self, found: &Located, request: Vec<u8>) -> Result<BodyStream, String> {
        let served = self.served(found)?;
        let dir = match &served {
            Served::Own(dir) => dir.as_path(),
            Served::Empty(empty) => empty.dir.as_path(),
        };
        let root = self.root()?;
        let mut child = git_command(root)
            .args(["upload-pack", "--stateless-rpc"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run git upload-pack: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let feeder = std::thread::spawn(move || {
            // A refusing upload-pack may exit before reading everything.
            let _ = stdin.write_all(&request);
        });
        let stdout = child.stdout.take().expect("piped stdout");
        Ok(BodyStream::new(
            ChildOutput {
                child,
                stdout,
                feeder: Some(feeder),
                done: false,
            },
            None,
        ))
    }
}

/// The output of a running git, reaped when read to the end or killed when dropped early (a
/// client that went away).
struct ChildOutput {
    child: Child,
    stdout: ChildStdout,
    feeder: Option<JoinHandle<()>>,
    done: bool,
}

impl ChildOutput {
    fn finish(&mut self) {
        self.done = true;
        match self.child.wait() {
            Ok(status) if !status.success() => {
                eprintln!("github-emulator: git upload-pack exited with {status}")
            }
            Ok(_) => {}
            Err(e) => eprintln!("github-emulator: cannot wait for git upload-pack: {e}"),
        }
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
    }
}

impl Read for ChildOutput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.stdout.read(buf)?;
        if read == 0 && !buf.is_empty() && !self.done {
            self.finish();
        }
        Ok(read)
    }
}

impl Drop for ChildOutput {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            self.finish();
        }
    }
}

fn open_root(configured: Option<PathBuf>) -> Result<Root, String> {
    let (dir, owned) = match configured {
        Some(dir) => (dir, false),
        None => {
            remove_stale_roots();
            let name = format!(
                "{TEMP_PREFIX}{}-{}",
                std::process::id(),
                crate::oauth::random_hex(4)
            );
            (std::env::temp_dir().join(name), true)
        }
    };
    let root = Root {
        home: dir.join(".home"),
        scratch: dir.join(".scratch"),
        dir,
        owned,
    };
    for needed in [&root.dir, &root.home, &root.scratch] {
        fs::create_dir_all(needed)
            .map_err(|e| format!("cannot create git root {}: {e}", needed.display()))?;
    }
    Ok(root)
}

/// Removes default git roots of emulators that are no longer running (where `/proc` tells).
fn remove_stale_roots() {
    if !Path::new("/proc/self").is_dir() {
        return;
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// `{segment}/…/{last}.git`, each segment percent-encoded.
fn relative_dir(key: &str) -> PathBuf {
    let segments: Vec<String> = key.split('/').map(encode_segment).collect();
    let mut path: PathBuf = segments.iter().collect();
    let last = format!("{}.git", segments.last().map_or("", String::as_str));
    path.set_file_name(last);
    path
}

/// git with a cleared environment and no configuration but the repository's.
fn git_command(root: &Root) -> Command {
    let mut command = Command::new("git");
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", &root.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    command
}

/// `git upload-pack --stateless-rpc --advertise-refs` of the bare repository `dir`.
fn advertise(root: &Root, dir: &Path) -> Result<Vec<u8>, String> {
    let mut command = git_command(root);
    command
        .args(["upload-pack", "--stateless-rpc", "--advertise-refs"])
        .arg(dir);
    output(&mut command).map_err(|e| e.message)
}

/// Runs a command to completion: its stdout, or its stderr as the error.
fn output(command: &mut Command) -> Result<Vec<u8>, GitError> {
    let out = command
        .output()
        .map_err(|e| failed(format!("cannot run git: {e}")))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(failed(format!(
            "{command:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// git in one bare repository.
struct Git<'r> {
    root: &'r Root,
    dir: &'r Path,
}

impl<'r> Git<'r> {
    fn new(root: &'r Root, dir: &'r Path) -> Self {
        Git { root, dir }
    }

    fn command(&self) -> Command {
        let mut command = git_command(self.root);
        command.arg("--git-dir").arg(self.dir);
        command
    }

    /// Runs `git {args}`; its trimmed stdout.
    fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let out = output(self.command().args(args))?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// The object id `rev` names, or `None`.
    fn resolve(&self, rev: &str) -> Result<Option<String>, GitError> {
        if rev.starts_with('-') {
            return Err(refused(400, format!("bad revision {rev:?}")));
        }
        let out = self
            .command()
            .args(["rev-parse", "--verify", "--quiet", rev])
            .output()
            .map_err(|e| failed(format!("cannot run git: {e}")))?;
        let oid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((out.status.success() && !oid.is_empty()).then_some(oid))
    }

    /// The commit `rev` names (an object id or a ref), or 400.
    fn commit(&self, rev: &str) -> Result<String, GitError> {
        self.resolve(&format!("{rev}^{{commit}}"))?
            .ok_or_else(|| refused(400, format!("{rev:?} names no commit")))
    }

    /// Creates a ref that must not exist yet (409 if it does).
    fn create_ref(&self, refname: &str, oid: &str) -> Result<(), GitError> {
        if self.resolve(refname)?.is_some() {
            return Err(refused(409, format!("{refname} already exists")));
        }
        self.run(&["update-ref", refname, oid, ""]).map(drop)
    }

    /// What `HEAD` points at (`refs/heads/…`).
    fn head(&self) -> Result<String, GitError> {
        self.run(&["symbolic-ref", "HEAD"])
    }

    /// Runs `git fast-import` on the stream `write` produces (pack compression 0 when `store`).
    fn fast_import(
        &self,
        store: bool,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), GitError> {
        let mut command = self.command();
        // Keep what it writes as one pack (below 100 objects it would explode them loose).
        command.args(["-c", "fastimport.unpackLimit=1"]);
        if store {
            command.args(["-c", "pack.compression=0"]);
        }
        let mut child = command
            .args([
                "fast-import",
                "--quiet",
                "--done",
                "--big-file-threshold=1m",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run git fast-import: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut out = BufWriter::with_capacity(1 << 20, stdin);
        let written = write(&mut out).and_then(|()| out.flush());
        drop(out);
        let result = child
            .wait_with_output()
            .map_err(|e| failed(format!("git fast-import failed: {e}")))?;
        if !result.status.success() || written.is_err() {
            return Err(failed(format!(
                "git fast-import exited with {}: {}{}",
                result.status,
                String::from_utf8_lossy(&result.stderr).trim(),
                written.err().map(|e| format!(" ({e})")).unwrap_or_default()
            )));
        }
        Ok(())
    }
}

/// `{"refs","head","path"}`.
fn refs_json(git: &Git, dir: &Path) -> Result<Value, GitError> {
    let listed = git.run(&["for-each-ref", "--format=%(objectname) %(refname)"])?;
    let refs: BTreeMap<&str, &str> = listed
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(oid, name)| (name, oid))
        .collect();
    Ok(json!({ "refs": refs, "head": git.head()?, "path": dir.display().to_string() }))
}

/// Checks `refs/{kind}/{name}` with `git check-ref-format` (400 when invalid).
fn check_ref_name(git: &Git, kind: &str, name: &str) -> Result<(), GitError> {
    let refname = format!("refs/{kind}/{name}");
    if name.is_empty() || name.starts_with('-') || git.run(&["check-ref-format", &refname]).is_err()
    {
        return Err(refused(400, format!("bad name {name:?}")));
    }
    Ok(())
}

/// Creates the repository of `found` at `dir` unless it exists: empty (no refs, `HEAD` unborn
/// on the default branch) when `empty`, else with its initial content.
fn create_if_missing(root: &Root, found: &Located, dir: &Path, empty: bool) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    build_in_scratch(root, dir, |scratch| create(root, found, scratch, empty))
}

/// Runs `build` on a fresh scratch directory, then renames it to `dir` (so a directory that
/// exists is complete).
fn build_in_scratch(
    root: &Root,
    dir: &Path,
    build: impl FnOnce(&Path) -> Result<(), GitError>,
) -> Result<(), String> {
    let scratch = root
        .scratch
        .join(format!("new-{}", crate::oauth::random_hex(8)));
    let made = build(&scratch).map_err(|e| e.message).and_then(|()| {
        let parent = dir.parent().expect("repositories live below the root");
        fs::create_dir_all(parent)
            .and_then(|()| fs::rename(&scratch, dir))
            .map_err(|e| format!("cannot move repository to {}: {e}", dir.display()))
    });
    if made.is_err() {
        let _ = fs::remove_dir_all(&scratch);
    }
    made
}

/// `git init --bare` with `HEAD` on `default_branch` and the configuration every repository
/// has.
fn init_bare(root: &Root, dir: &Path, default_branch: &str) -> Result<(), GitError> {
    let mut init = git_command(root);
    init.args(["init", "--bare", "--quiet", "--template="])
        .arg(format!("--initial-branch={default_branch}"))
        .arg(dir);
    output(&mut init)?;
    let mut config = fs::OpenOptions::new()
        .append(true)
        .open(dir.join("config"))
        .map_err(|e| failed(format!("cannot open {}/config: {e}", dir.display())))?;
    config
        .write_all(b"[core]\n\tbigFileThreshold = 1m\n[gc]\n\tauto = 0\n")
        .map_err(|e| failed(format!("cannot write {}/config: {e}", dir.display())))
}

fn create(root: &Root, found: &Located, dir: &Path, empty: bool) -> Result<(), GitError> {
    init_bare(root, dir, &found.default_branch)?;
    if !empty {
        let git = Git::new(root, dir);
        let stream = initial_stream(found);
        git.fast_import(false, |out| out.write_all(stream.as_bytes()))?;
    }
    fs::write(dir.join(SEQUENCE_FILE), "1\n")
        .map_err(|e| failed(format!("cannot write the sequence file: {e}")))
}

/// 64-bit FNV-1a, for seeds.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(b"\0") {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// A fast deterministic byte stream (SplitMix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A `commit` command's header up to its message (`from`/`merge`/file commands follow).
fn commit_header(refname: &str, mark: u32, when: i64, message: &str) -> String {
    format!(
        "commit {refname}\nmark :{mark}\nauthor {IDENT} {when} +0000\ncommitter {IDENT} {when} +0000\ndata {}\n{message}\n",
        message.len()
    )
}

/// `M 100644 inline {path}` with small content.
fn inline_file(path: &str, content: &str) -> String {
    format!(
        "M 100644 inline {path}\ndata {}\n{content}\n",
        content.len()
    )
}

/// The fast-import stream of a repository's initial content (see the module header).
fn initial_stream(found: &Located) -> String {
    let seed = fnv1a(&[found.key.as_bytes()]);
    let at = |hours: i64| INITIAL_EPOCH + hours * 3600;
    let branch = format!("refs/heads/{}", found.default_branch);
    let extra = if found.default_branch == "develop" {
        "feature"
    } else {
        "develop"
    };
    let name = &found.display;
    let mut s = String::new();
    s += &commit_header(&branch, 1, at(0), "Initial commit\n");
    s += &inline_file(
        "README.md",
        &format!("# {name}\n\nServed by github-emulator.\n"),
    );
    s += "\n";
    s += &commit_header(&branch, 2, at(1), "Add source\n");
    s += "from :1\n";
    let source: String = (0..8)
        .map(|i| format!("line {i} of {name}: {:016x}\n", seed.rotate_left(i * 8)))
        .collect();
    s += &inline_file("src/main.txt", &source);
    s += "\n";
    s += &commit_header(&branch, 3, at(2), "Update README\n");
    s += "from :2\n";
    s += &inline_file(
        "README.md",
        &format!("# {name}\n\nServed by github-emulator.\n\nSeed {seed:016x}.\n"),
    );
    s += "\n";
    s += &commit_header(
        &format!("refs/heads/{extra}"),
        4,
        at(3),
        &format!("Work on {extra}\n"),
    );
    s += "from :2\n";
    s += &inline_file("docs/notes.md", &format!("Notes on {extra} of {name}.\n"));
    s += "\n";
    let proposal = format!("A proposed change to {name}.\n");
    let review_ref = match found.flavor {
        Flavor::GitHub => Some("refs/pull/1/head"),
        Flavor::GitLab => Some("refs/merge-requests/1/head"),
        Flavor::Azure => None,
    };
    if let Some(review_ref) = review_ref {
        s += &commit_header(review_ref, 5, at(4), "Proposed change\n");
        s += "from :3\n";
        s += &inline_file("src/feature.txt", &proposal);
        s += "\n";
    }
    if found.flavor == Flavor::GitHub {
        s += &commit_header("refs/pull/1/merge", 6, at(5), "Merge pull request #1\n");
        s += "from :3\nmerge :5\n";
        s += &inline_file("src/feature.txt", &proposal);
        s += "\n";
    }
    let tag_message = "Release 1.0\n";
    s += &format!(
        "tag v1.0\nfrom :2\ntagger {IDENT} {} +0000\ndata {}\n{tag_message}\n",
        at(6),
        tag_message.len()
    );
    s += "reset refs/tags/v0.1\nfrom :1\n\ndone\n";
    s
}

fn admin_time(seq: u64) -> i64 {
    ADMIN_EPOCH + seq as i64 * 60
}

/// Reserves `count` sequence numbers; the first.
fn take_sequence(dir: &Path, count: u64) -> Result<u64, GitError> {
    let path = dir.join(SEQUENCE_FILE);
    let next: u64 = fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1);
    fs::write(&path, format!("{}\n", next + count))
        .map_err(|e| failed(format!("cannot write the sequence file: {e}")))?;
    Ok(next)
}

/// Appends `commits` to `branch`, the first one's parent being `start` (a commit-ish; `None`:
/// the first one is a root commit).
fn append_commits(
    git: &Git,
    dir: &Path,
    found: &Located,
    branch: &str,
    start: Option<&str>,
    commits: &NewCommits,
) -> Result<(), GitError> {
    if commits.count == 0 {
        return Ok(());
    }
    let first = take_sequence(dir, u64::from(commits.count))?;
    let store = commits.incompressible && commits.file_bytes > 0;
    git.fast_import(store, |out| {
        for i in 0..u64::from(commits.count) {
            let seq = first + i;
            let message = format!("Commit {seq} on {branch}\n");
            let header = commit_header(
                &format!("refs/heads/{branch}"),
                1,
                admin_time(seq),
                &message,
            );
            out.write_all(header.as_bytes())?;
            if let (0, Some(start)) = (i, start) {
                writeln!(out, "from {start}")?;
            }
            if commits.file_bytes == 0 {
                let content = format!("commit {seq} on {branch} of {}\n", found.display);
                let file = inline_file(&format!("emulator/commit-{seq:06}.txt"), &content);
                out.write_all(file.as_bytes())?;
            } else {
                let path = format!("data/blob-{seq:06}.bin");
                write!(out, "M 100644 inline {path}\ndata {}\n", commits.file_bytes)?;
                let seed = fnv1a(&[found.key.as_bytes(), &seq.to_le_bytes()]);
                write_content(out, commits.file_bytes, commits.incompressible, seed, seq)?;
                out.write_all(b"\n")?;
            }
            out.write_all(b"\n")?;
        }
        out.write_all(b"done\n")
    })
}

/// `len` bytes of generated content, streamed in 64 KiB pieces.
fn write_content(
    out: &mut dyn Write,
    len: u64,
    incompressible: bool,
    seed: u64,
    seq: u64,
) -> io::Result<()> {
    const PIECE: usize = 64 * 1024;
    let mut buf = vec![0u8; PIECE];
    let mut left = len;
    if incompressible {
        let mut rng = SplitMix64(seed);
        while left > 0 {
            let n = PIECE.min(usize::try_from(left).unwrap_or(PIECE));
            rng.fill(&mut buf[..n]);
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        return Ok(());
    }
    let mut line_no = 0u64;
    let mut text = Vec::with_capacity(PIECE + 128);
    while left > 0 {
        while text.len() < PIECE {
            writeln!(
                text,
                "{seq:06} line {line_no:09}: compressible content generated by github-emulator"
            )?;
            line_no += 1;
        }
        let n = text.len().min(usize::try_from(left).unwrap_or(text.len()));
        out.write_all(&text[..n])?;
        text.clear();
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_encoded_directories() {
        assert_eq!(
            relative_dir("github/acme/repo"),
            PathBuf::from("github/acme/repo.git")
        );
        assert_eq!(
            relative_dir("azure/contoso/fabrikam fiber/web"),
            PathBuf::from("azure/contoso/fabrikam%20fiber/web.git")
        );
        assert_eq!(
            relative_dir("gitlab/com/initech/platform/x"),
            PathBuf::from("gitlab/com/initech/platform/x.git")
        );
    }

    #[test]
    fn generated_content_is_deterministic() {
        let mut a = SplitMix64(7);
        let mut b = SplitMix64(7);
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(fnv1a(&[b"a", b"bc"]), fnv1a(&[b"ab", b"c"]));
        let mut text = Vec::new();
        write_content(&mut text, 100_000, false, 1, 3).unwrap();
        assert_eq!(text.len(), 100_000);
        assert!(text.starts_with(b"000003 line 000000000: "));
        let mut random = Vec::new();
        write_content(&mut random, 70_001, true, 1, 3).unwrap();
        assert_eq!(random.len(), 70_001);
    }
}
