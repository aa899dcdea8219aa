// Node's `ws` 8 as a benchmark server for bench_websocket.py, speaking the harness's control
// protocol on stdin/stdout (benchmarks/harness.py): it prints "port <n>" once listening on
// 127.0.0.1, answers "count" with "count <n>" and "broadcast <k> <size>" with "done" after k
// broadcasts of a <size>-byte text message, and exits when stdin ends (so it never outlives
// the parent). Echo sends each message back with its own type; broadcast is ws's documented
// loop over `wss.clients` (ws has no encode-once broadcast). No compression, as for every
// server in the run.
import { createInterface } from "node:readline";
import { WebSocket, WebSocketServer } from "../../tests/node/node_modules/ws/wrapper.mjs";

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false, maxPayload: 1 << 20 });

wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
});

function broadcast(count, size) {
  const payload = "x".repeat(size);
  for (let i = 0; i < count; i++) {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(payload);
    }
  }
}

function answer(line) {
  const words = line.trim().split(/\s+/);
  if (words[0] === "count") return `count ${wss.clients.size}`;
  if (words[0] === "broadcast") {
    broadcast(Number(words[1]), Number(words[2]));
    return "done";
  }
  return `error unknown command '${words[0]}'`;
}

wss.on("listening", () => {
  process.stdout.write(`port ${wss.address().port}\n`);
  const commands = createInterface({ input: process.stdin });
  commands.on("line", (line) => {
    if (line.trim()) process.stdout.write(answer(line) + "\n");
  });
  commands.on("close", () => {
    for (const client of wss.clients) client.terminate();
    wss.close(() => process.exit(0));
  });
});
