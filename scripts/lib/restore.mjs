// `scripts/restore`: restores a backup snapshot into a working git clone:
//   ONECODE_TOKEN=<portal JWT> scripts/restore SNAPSHOT_ID [DIRECTORY]
// ONECODE_URL is the gateway (default http://127.0.0.1:8787, what scripts/dev starts).
//
// 1. GET /v1/snapshots/{id}/restore: the chain, full bundle first, then the incrementals.
// 2. Each bundle is streamed to a temporary file from its `url` and its SHA-256 checked against
//    the chain's (and its length against `bytes`); any mismatch stops the restore, nothing is
//    left behind.
// 3. The real `git` does the rest: `git clone --mirror` of the full bundle, then `git bundle
//    verify` and `git fetch --prune` of each incremental (every ref, as the bundle holds them),
//    then `HEAD` pointed at the branch the snapshot recorded (`head`), and a working clone of
//    that mirror in DIRECTORY (default: ./restore-<id>) with every ref, whose `origin` is
//    removed, on that branch.
// Needs node 18+ and git.
import { createHash } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { execFileSync } from "node:child_process";

let scratch;
const fail = (message) => {
  console.error(`restore: ${message}`);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  process.exit(1);
};
const [id, target] = process.argv.slice(2);
if (!id || process.argv.length > 4) fail("usage: ONECODE_TOKEN=... scripts/restore SNAPSHOT_ID [DIRECTORY]");
const token = process.env.ONECODE_TOKEN;
if (!token) fail("set ONECODE_TOKEN to a portal token (node scripts/portal-token.mjs <tenant> for scripts/dev)");
const base = (process.env.ONECODE_URL || "http://127.0.0.1:8787").replace(/\/+$/, "");
const directory = resolve(target || `restore-${id}`);
if (existsSync(directory)) fail(`${directory} already exists`);
const headers = { authorization: `Bearer ${token}` };

async function get(path) {
  const response = await fetch(`${base}${path}`, { headers });
  if (!response.ok) {
    const body = await response.text();
    fail(`GET ${path}: ${response.status} ${body}`);
  }
  return response;
}

const git = (cwd, ...args) =>
  execFileSync("git", args, { cwd, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } })
    .toString()
    .trim();

const { head, bundles } = await (await get(`/v1/snapshots/${encodeURIComponent(id)}/restore`)).json();
if (!Array.isArray(bundles) || bundles.length === 0) fail("the restore chain is empty");
scratch = mkdtempSync(join(tmpdir(), "onecode-restore-"));
try {
  const mirror = join(scratch, "mirror.git");
  for (const [i, bundle] of bundles.entries()) {
    const file = join(scratch, `${i}.bundle`);
    const response = await get(bundle.url);
    const hash = createHash("sha256");
    let bytes = 0;
    const counted = Readable.fromWeb(response.body).on("data", (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    await pipeline(counted, createWriteStream(file));
    const sha256 = hash.digest("hex");
    if (sha256 !== bundle.sha256) fail(`snapshot ${bundle.snapshot_id}: SHA-256 ${sha256}, expected ${bundle.sha256}`);
    if (bytes !== bundle.bytes) fail(`snapshot ${bundle.snapshot_id}: ${bytes} bytes, expected ${bundle.bytes}`);
    if (i === 0) {
      git(scratch, "clone", "--quiet", "--mirror", file, mirror);
    } else {
      git(mirror, "bundle", "verify", "--quiet", file);
      git(mirror, "fetch", "--quiet", "--prune", file, "+refs/*:refs/*");
    }
    console.error(`restore: ${bundle.snapshot_id} (${bytes} bytes) applied`);
  }
  // A bundle cannot say which branch HEAD names; the snapshot recorded it.
  if (head) git(mirror, "symbolic-ref", "HEAD", head);
  git(scratch, "clone", "--quiet", mirror, directory);
  // Every ref the backup held, not only the branches a plain clone tracks.
  git(directory, "fetch", "--quiet", "--update-head-ok", mirror, "+refs/*:refs/*");
  git(directory, "remote", "remove", "origin");
  console.log(directory);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
