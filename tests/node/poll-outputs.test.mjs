// `pollOutputs` (every output due now in one call) against `pollOutput` (one at a time): two engines built
// alike and fed the same inputs, one drained each way, must hand out the same outputs in the same order, the
// last batch ending with the timeout (a batch ends early once it holds 5,000 store records). The bench world's Apple answers the requests (a small location, pages of
// one record so that a sync takes many requests). Run scripts/build-pkg.sh first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { ACCOUNT, BenchApple, START, buildPages, config, devicePolicy, serial, token } from '../../scripts/bench/world.mjs';

/** Device d holds app 0 and app 1 + d % 2; one spare license per app; two users. */
const ORG = {
  apps: 3,
  spare: 1,
  assignments: [0, 1, 2].flatMap((d) => [[0, serial(d)], [1 + (d % 2), serial(d)]]),
  users: 2,
  pageSize: 1,
};

/** Store records after which a `pollOutputs` batch ends early (the engine's DRAIN_BATCH_RECORDS). */
const BATCH_RECORDS = 5_000;

const records = (outputs) => outputs.filter((o) => o.type === 'persist').reduce((n, o) => n + o.ops.length, 0);

/** An engine drained with `pollOutputs` and its twin drained with `pollOutput`, fed the same inputs. */
class Twins {
  constructor(org = ORG) {
    this.now = START;
    this.batched = new Engine(config(), this.now);
    this.single = new Engine(config(), this.now);
    this.apple = new BenchApple(buildPages(org));
    this.earlyBatches = 0;
  }

  /** Drains both engines; asserts they handed out the same outputs; returns the batches, joined. */
  drain() {
    const batch = [];
    for (;;) {
      const part = this.batched.pollOutputs(this.now);
      batch.push(...part);
      if (part.at(-1).type === 'timeout') break;
      this.earlyBatches += 1;
      assert.ok(records(part) >= BATCH_RECORDS, `a batch without the timeout holds ${BATCH_RECORDS}+ records: ${records(part)}`);
      assert.ok(records(part.slice(0, -1)) < BATCH_RECORDS, 'it ends at the output that reached the limit');
    }
    const oneByOne = [];
    for (let output = this.single.pollOutput(this.now); ; output = this.single.pollOutput(this.now)) {
      oneByOne.push(output);
      if (output.type === 'timeout') break;
    }
    assert.deepEqual(batch, oneByOne);
    assert.equal(batch.at(-1).type, 'timeout', 'the batch ends with the timeout');
    assert.equal(batch.filter((o) => o.type === 'timeout').length, 1, 'one timeout, the last output');
    return batch;
  }

  /** Feeds one input to both engines. */
  feed(input) {
    this.batched.handleInput(input, this.now);
    this.single.handleInput(input, this.now);
  }

  /** Feeds one input to both engines, then drains them. */
  input(input) {
    this.feed(input);
    return this.drain();
  }

  /**
   * Answers every request the outputs hold, and those that follow, as soon as they are out; when none is left,
   * jumps time to the engine's deadline (at most 100 times) until `done(outputs so far)`. Returns those outputs.
   */
  run(batch, done) {
    const seen = [...batch];
    const pending = batch.filter((o) => o.type === 'request');
    for (let timeouts = 0; ; ) {
      const request = pending.shift();
      let outputs;
      if (request !== undefined) {
        const [status, body] = this.apple.answer(request);
        outputs = this.input({ type: 'response', id: request.id, status, headers: {}, body });
      } else {
        if (done(seen)) return seen;
        assert.ok(timeouts++ < 100, `not done after 100 timeouts: ${types(seen)}`);
        this.now = Math.max(this.now, seen.at(-1).at);
        outputs = this.input({ type: 'timeout' });
      }
      seen.push(...outputs);
      pending.push(...outputs.filter((o) => o.type === 'request'));
    }
  }
}

const types = (outputs) => outputs.map((o) => (o.type === 'event' ? o.event.type : o.type));

test('pollOutputs hands out what pollOutput does, in the same order, through a sync, policies and an enrollment', () => {
  const twins = new Twins();
  const added = twins.input({ type: 'addAccount', accountId: ACCOUNT, name: 'District', token: token() });
  twins.run(added, (seen) => types(seen).includes('syncCompleted'));

  const policies = [0, 1, 2].map((a) => twins.input(devicePolicy(a, [0, 1, 2, 3].map(serial)))).flat();
  twins.run([...policies, ...twins.input({ type: 'cleanUp', accountId: ACCOUNT })],
    (seen) => seen.some((o) => o.type === 'request' && o.purpose === 'associateAssets'));

  const enrolled = twins.input({ type: 'deviceEnrolled', serialNumber: serial(0), sharedIpad: false });
  assert.deepEqual(types(enrolled).filter((t) => t === 'licenseReady').length, 2, `licenseReady per app device 0 holds: ${types(enrolled)}`);
  assert.ok(enrolled.length >= 4, `an enrollment drains several outputs at once: ${types(enrolled)}`);
});

test('pollOutputs writes the first full refresh of a large account in several batches, the same outputs in order', () => {
  const devices = 12_000;
  const org = { apps: 2, spare: 1, assignments: [...Array(devices).keys()].map((d) => [d % 2, serial(d)]), users: 0, pageSize: 1_000 };
  const twins = new Twins(org);
  const added = twins.input({ type: 'addAccount', accountId: ACCOUNT, name: 'District', token: token() });
  const seen = twins.run(added, (outputs) => types(outputs).includes('syncCompleted'));
  const mirrored = seen.filter((o) => o.type === 'persist').flatMap((o) => o.ops).filter((op) => op.key.startsWith('asg/'));
  assert.equal(mirrored.length, devices, 'one mirror record per device');
  assert.ok(twins.earlyBatches >= 2, `12,000 records take several batches: ${twins.earlyBatches} ended early`);
});

test('pollOutputs with nothing due returns the timeout alone, at the engine\'s next wakeup', () => {
  const twins = new Twins();
  twins.run(twins.input({ type: 'addAccount', accountId: ACCOUNT, name: 'District', token: token() }), () => true);
  const idle = twins.drain();
  assert.deepEqual(idle, [{ type: 'timeout', at: twins.batched.nextWakeup().at }]);
});

test('pollOutputs refuses a malformed now and keeps the outputs for the next call', () => {
  const twins = new Twins();
  twins.feed({ type: 'addAccount', accountId: ACCOUNT, name: 'District', token: token() });
  for (const now of [undefined, -1, NaN, 'now']) {
    assert.throws(() => twins.batched.pollOutputs(now), { code: 'INVALID_INPUT' }, `pollOutputs(${String(now)})`);
  }
  assert.ok(twins.drain().some((o) => o.type === 'request'), 'the first requests are still handed out');
});
