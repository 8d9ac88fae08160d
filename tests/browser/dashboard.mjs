// Drives the dashboard at gattway's `/` in Debian's Chromium (playwright-core): the
// radio card, a live scan, the GATT explorer (connect, read, subscribe), the packet
// log, the device hub (a live chart, history, a command to succeeded), at desktop and
// at phone width, with a screenshot of each view.
//
//   node tests/browser/dashboard.mjs http://127.0.0.1:PORT SCREENSHOT_DIR
//
// Prints one JSON object: what each step saw, and every page error.
import { chromium } from "playwright-core";

const [base, shots, token] = process.argv.slice(2);
const results = {};
const errors = [];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
try {
  for (const [width, label] of [[1280, "desktop"], [390, "phone"]]) {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`${label}: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") errors.push(`${label}: console: ${m.text()}`); });
    await page.goto(base + "/");
    if (token) {
      // Credentials configured: the dashboard asks for one, keeps it in session
      // storage, and works with it.
      const form = page.getByRole("button", { name: "Sign in" });
      await form.waitFor({ timeout: 10000 });
      results[`${label}.loginShown`] = await page.locator("#login").isVisible();
      await page.getByLabel("API key or JWT").fill(token);
      await form.click();
      await page.waitForLoadState("load");
    }
    const card = page.getByRole("article", { name: "radio sim" });
    await card.waitFor({ timeout: 10000 });
    results[`${label}.card`] = await card.innerText();
    await page.screenshot({ path: `${shots}/dashboard-radios-${label}.png`, fullPage: false });

    await page.getByRole("button", { name: "Scan", exact: true }).click();
    const explore = page.getByRole("button", { name: "Explore Gattway HRM" });
    await explore.waitFor({ timeout: 15000 });
    results[`${label}.scanRows`] = await page.locator("#scan-rows tr").count();
    await page.locator("#scan").screenshot({ path: `${shots}/dashboard-scan-${label}.png` });

    await explore.click();
    const read = page.getByRole("button", { name: "Read Body Sensor Location" });
    await read.waitFor({ timeout: 15000 });
    await read.click();
    await page.waitForFunction(() => document.querySelector('[aria-label="Body Sensor Location value"]')?.textContent.length > 0);
    results[`${label}.read`] = await page.getByLabel("Body Sensor Location value").innerText();
    await page.getByRole("button", { name: "Subscribe Heart Rate Measurement" }).click();
    await page.waitForFunction(() => [...document.querySelectorAll("#value-log li")].filter((li) => li.textContent.includes("2a37 ←")).length >= 2, null, { timeout: 15000 });
    results[`${label}.notifications`] = await page.locator("#value-log li", { hasText: "2a37 ←" }).count();
    await page.locator("#explorer").screenshot({ path: `${shots}/dashboard-explorer-${label}.png` });

    await page.getByLabel("Filter (TX, RX or hex)").fill("RX");
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.waitForFunction(() => document.querySelectorAll("#packet-rows tr").length > 0, null, { timeout: 10000 });
    results[`${label}.packets`] = await page.locator("#packet-rows tr").count();
    results[`${label}.packetDirs`] = [...new Set(await page.locator("#packet-rows tr td:nth-child(2)").allInnerTexts())];
    await page.locator("#packets").screenshot({ path: `${shots}/dashboard-packets-${label}.png` });
    // The hub: the heart-rate monitor's live chart moves, history has buckets, and a
    // command goes to succeeded with its timeline.
    await page.getByRole("button", { name: "Open C0:FF:EE:00:00:01" }).click({ timeout: 15000 });
    await page.getByLabel("Key", { exact: true }).fill("heart_rate");
    await page.getByRole("button", { name: "Show", exact: true }).click();
    const liveCount = () => page.evaluate(() => parseInt(document.querySelector("#hub-live-count").textContent, 10) || 0);
    await page.waitForFunction(() => parseInt(document.querySelector("#hub-live-count").textContent, 10) > 0, null, { timeout: 15000 });
    const first = await liveCount();
    await page.waitForFunction((n) => parseInt(document.querySelector("#hub-live-count").textContent, 10) > n, first, { timeout: 15000 });
    results[`${label}.chartMoved`] = (await liveCount()) > first;
    results[`${label}.chartCanvas`] = await page.locator("#hub-live canvas").count();
    await page.waitForFunction(() => /\d+ buckets/.test(document.querySelector("#hub-history-count").textContent), null, { timeout: 10000 });
    results[`${label}.buckets`] = parseInt(await page.locator("#hub-history-count").innerText(), 10);
    await page.getByLabel("Command", { exact: true }).fill("reset_energy_expended");
    await page.getByLabel("Params (JSON)").fill('{"value": "01"}');
    await page.getByRole("button", { name: "Send", exact: true }).click();
    await page.waitForFunction(() => /succeeded|failed|timed_out/.test(document.querySelector("#command-status").textContent), null, { timeout: 20000 });
    results[`${label}.command`] = (await page.locator("#command-status").innerText()).split(": ").pop();
    results[`${label}.timeline`] = await page.getByRole("list", { name: "command timeline" }).locator("li").allInnerTexts();
    await page.locator("#hub").screenshot({ path: `${shots}/dashboard-hub-${label}.png` });

    // Connections and leases: the UART device is held by a bridge session (the test
    // leased it); releasing it gives it back.
    const release = page.getByRole("button", { name: "Release C0:FF:EE:00:00:04" });
    if (await release.count() || label === "desktop") {
      await release.waitFor({ timeout: 10000 });
      results[`${label}.heldBy`] = await page.locator('#connection-rows tr[data-id="C0:FF:EE:00:00:04"] td:nth-child(5)').innerText();
      await release.click();
      await page.waitForFunction(() => /released from/.test(document.querySelector("#release-status").textContent), null, { timeout: 10000 });
      results[`${label}.released`] = await page.locator("#release-status").innerText();
    }
    await page.locator("#leases").screenshot({ path: `${shots}/dashboard-leases-${label}.png` });

    // Nothing wider than the window at phone width.
    results[`${label}.overflow`] = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    await context.close();
  }
} catch (e) {
  errors.push(`driver: ${e.stack || e}`);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ results, errors }));
