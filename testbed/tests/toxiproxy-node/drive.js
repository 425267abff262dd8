// Drives the chaos proxy with a published Toxiproxy client (npm toxiproxy-node-client),
// unchanged, and prints what it observed as one JSON object for the Rust test to judge.
// Usage: node drive.js API_URL ECHO_HOST:PORT SINK_HOST:PORT
"use strict";
const net = require("net");
const { Toxiproxy } = require("toxiproxy-node-client");

const [api, echo, sink] = process.argv.slice(2);

// The client's errors carry the status only in their message.
function status(err) {
  const m = /status code (\d+)/.exec(String(err && err.message));
  return m ? Number(m[1]) : -1;
}

async function expectError(promise) {
  try {
    await promise;
    return 0;
  } catch (err) {
    return status(err);
  }
}

function hostPort(listen) {
  const at = listen.lastIndexOf(":");
  return { host: listen.slice(0, at), port: Number(listen.slice(at + 1)) };
}

// One round trip of `size` bytes through an echo proxy; resolves with the milliseconds taken.
function roundTrip(listen, size) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const socket = net.connect(hostPort(listen), () => socket.write(Buffer.alloc(size, 7)));
    socket.setNoDelay(true);
    let got = 0;
    socket.on("data", (chunk) => {
      got += chunk.length;
      if (got >= size) {
        socket.destroy();
        resolve(Number(process.hrtime.bigint() - started) / 1e6);
      }
    });
    socket.on("error", reject);
  });
}

// Writes `size` bytes and waits for the proxy to close the connection.
function pushThrough(listen, size) {
  return new Promise((resolve) => {
    const socket = net.connect(hostPort(listen), () => socket.write(Buffer.alloc(size, 9)));
    socket.on("close", () => resolve());
    socket.on("error", () => {});
  });
}

function refused(listen) {
  return new Promise((resolve) => {
    const socket = net.connect(hostPort(listen), () => {
      socket.destroy();
      resolve(false);
    });
    socket.on("error", (err) => resolve(err.code === "ECONNREFUSED"));
  });
}

async function main() {
  const out = {};
  const tp = new Toxiproxy(api);
  out.version = JSON.parse(await tp.getVersion()).version;

  const proxy = await tp.createProxy({ name: "node_echo", listen: "127.0.0.1:0", upstream: echo });
  out.created = proxy.toJson();
  out.duplicate_status = await expectError(tp.createProxy({ name: "node_echo", listen: "127.0.0.1:0", upstream: echo }));

  const toxic = await proxy.addToxic({
    name: "lat", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 150, jitter: 0 },
  });
  out.toxic = toxic.toJson();
  out.rtt_with_latency_ms = await roundTrip(proxy.listen, 1000);
  const fetched = await proxy.getToxic("lat");
  const updated = await fetched.update({ attributes: { latency: 150, jitter: 10 }, toxicity: 1 });
  out.updated_attributes = updated.attributes;
  await updated.remove();
  out.rtt_after_remove_ms = await roundTrip(proxy.listen, 1000);
  out.unknown_type_status = await expectError(proxy.addToxic({ name: "x", type: "lag", stream: "upstream", toxicity: 1, attributes: {} }));
  out.missing_toxic_status = await expectError(proxy.getToxic("nope"));

  const populated = await tp.populate([{ name: "node_sink", listen: "127.0.0.1:0", upstream: sink, enabled: true }]);
  const sinkProxy = populated.node_sink;
  await sinkProxy.addToxic({ name: "cap", type: "limit_data", stream: "upstream", toxicity: 1, attributes: { bytes: 5 } });
  await pushThrough(sinkProxy.listen, 100);

  const disabled = await proxy.update({ enabled: false });
  out.disabled_enabled = disabled.enabled;
  out.refused_when_disabled = await refused(proxy.listen);
  out.names = Object.keys(await tp.getAll()).sort();
  await tp.reset();
  out.enabled_after_reset = (await tp.get("node_echo")).enabled;
  out.rtt_after_reset_ms = await roundTrip(proxy.listen, 10);
  await proxy.remove();
  out.removed_status = await expectError(tp.get("node_echo"));
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
