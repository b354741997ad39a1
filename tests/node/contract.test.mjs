// The JS contract is checked: src/binding_types.d.ts (written by hand, with its documentation) against the Rust
// types the boundary reads and writes (described by src/contract/, from the Rust code itself). Every input, output,
// event, view, query and config type; their variants and fields, both ways; optionality and null; kinds of value.
// Needs cargo (it runs one native unit test; scripts/test.sh has built it by then), not the built package.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DTS_PATH, compareContracts, describeDts, rustContract } from './contract-support.mjs';

let rust;
let dtsText;

before(() => {
  rust = rustContract();
  dtsText = readFileSync(DTS_PATH, 'utf8');
});

test('binding_types.d.ts states every type crossing the boundary as the Rust types do', () => {
  const problems = compareContracts(rust, describeDts(dtsText));
  assert.deepEqual(problems, [], `binding_types.d.ts and the Rust types disagree:\n  ${problems.join('\n  ')}\n`);
});

test('the Rust description covers every kind of type: inputs, outputs, events, views, queries, config, names', () => {
  for (const name of ['Input', 'Output', 'EngineEvent', 'PersistOp', 'AccountView', 'AppCountView', 'AssignmentPage',
    'AssignmentView', 'Wakeup', 'EngineStats', 'TokenInfo', 'PendingOperation', 'LicenseExplanation', 'AssignmentQuery',
    'ExplainQuery', 'EngineConfig', 'MdmInfo', 'AppPolicy', 'StoredRecord', 'AccountKeyRanges', 'PricingParam', 'AccountStatus']) {
    assert.ok(rust[name], `${name} is not described`);
  }
  assert.ok(rust.Input.union.variants.timeout && rust.Input.union.variants.response);
  assert.ok(rust.EngineEvent.union.variants.licenseReady && rust.Output.union.variants.request);
});

/** The problems found after replacing `from` (which must occur once) by `to` in the d.ts. */
function problemsAfter(from, to) {
  assert.equal(dtsText.split(from).length, 2, `the d.ts no longer holds ${JSON.stringify(from)} once: update this test`);
  return compareContracts(rust, describeDts(dtsText.replace(from, to)));
}

/** The problems found after changing the Rust description with `change`. */
function problemsWithRust(change) {
  const changed = structuredClone(rust);
  change(changed);
  return compareContracts(changed, describeDts(dtsText));
}

test('a field, a variant or a type on one side only is reported, whichever side has it', () => {
  assert.deepEqual(problemsAfter('| { type: "deviceRetired"; serialNumber: string }\n', ''), [
    'Input: variant "deviceRetired" in Rust, missing from binding_types.d.ts',
  ]);
  assert.deepEqual(problemsAfter('| { type: "ownershipClaimed"; accountId: string }', '| { type: "ownershipClaimed"; accountId: string; since: number }'), [
    'EngineEvent.ownershipClaimed.since: a field in binding_types.d.ts, not in Rust',
  ]);
  assert.deepEqual(problemsAfter('  clockRewinds: number;\n', ''), ['EngineStats.clockRewinds: a field in Rust, missing from binding_types.d.ts']);
  assert.deepEqual(problemsAfter('export type SyncKind = "full" | "delta";', 'export type SyncKind = "full" | "delta" | "partial";'), [
    'SyncKind: "partial" in binding_types.d.ts, not in Rust',
  ]);
  assert.deepEqual(problemsWithRust((r) => {
    r.EngineEvent.union.variants.licenseRevoked = { fields: { accountId: { kind: 'string', optional: false, nullable: false } } };
  }), ['EngineEvent: variant "licenseRevoked" in Rust, missing from binding_types.d.ts']);
  assert.deepEqual(problemsWithRust((r) => {
    r.Wakeup.object.fields.kind = { kind: 'string', optional: false, nullable: false };
  }), ['Wakeup.kind: a field in Rust, missing from binding_types.d.ts']);
  assert.deepEqual(problemsWithRust((r) => {
    r.Bundle = { direction: 'written', inline: false, rust: ['BundleView'], object: { fields: {} } };
  }), ['Bundle: a Rust type (BundleView), missing from binding_types.d.ts']);
  assert.deepEqual(problemsWithRust((r) => delete r.TokenInfo), ['TokenInfo: in binding_types.d.ts, but no Rust type of the contract']);
});

test('optionality, null and kinds are compared by direction: exact for what the engine writes, not looser for what it reads', () => {
  // Written: exact.
  assert.deepEqual(problemsAfter('export interface Wakeup { at: number; reason: string; accountId: string | null }',
    'export interface Wakeup { at: number; reason: string; accountId?: string }'), [
    'Wakeup.accountId: always written by the engine, optional in binding_types.d.ts',
    'Wakeup.accountId: may be null in Rust, no `| null` in binding_types.d.ts',
  ]);
  // Read: the d.ts may not promise what the engine refuses ...
  assert.deepEqual(problemsAfter('| { type: "networkError"; id: number; message: string }', '| { type: "networkError"; id: number; message?: string | null }'), [
    'Input.networkError.message: optional in binding_types.d.ts, but the engine requires it',
    'Input.networkError.message: may be null in binding_types.d.ts, but the engine refuses null',
  ]);
  // ... but may ask more than the engine needs: it requires `body`, which the engine reads as empty when absent.
  assert.equal(rust.Input.union.variants.response.fields.body.optional, true);
  assert.deepEqual(problemsAfter('headers: Record<string, string>; body: string }', 'headers: Record<string, string>; body?: string }'), []);
  assert.deepEqual(problemsAfter('  requestsIssued: number;\n', '  requestsIssued: string;\n'), [
    'EngineStats.requestsIssued: number in Rust, string in binding_types.d.ts',
  ]);
  assert.deepEqual(problemsAfter('method: "GET" | "POST";', 'method: "GET" | "POST" | "PUT";'), [
    'Output.request.method (Method): "PUT" in binding_types.d.ts, not in Rust',
  ]);
  assert.deepEqual(problemsAfter('| { type: "persist"; ops: PersistOp[] }', '| { type: "persist"; ops: StoredRecord[] }'), [
    'Output.persist.ops[]: {"ref":"PersistOp"} in Rust, {"ref":"StoredRecord"} in binding_types.d.ts',
  ]);
});
