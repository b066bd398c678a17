// The tree page with many pods, in chromium (run by `cargo bench -p keel-reconciler --bench
// web_ui`, which serves them): how long until the rows show, how many rows are in the
// document (the list is virtualised), and the slowest frame while scrolling to the end.
import { chromium } from "playwright-core";

const url = process.env.KEEL_URL;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addCookies([{ name: "keel_session", value: process.env.KEEL_SESSION, url }]);
  const page = await context.newPage();
  const started = Date.now();
  await page.goto(`${url}/ui/tree`);
  await page.waitForSelector(".tree-row");
  const shown = Date.now() - started;
  const count = await page.textContent("#tree-count");
  const inDocument = await page.$$eval(".tree-row", (rows) => rows.length);
  // Scroll through the whole list, a screen at a time, timing each frame drawn.
  const frames = await page.evaluate(async () => {
    const box = document.getElementById("tree");
    const times = [];
    for (let top = 0; top < box.scrollHeight; top += box.clientHeight) {
      const t0 = performance.now();
      box.scrollTop = top;
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return { n: times.length, median: times[Math.floor(times.length / 2)], slowest: times[times.length - 1] };
  });
  // Typing a search filters every row.
  const t0 = Date.now();
  await page.fill("input[name=q]", "app-042");
  await page.waitForFunction(() => document.getElementById("tree-count").textContent.includes("(100 pods)"));
  const filtered = Date.now() - t0;
  console.log(`the tree in chromium: ${count}; rows shown ${shown} ms after navigating; ${inDocument} rows in the document`);
  console.log(`scrolling through it: ${frames.n} screens, frame median ${frames.median.toFixed(1)} ms, slowest ${frames.slowest.toFixed(1)} ms; a search filtered it in ${filtered} ms`);
} finally {
  await browser.close();
}
