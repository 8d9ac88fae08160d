// Driven by tests/js_client.rs, which owns the server: a device streams points
// and a client subscribes while the server is killed and started again.
//
//   node --experimental-websocket restart.mjs http://127.0.0.1:PORT COUNT
//
// Prints `acked N` as acknowledgements come (every 100), `queued-offline` once it
// has queued points of two priorities while told (on stdin) the server is `down`,
// and at the end `done {json}`: what was acknowledged, what the subscriber saw,
// and the order the offline points arrived in.
import { createInterface } from "node:readline";
import { HubClient, HubDevice, State } from "../src/index.js";

const [base, countArg] = process.argv.slice(2);
const count = Number(countArg);
const fast = { backoff: { initialMs: 50, maxMs: 500 } };

// The offline queue's bound, on a device that never reaches a server.
const nowhere = new HubDevice("http://127.0.0.1:1", "nowhere", { ...fast, queueLimit: 5 });
const refused = [];
for (let i = 0; i < 10; i++) {
  nowhere.send("n", i).catch((e) => {
    if (e.message.startsWith("dropped")) refused.push(i);
  });
}
await new Promise((r) => setTimeout(r, 0));
nowhere.close(); // the five still queued are refused as closed, not dropped
const bound = { dropped: nowhere.dropped, refused };

const device = new HubDevice(base, "js-device", { ...fast, batchPoints: 20, batchMs: 5 });
const ordered = new HubDevice(base, "js-ordered", { ...fast, batchPoints: 1 });
const client = new HubClient(base, fast);
const seen = [];
const arrived = [];
client.on("telemetry", ({ device: d, points }) => {
  for (const p of points) (d === "js-device" ? seen : arrived).push(p.value);
});
client.subscribe({ devices: ["js-device", "js-ordered"], since: 0 });
const states = [];
device.on("state", (s) => states.push(s));

let acked = 0;
const sends = [];
for (let i = 1; i <= count; i++) {
  sends.push(
    device.send("n", i).then(() => {
      acked++;
      if (acked % 100 === 0) console.log(`acked ${acked}`);
    }),
  );
  if (i % 25 === 0) await new Promise((r) => setTimeout(r, 10));
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line === "down") {
    // Queued while the server is gone: low priority first, then high.
    await waitFor(() => ordered.state !== State.OPEN);
    for (let i = 1; i <= 3; i++) sends.push(ordered.send("p", `low-${i}`, { priority: 0 }));
    for (let i = 1; i <= 3; i++) sends.push(ordered.send("p", `high-${i}`, { priority: 9 }));
    console.log("queued-offline");
  } else if (line === "up") {
    break;
  }
}
await Promise.all(sends);
await waitFor(() => seen.length >= count && arrived.length >= 6);
console.log(`done ${JSON.stringify({ acked, seen, arrived, bound, states, dropped: device.dropped })}`);
device.close();
ordered.close();
client.close();
process.exit(0);

async function waitFor(cond) {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
