// rtt-client.js agrees with Python's rtt: defaults, backoff, close reasons, version.
// The Python figures come from tests/core/test_js_unit.py (RTT_PYTHON_FIGURES).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { fakeTransport, load, pythonFigures } from "./harness.mjs";

const python = pythonFigures();
const vectors = JSON.parse(readFileSync(new URL("resume-vectors.json", import.meta.url), "utf8"));

// Equal within `relative` (pytest.approx's default is 1e-6).
function closeTo(actual, expected, what, relative) {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((value, i) =>
    assert.ok(Math.abs(value - expected[i]) <= relative * Math.abs(expected[i]), `${what}[${i}]: ${value} != ${expected[i]}`),
  );
}

// Moved from tests/ws/test_ws_browser.py (test_defaults_and_backoff_match_python).
test("defaults and backoff match Python", () => {
  const rtt = load();
  fakeTransport(rtt, "ws");
  const { resume, ...options } = rtt.client("ws", "ws://127.0.0.1:1/").options;
  // resume's default comes with the resume vectors (make_resume_vectors.py).
  const { resume: pythonResume = vectors.client_defaults.resume, ...pythonDefaults } = python.defaults;
  assert.deepEqual({ ...options, reconnect: { ...options.reconnect } }, pythonDefaults);
  assert.equal(resume, pythonResume);

  const policy = new rtt.ReconnectPolicy({ minDelay: 0.5, maxDelay: 3, maxAttempts: 5 });
  const take = (random) => Array.from(policy.delays(random));
  const bases = [0.5, 1, 2, 3, 3];
  assert.deepEqual(take(() => 0.5), bases);
  assert.deepEqual(take(() => 0), [0.25, 0.5, 1, 1.5, 1.5]);
  closeTo(take(() => 0.999999), [0.75, 1.5, 3, 3, 3], "high", 1e-6);
  for (let run = 0; run < 200; run++) {
    const delays = take();
    assert.equal(delays.length, 5);
    delays.forEach((delay, i) => assert.ok(bases[i] / 2 <= delay && delay <= Math.min(3, bases[i] * 1.5), `${delay}`));
  }

  // The same draws give the same delays as Python's ReconnectPolicy.delays(rng).
  for (const { fields, count, ends, draws } of python.backoff) {
    const jsPolicy = fields === null ? new rtt.ReconnectPolicy() : new rtt.ReconnectPolicy(fields);
    for (const [random, expected] of draws) {
      const delays = jsPolicy.delays(() => random);
      const got = Array.from({ length: count }, () => delays.next().value);
      closeTo(got, expected, `${JSON.stringify(fields)} with random() = ${random}`, 1e-12);
      assert.equal(Boolean(delays.next().done), ends, "whether the attempts run out");
    }
  }
});

// Moved from tests/ws/test_ws_browser.py (test_close_reasons_match_python).
test("close reasons match Python", () => {
  const rtt = load();
  assert.deepEqual(Object.values(rtt.CloseReason), python.closeReasons.map(([value]) => value));
  assert.deepEqual(Object.values(rtt.CloseReason).map(rtt.closeCode), python.closeReasons.map(([, code]) => code));
  const mapped = python.fromWire.map(([code, text]) => rtt.closeReasonFromWire(code, text));
  assert.deepEqual(mapped, python.fromWire.map(([, , reason]) => reason));
  assert.equal(rtt.closeReasonFromWire(1001), "shutdown");
  for (const [code, text, reason] of python.fromWire) {
    const close = rtt.closeFromWire(code, text);
    assert.equal(close.reason, reason);
    assert.deepEqual([close.code, close.text], reason === "application" ? [code, text] : [null, null]);
  }
});

test("application closes written as text read as in Python", () => {
  const rtt = load();
  for (const [text, expected] of python.fromText) assert.deepEqual(rtt.closeFromText(text), expected, text);
});

test("the JS client's version is rtt-core's, and so is the npm packages'", () => {
  const rtt = load();
  assert.equal(python.version, python.distributionVersion);
  assert.equal(rtt.version, python.version);
  for (const [name, version] of Object.entries(python.packageJsons)) {
    const manifest = JSON.parse(readFileSync(name, "utf8"));
    assert.equal(manifest.version, version, name);
  }
});
