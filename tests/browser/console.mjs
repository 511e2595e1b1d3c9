#!/usr/bin/env node
// Drives the gateway's console (`/console`) and cross-origin pages in headless Chromium, for the
// end-to-end suite (tests/e2e/console.rs), the README's screenshot (scripts/screenshot-console)
// and the console benchmark (scripts/bench-console):
//   node tests/browser/console.mjs SCENARIO '<JSON arguments>'
// prints one line of JSON: what the scenario saw, with `errors` (console errors while on the
// console, uncaught exceptions and failed requests of the pages), for the caller to assert on.
//
// The browser is Debian's Chromium (`/usr/bin/chromium`, or CHROMIUM), driven by playwright-core
// over its pipe; playwright never downloads a browser here. Each run gets a fresh profile
// (playwright's own temporary user data directory) and nothing reaches beyond loopback: the
// gateway, the emulator and the test's page servers are all on 127.0.0.1.
import { chromium } from "playwright-core";

const [scenario, json = "{}"] = process.argv.slice(2);
const args = JSON.parse(json);
const TIMEOUT = args.timeout_ms ?? 60_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
  ],
});

/// A page that records its console errors, uncaught exceptions and failed requests.
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.errors = [];
  // The console's own errors: not those of the provider's and the gateway's other pages a
  // connect passes through (their missing /favicon.ico, say).
  page.on("console", (m) => {
    if (m.type() === "error" && new URL(page.url()).pathname.startsWith("/console")) {
      page.errors.push(`console: ${m.text()} (${m.location().url})`);
    }
  });
  page.on("pageerror", (e) => page.errors.push(`exception: ${e.message}`));
  page.on("requestfailed", (r) => page.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  return page;
}

const consoleUrl = (token) => `${args.worker}/console#token=${encodeURIComponent(token)}`;

/// Opens the console with the token and waits until the org list is loaded.
async function openConsole(page, token) {
  const response = await page.goto(consoleUrl(token));
  await page.waitForSelector("#orgs tbody[data-loaded]", { state: "attached" });
  return response;
}

/// The org list's row for `login`: its cells' text.
async function orgRow(page, login) {
  const row = page.locator("#orgs tbody tr", { has: page.locator("td:first-child", { hasText: login }) }).first();
  await row.waitFor();
  return { row, cells: await row.locator("td").allTextContents() };
}

const scenarios = {
  // The console loads, with its policy, and lists the tenant's orgs without an error.
  async load() {
    const page = await newPage();
    const response = await openConsole(page, args.token);
    return {
      status: response.status(),
      csp: response.headers()["content-security-policy"] ?? null,
      token_in_url: page.url().includes("token="),
      orgs: await page.locator("#orgs tbody tr").count(),
      who: await page.locator("#who").textContent(),
      errors: page.errors,
    };
  },

  // Connect GitHub through the whole redirect flow: the console asks the API for the install
  // URL, the emulator's install page picks `login`, the gateway's setup callback holds the
  // connection, its confirm page (token already in the tab) confirms it; then the console shows
  // the org with its repository count and its repositories.
  async connect() {
    const page = await newPage();
    await openConsole(page, args.token);
    await page.click("[data-connect=github]");
    await page.waitForURL((u) => u.pathname.endsWith("/installations/new"));
    await page.click(`a:text-is("Install on ${args.login}")`);
    await page.waitForURL((u) => u.pathname === "/connect/github/confirm");
    const prefilled = (await page.inputValue("#token")) === args.token;
    await page.click("#confirm-form button[type=submit]");
    await page.waitForURL((u) => u.pathname === "/connect/github/done");
    const done = await page.locator("body").textContent();
    await openConsole(page, args.token);
    const { row, cells } = await orgRow(page, args.login);
    await row.click();
    await page.waitForFunction((n) => document.querySelectorAll("#repos tbody tr").length >= n, args.repos);
    const repos = await page.locator("#repos tbody tr").count();
    return { prefilled, done, cells, repos, errors: page.errors };
  },

  // Sync `login` from its detail section: what the console says, and its row afterwards.
  async sync() {
    const page = await newPage();
    await openConsole(page, args.token);
    const { row } = await orgRow(page, args.login);
    await row.click();
    await page.waitForSelector("#org:not([hidden])");
    await page.click("#sync");
    await page.waitForFunction(() => /^Sync:/.test(document.getElementById("org-result").textContent));
    const after = await orgRow(page, args.login);
    return { sync: await page.locator("#org-result").textContent(), cells: after.cells, errors: page.errors };
  },

  // A problem detail is shown as such: a settings value the API refuses.
  async problem() {
    const page = await newPage();
    await openConsole(page, args.token);
    const { row } = await orgRow(page, args.login);
    await row.click();
    await page.waitForSelector("#org:not([hidden])");
    await page.fill("#settings [name=retention_days]", "0");
    await page.click("#settings button[type=submit]");
    await page.waitForSelector("#error:not([hidden])");
    return { error: await page.locator("#error").textContent() };
  },

  // Pages of two origins (served by the test) each call the API with the token: what each got.
  async cors() {
    const results = {};
    for (const [name, origin] of Object.entries(args.origins)) {
      const page = await newPage();
      await page.goto(`${origin}/`);
      results[name] = await page.evaluate(
        async ({ url, token }) => {
          try {
            const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
            const body = await r.json();
            return { status: r.status, orgs: Array.isArray(body.items) ? body.items.length : null };
          } catch (e) {
            return { error: String(e) };
          }
        },
        { url: `${args.worker}/v1/orgs`, token: args.token }
      );
      results[name].errors = page.errors;
    }
    return results;
  },

  // The README's screenshot: the console with `login` opened.
  async screenshot() {
    const page = await newPage();
    await openConsole(page, args.token);
    const { row } = await orgRow(page, args.login);
    await row.click();
    await page.waitForFunction(() => document.querySelectorAll("#repos tbody tr").length > 0);
    await page.waitForFunction(() => document.querySelectorAll("#activity li").length > 0);
    await page.screenshot({ path: args.path, fullPage: false });
    return { path: args.path, errors: page.errors };
  },

  // Time from navigation to the first rendered org row, and to all `orgs` rows, in ms.
  async bench() {
    const runs = [];
    for (let i = 0; i < (args.runs ?? 5); i++) {
      const page = await newPage();
      await page.goto(consoleUrl(args.token), { waitUntil: "commit" });
      const first = await (await page.waitForFunction(
        () => document.querySelector("#orgs tbody tr") && performance.now(), null, { polling: "raf" })).jsonValue();
      const all = await (await page.waitForFunction(
        (n) => document.querySelectorAll("#orgs tbody tr").length >= n && performance.now(), args.orgs, { polling: "raf" })).jsonValue();
      runs.push({ first_row_ms: Math.round(first), all_rows_ms: Math.round(all) });
      await page.context().close();
    }
    return { runs };
  },
};

try {
  const run = scenarios[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
  console.log(JSON.stringify(await run()));
} finally {
  await browser.close();
}
