// keel's web UI in a real browser: Debian's chromium driven by playwright-core, against a
// running `keel up`. Run by the cluster test (tests/tests/cluster/browser.rs), which passes:
//   KEEL_URL        the server (http://127.0.0.1:PORT)
//   KEEL_TOKEN      the admin token (pasted into the sign-in form)
//   KEEL_LOGIN_URL  a one-time sign-in link from `keel ui`
//   KEEL_REPO       the repository keel follows (this script commits to it)
//   KEEL_BRANCH     a branch whose plan changes web's image
//   KEEL_SECRETS    comma-separated Secret values that must appear on no page
//   KEEL_ARTIFACTS  where screenshots go
// Each check prints "ok - …"; the first failure throws with what was seen, and the process
// exits 1.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env("KEEL_URL");
const repo = env("KEEL_REPO");
const artifacts = env("KEEL_ARTIFACTS");
const secrets = env("KEEL_SECRETS").split(",").filter(Boolean);
mkdirSync(artifacts, { recursive: true });

const git = (...args) =>
  execFileSync("git", ["-c", "user.name=Browser Test", "-c", "user.email=browser@keel.test", ...args], {
    cwd: repo,
    encoding: "utf8",
  }).trim();

function ok(what) {
  console.log(`ok - ${what}`);
}

function check(condition, what, seen) {
  if (!condition) throw new Error(`${what}\n--- seen:\n${seen}`);
  ok(what);
}

// Polls `probe` until it returns something truthy or `seconds` pass; no page reloads.
async function waitFor(what, seconds, probe) {
  const until = Date.now() + seconds * 1000;
  let last;
  while (Date.now() < until) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${seconds}s waiting for ${what}`);
}

// Every page's source must be free of Secret values (encoded or not).
const visited = [];
async function noSecrets(page, name) {
  const html = await page.content();
  visited.push(name);
  for (const secret of secrets) {
    for (const form of [secret, Buffer.from(secret).toString("base64")]) {
      if (html.includes(form)) throw new Error(`the Secret value ${JSON.stringify(form)} is in the page source of ${name}`);
    }
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.KEEL_CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // Script errors, and failed loads other than the two this script asks for (a wrong
  // token's sign-in, a forged change). A live refresh already on its way when the viewer
  // signs out is refused too; the script answers that by going to the sign-in page.
  let signingOut = false;
  const liveRefresh = (u) => new URL(u).pathname.startsWith("/ui/fragment/") || new URL(u).pathname === "/ui/live";
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && problems.push(`console: ${m.text()}`));
  page.on("response", (r) => {
    const expected =
      (r.status() === 401 && r.url().endsWith("/ui/login")) ||
      (r.status() === 403 && r.url().endsWith("/pods/none")) ||
      (r.status() === 401 && signingOut && liveRefresh(r.url()));
    if (r.status() >= 400 && !expected) problems.push(`${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("dialog", (d) => d.accept());

  // Sign in: a wrong token is refused with a message; the admin token signs in, kept in
  // an HttpOnly, SameSite=Strict cookie, and appears in no URL.
  await page.goto(`${url}/`);
  check(page.url().endsWith("/ui/login"), "signed out, / leads to the sign-in page", page.url());
  await page.fill("#token", "not-a-token");
  await page.click("button[type=submit]");
  check((await page.textContent(".error")).includes("not accepted"), "a wrong token is refused, saying so", await page.content());
  await shot(page, "login");
  await page.fill("#token", env("KEEL_TOKEN"));
  await page.click("button[type=submit]");
  await page.waitForSelector("#overview");
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "keel_session");
  check(session && session.httpOnly && session.sameSite === "Strict", "the session cookie is HttpOnly and SameSite=Strict", JSON.stringify(cookies));
  check(session.value !== env("KEEL_TOKEN"), "it holds a session id, not the token", "");
  check(!page.url().includes(env("KEEL_TOKEN")), "the token is in no URL", page.url());

  // The overview: the synced commit, with its message.
  const head = git("rev-parse", "HEAD").slice(0, 7);
  await waitFor("the synced commit on the overview", 30, async () => (await page.textContent("#synced")).includes(head));
  ok(`the overview shows the synced commit ${head}`);
  await noSecrets(page, "overview");
  await shot(page, "overview");

  // A commit made now appears without a reload (the page's own state survives).
  await page.evaluate(() => {
    window.keelTestMarker = "same page";
  });
  await page.waitForSelector("#live-state:has-text('Live')");
  const configmap = join(repo, "web/configmap.yaml");
  writeFileSync(configmap, `${readFileSync(configmap, "utf8")}# touched by the browser test\n`);
  git("commit", "-qam", "browser test: a live commit");
  const committed = Date.now();
  const live = git("rev-parse", "HEAD").slice(0, 7);
  await waitFor("the new commit on the overview", 20, async () => (await page.textContent("#synced")).includes(live));
  const latency = Date.now() - committed;
  check((await page.evaluate(() => window.keelTestMarker)) === "same page", `the commit appeared without a reload, ${latency} ms after it was made`, "");
  console.log(`measure - commit to overview: ${latency} ms`);
  check((await page.textContent("#synced-message")).includes("browser test: a live commit"), "with its message", await page.textContent("#synced"));

  // A broken commit: the overview shows its located error; the synced commit stays.
  const deployment = join(repo, "web/deployment.yaml");
  const good = readFileSync(deployment, "utf8");
  writeFileSync(deployment, good.replace(/replicas: \d+/, "replicas: three"));
  git("commit", "-qam", "browser test: a broken commit");
  const broken = await waitFor("the located error on the overview", 20, async () => {
    const error = await page.$("#last-error");
    return error && (await error.textContent());
  });
  check(broken.includes("web/deployment.yaml:") && broken.includes("replicas"), "a broken commit shows its located error", broken);
  check((await page.textContent("#synced")).includes(live), "the synced commit stays the last good one", await page.textContent("#synced"));
  await shot(page, "overview-broken");
  git("revert", "--no-edit", "HEAD");
  const fixed = git("rev-parse", "HEAD").slice(0, 7);
  await waitFor("the revert applied", 20, async () => (await page.textContent("#synced")).includes(fixed) && !(await page.$("#last-error")));
  ok("reverting it clears the error");

  // The tree: web's Deployment, its ReplicaSets and 3 pods.
  await page.goto(`${url}/ui/tree?kind=Deployment&q=web`);
  await page.waitForSelector(".tree-row[data-kind=Deployment][data-name=web]");
  const pods = await waitFor("web's 3 pods in the tree", 30, async () => {
    const names = await page.$$eval(".tree-row[data-kind=Pod]", (rows) => rows.map((r) => r.dataset.name));
    return names.length === 3 && names.every((n) => n.startsWith("web-")) && names;
  });
  ok(`the tree of web shows 3 pods: ${pods.join(", ")}`);
  check((await page.textContent("#tree-count")).includes("3 pods"), "and counts them", await page.textContent("#tree-count"));
  await noSecrets(page, "tree");
  await shot(page, "tree");

  // A pod's page: declared (owner's), live, events; logs stream.
  await page.click(`.tree-row[data-kind=Pod][data-name="${pods[0]}"] a`);
  await page.waitForSelector("#logs-form");
  // Let the page start following before anything new is logged.
  await page.waitForTimeout(500);
  const before = (await page.textContent("#logs")).length;
  // web logs each page it serves: ask for pages (each on a new connection, so the Service
  // spreads them over web's pods) until this pod's line streams in.
  await waitFor("a new log line streamed in", 30, async () => {
    await fetch("http://127.0.0.1:30080/", { headers: { connection: "close" } }).catch(() => {});
    return (await page.textContent("#logs")).length > before;
  });
  ok("logs stream (a request's line arrived while following)");
  check((await page.textContent("#declared-at")).includes("declared in web/deployment.yaml:"), "a pod's page names the file that declares its Deployment", await page.textContent("#declared-at"));

  // The terminal: a command's output comes back over the exec channel.
  await page.click("#term-form button[type=submit]");
  await page.waitForSelector("#term-input:not([hidden])");
  await page.fill("#term-input input[name=line]", "echo answer-$((6 * 7))");
  await page.click("#term-input button[type=submit]");
  await waitFor("the command's output in the terminal", 20, async () => (await page.textContent("#term-out")).includes("answer-42"));
  ok("the terminal runs a command in the pod");
  await noSecrets(page, "pod");
  await shot(page, "pod");

  // Restart it (the admin's one action on a pod): done with the page's CSRF token; its
  // ReplicaSet starts another, so web has 3 pods again, this one not among them.
  await page.click("form[data-action=restart] button");
  await page.waitForSelector("form[data-action=restart] .action-result:has-text('Done.')");
  await page.goto(`${url}/ui/tree?kind=Deployment&q=web`);
  const after = await waitFor("a new pod in place of the restarted one", 60, async () => {
    const names = await page.$$eval(".tree-row[data-kind=Pod][data-health=Healthy]", (rows) => rows.map((r) => r.dataset.name));
    return names.length === 3 && !names.includes(pods[0]) && names;
  });
  ok(`restarting ${pods[0]} from its page replaced it: ${after.join(", ")}`);

  // The Deployment's page: its file and line in git, and the diff to live.
  await page.goto(`${url}/ui/objects/Deployment/default/web`);
  check((await page.textContent("#declared-at")).includes("web/deployment.yaml:"), "an object's page names its file and line in git", await page.textContent("#declared-at"));
  check((await page.$$(".diff-add")).length > 0, "and shows what keel added", "");

  // No Secret value in the Secret's own page, nor anywhere else.
  await page.goto(`${url}/ui/objects/Secret/default/api-token`);
  await noSecrets(page, "secret");
  check((await page.textContent("#live-yaml")).includes("token:"), "the Secret's page names its keys, without values", await page.textContent("#live-yaml"));

  // The plan of a branch: the image change, as keel plan says it.
  await page.goto(`${url}/ui/plan`);
  await page.selectOption("select[name=branch]", env("KEEL_BRANCH"));
  await page.click("#plan-form button[type=submit]");
  await page.waitForSelector("#plan");
  const plan = await page.textContent("#plan");
  check(plan.includes("image keel-example/web:1 → keel-example/web:2"), "the plan of a branch shows the image change", plan);
  await noSecrets(page, "plan");
  await shot(page, "plan");

  // History, and the diff between two commits.
  await page.goto(`${url}/ui/history`);
  check((await page.textContent("table.history")).includes("browser test: a broken commit"), "history lists the broken commit", "");
  await page.click("#history-form button[type=submit]");
  await page.waitForSelector("#plan");
  check((await page.textContent("#plan")).includes("Deployment default/web"), "the diff of the last two commits (the revert) shows web's change", await page.textContent("#plan"));
  await noSecrets(page, "history diff");

  // Nodes.
  await page.goto(`${url}/ui/nodes`);
  const nodes = await page.$$eval("tr[data-node]", (rows) => rows.map((r) => r.dataset.node));
  check(nodes.length === 3, `the nodes page lists 3 nodes: ${nodes.join(", ")}`, await page.content());
  await noSecrets(page, "nodes");
  await shot(page, "nodes");
  // Cordon a node and uncordon it again.
  const cordon = `tr[data-node="${nodes[2]}"] form[data-action=cordon] button`;
  await page.click(cordon);
  await page.waitForSelector(`tr[data-node="${nodes[2]}"] .badge:has-text('cordoned')`);
  ok(`${nodes[2]} cordoned from the nodes page`);
  await page.click(cordon);
  await waitFor("the node uncordoned", 10, async () => (await page.textContent(cordon)).trim() === "Cordon" && !(await page.$(`tr[data-node="${nodes[2]}"] .badge:has-text('cordoned')`)));
  ok("and uncordoned");

  // A phone's width: the overview and the tree still work.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${url}/`);
  await page.waitForSelector("#synced");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, "at 390 px the overview fits the width", `${overflow}px too wide`);
  await shot(page, "overview-390");
  await page.goto(`${url}/ui/tree?q=web`);
  await page.waitForSelector(".tree-row[data-kind=Pod]");
  await shot(page, "tree-390");

  // A forged request from a page that is not keel's: no CSRF token, refused.
  const forged = await page.evaluate(async () => (await fetch("/api/v1/namespaces/default/pods/none", { method: "DELETE" })).status);
  check(forged === 403, "a change without the page's CSRF token is refused (403)", String(forged));

  // The one-time link: signs a fresh browser in once; the second use is refused.
  const fresh = await browser.newContext();
  const other = await fresh.newPage();
  await other.goto(env("KEEL_LOGIN_URL"));
  await other.waitForSelector("#overview");
  ok("keel ui's link signs a browser in");
  const again = await (await browser.newContext()).newPage();
  await again.goto(env("KEEL_LOGIN_URL"));
  check((await again.textContent(".error")).includes("used already"), "the link works once", await again.content());

  // Sign out.
  await page.goto(`${url}/`);
  signingOut = true;
  await page.click("form.logout button");
  await page.waitForURL(/\/ui\/login$/);
  await page.goto(`${url}/ui/tree`);
  check(page.url().endsWith("/ui/login"), "signed out, pages ask to sign in again", page.url());

  check(problems.length === 0, "no script errors or failed loads on any page", problems.join("\n"));
  ok(`no Secret value in the source of: ${visited.join(", ")}`);
} finally {
  await browser.close();
}
