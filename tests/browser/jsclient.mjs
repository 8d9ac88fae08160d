// Drives Debian's Chromium (playwright-core) through a page that uses gattway's
// JavaScript hub client (clients/js) as a web app would, against the simulated
// devices: it follows the simulated heart-rate monitor's readings, which the hub
// stores as telemetry, and sends points as a device of its own. Chromium offers
// permessage-deflate; the page reports what the server agreed to.
//
//   node tests/browser/jsclient.mjs http://127.0.0.1:PORT
//
// Prints one JSON object: what the page saw, and every page error.
import { readFile } from "node:fs/promises";
import http from "node:http";
import { chromium } from "playwright-core";

const base = process.argv[2];
const errors = [];
const client = new URL("../../clients/js/src/index.js", import.meta.url);

// The app's own server (a dev server on another local port) serves the page and
// the client module; gattway admits localhost origins.
const site = http.createServer(async (req, res) => {
  if (req.url === "/gattway-client.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(await readFile(client));
  } else {
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><html><head><title>app</title></head><body><h1>app</h1></body></html>');
  }
});
await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const page = await (await browser.newContext()).newPage();
page.on("pageerror", (e) => errors.push(e.message));
page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
await page.goto(`http://127.0.0.1:${site.address().port}/app`);

const results = await page.evaluate(async (base) => {
  const { HubClient, HubDevice } = await import("/gattway-client.js");
  const states = [];
  const client = new HubClient(base);
  client.on("state", (s) => states.push(s));
  const heart = [];
  const mine = [];
  const enough = new Promise((resolve) => {
    client.on("telemetry", ({ device, points }) => {
      for (const p of points) (device === "browser-device" ? mine : heart).push(p);
      if (heart.length >= 3 && mine.length >= 5) resolve();
    });
  });
  client.subscribe({ devices: ["C0:FF:EE:00:00:01", "browser-device"], keys: ["heart_rate", "n"] });
  const device = new HubDevice(base, "browser-device");
  await new Promise((resolve) => device.on("open", resolve));
  await Promise.all([1, 2, 3, 4, 5].map((n) => device.send("n", n)));
  await enough;
  const extensions = { client: client.extensions, device: device.extensions };
  const presence = await client.presence(["browser-device"]);
  device.close();
  client.close();
  return {
    states,
    heart: heart.slice(0, 3).map((p) => typeof p.value),
    mine: mine.map((p) => p.value),
    online: presence.devices[0].online,
    extensions,
  };
}, base);

await browser.close();
site.close();
console.log(JSON.stringify({ results, errors }));
