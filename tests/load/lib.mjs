// The load test's arithmetic, kept free of I/O so that tests/node/loadtest.test.mjs can check it on small cases:
// the lower bounds on Apple's license requests, the rules checked on the simulator's request log, percentiles.

/** Apple's license request kinds, as the simulator logs their paths. */
export const LICENSE_PATHS = {
  '/mdm/v2/assets/associate': 'associateAssets',
  '/mdm/v2/assets/disassociate': 'disassociateAssets',
  '/mdm/v2/assets/revoke': 'revokeAssets',
  '/mdm/v2/users/create': 'createUsers',
};

/** What one logged request is, for the table of requests by kind. */
export function requestKind({ method, path }) {
  if (method === 'POST' && LICENSE_PATHS[path]) return LICENSE_PATHS[path];
  if (path === '/mdm/v2/users/update' || path === '/mdm/v2/users/retire') return 'userUpdates';
  if (path === '/mdm/v2/status') return 'eventStatus';
  if (path === '/mdm/v2/assets' || path === '/mdm/v2/assignments' || path === '/mdm/v2/users') return 'pages';
  if (path === '/mdm/v2/service/config' || path === '/mdm/v2/client/config') return 'config';
  return 'other';
}

/**
 * Greedy interval cover of sorted times: a batch opens at the first uncovered time and takes every time up to
 * `+windowMs`. Returns the index ranges [start, end) of the batches (the fewest windows of that length).
 */
export function coverBatches(times, windowMs) {
  const batches = [];
  let i = 0;
  while (i < times.length) {
    const closes = times[i] + windowMs;
    let j = i + 1;
    while (j < times.length && times[j] <= closes) j++;
    batches.push([i, j]);
    i = j;
  }
  return batches;
}

const ceilDiv = (a, b) => Math.ceil(a / Math.max(1, b));

/**
 * Lower bounds on Apple's license requests for a list of changes, each
 * `{ kind: 'associate' | 'disassociate' | 'revoke' | 'createUsers', loc, targetKind: 'device' | 'user', target, assets, at }`
 * (`assets`: adam ids the target gains or loses; revokes and user creations have none).
 *
 * - `atOnce`: every change given in one input per location. Associations: targets grouped by the exact asset set
 *   they gain over the whole run, ⌈assets/maxAssets⌉ × ⌈targets/maxSerialNumbers (maxClientUserIds)⌉ per group;
 *   disassociations per (location, asset) ⌈targets/maxSerialNumbers⌉; revokes per location
 *   ⌈targets/maxRevokeSerialNumbers (maxRevokeClientUserIds)⌉; user creations per location ⌈users/maxUsers⌉.
 * - `withinWindow`: no change may wait longer than `windowMs`: per group (associations: the asset set of the change
 *   itself), a greedy interval cover of the change times, each batch costing as above.
 *
 * Returns `{ [kind]: { atOnce, withinWindow } }` plus `total`.
 */
export function lowerBounds(changes, limits, windowMs) {
  const maxTargets = (targetKind) => (targetKind === 'user' ? limits.maxClientUserIds : limits.maxSerialNumbers);
  const maxRevoke = (targetKind) => (targetKind === 'user' ? limits.maxRevokeClientUserIds : limits.maxRevokeSerialNumbers);
  const result = {};
  for (const kind of ['associate', 'disassociate', 'revoke', 'createUsers']) result[kind] = { atOnce: 0, withinWindow: 0 };

  // Groups of changes: key → { cost(targetCount), changes }; for associations (a) also target → union of assets.
  const windowGroups = new Map();
  const unions = new Map(); // `${loc}|${targetKind}` → Map(target → Set(asset))
  const add = (kind, key, cost, change) => {
    const k = `${kind}|${key}`;
    if (!windowGroups.has(k)) windowGroups.set(k, { kind, cost, changes: [] });
    windowGroups.get(k).changes.push(change);
  };
  for (const c of changes) {
    if (c.kind === 'associate') {
      const assets = [...new Set(c.assets)].sort();
      const setKey = `${c.loc}|${c.targetKind}|${assets.join(',')}`;
      add('associate', setKey, (n) => ceilDiv(assets.length, limits.maxAssets) * ceilDiv(n, maxTargets(c.targetKind)), c);
      const slot = `${c.loc}|${c.targetKind}`;
      if (!unions.has(slot)) unions.set(slot, new Map());
      const perTarget = unions.get(slot);
      if (!perTarget.has(c.target)) perTarget.set(c.target, new Set());
      for (const a of assets) perTarget.get(c.target).add(a);
    } else if (c.kind === 'disassociate') {
      for (const asset of new Set(c.assets)) {
        add('disassociate', `${c.loc}|${c.targetKind}|${asset}`, (n) => ceilDiv(n, maxTargets(c.targetKind)), { ...c, assets: [asset] });
      }
    } else if (c.kind === 'revoke') {
      add('revoke', `${c.loc}|${c.targetKind}`, (n) => ceilDiv(n, maxRevoke(c.targetKind)), c);
    } else if (c.kind === 'createUsers') {
      add('createUsers', `${c.loc}`, (n) => ceilDiv(n, limits.maxUsers), c);
    } else {
      throw new Error(`unknown change kind ${c.kind}`);
    }
  }

  for (const { kind, cost, changes: list } of windowGroups.values()) {
    const distinct = (items) => new Set(items.map((c) => c.target)).size;
    if (kind !== 'associate') result[kind].atOnce += cost(distinct(list));
    const sorted = [...list].sort((a, b) => a.at - b.at);
    for (const [i, j] of coverBatches(sorted.map((c) => c.at), windowMs)) {
      result[kind].withinWindow += cost(distinct(sorted.slice(i, j)));
    }
  }
  for (const [slot, perTarget] of unions) {
    const targetKind = slot.split('|')[1];
    const bySet = new Map();
    for (const assets of perTarget.values()) {
      const key = [...assets].sort().join(',');
      bySet.set(key, (bySet.get(key) ?? 0) + 1);
    }
    for (const [key, n] of bySet) {
      result.associate.atOnce += ceilDiv(key.split(',').length, limits.maxAssets) * ceilDiv(n, maxTargets(targetKind));
    }
  }
  result.total = {
    atOnce: Object.values(result).reduce((s, r) => s + r.atOnce, 0),
    withinWindow: Object.values(result).reduce((s, r) => s + r.withinWindow, 0),
  };
  return result;
}

/** Nearest-rank percentiles of a list of numbers: { n, p50, p95, p99, max } (null when empty). */
export function percentiles(values) {
  if (values.length === 0) return { n: 0, p50: null, p95: null, p99: null, max: null };
  const sorted = Float64Array.from(values).sort();
  const rank = (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  return { n: sorted.length, p50: rank(50), p95: rank(95), p99: rank(99), max: sorted[sorted.length - 1] };
}

/** Error numbers of the faults the load test injects (503 → 9729, 429 → 9646): anything else on a license POST is a rule broken. */
const INJECTED_ERRORS = new Set([9729, 9646]);

/**
 * Checks the simulator's request log (entries in arrival order, as tests/load/apple.mjs `log` returns them) against
 * Apple's rules. `client` maps each request's `x-loadtest-id` to `{ sentAt, receivedAt }` (the backend's clock,
 * the same machine's), so that a request already on its way when a Retry-After answer arrived does not count as
 * ignoring it. Times in examples are relative to `origin`. Returns `{ rate, retryAfter, limits, doubleAssociation }`, each `{ violations, examples }`, plus
 * `peakRatePerToken`.
 */
export function checkRequestLog(log, { limits, retryAfterS, client, origin = 0 }) {
  const rule = () => ({ violations: 0, examples: [] });
  const found = (r, example) => {
    r.violations++;
    if (r.examples.length < 5) r.examples.push(example);
  };
  const out = { rate: rule(), retryAfter: rule(), limits: rule(), doubleAssociation: rule(), peakRatePerToken: {} };
  const byToken = new Map();
  for (const e of log) {
    if (e.token === null) continue;
    if (!byToken.has(e.token)) byToken.set(e.token, []);
    byToken.get(e.token).push(e);
  }
  let location = 0;
  for (const [token, entries] of byToken) {
    const name = `token ${++location}`;
    // Rate: more than maxRequestPerSecond arrivals within any 1000 ms.
    let i = 0;
    let peak = 0;
    for (let j = 0; j < entries.length; j++) {
      while (entries[j].at - entries[i].at >= 1000) i++;
      const inWindow = j - i + 1;
      peak = Math.max(peak, inWindow);
      if (inWindow > limits.maxRequestPerSecond) {
        found(out.rate, `${name}: ${inWindow} requests within ${entries[j].at - entries[i].at} ms, the last ${entries[j].method} ${entries[j].path} at ${((entries[j].at - origin) / 1000).toFixed(1)} s`);
      }
    }
    out.peakRatePerToken[name] = peak;
    // Retry-After: nothing sent after the answer was read and arriving before its deadline.
    for (const answer of entries.filter((e) => e.status === 503 && e.answeredAt !== null)) {
      const deadline = answer.answeredAt + retryAfterS * 1000;
      const read = client.get(answer.id)?.receivedAt ?? answer.answeredAt;
      for (const e of entries) {
        if (e === answer || e.at >= deadline || e.at < answer.answeredAt) continue;
        const sentAt = client.get(e.id)?.sentAt ?? e.at;
        if (sentAt >= read) found(out.retryAfter, `${name}: ${e.method} ${e.path} sent ${sentAt - read} ms after a Retry-After: ${retryAfterS} answer, ${deadline - e.at} ms early`);
      }
    }
  }
  // Limits: every license POST Apple rejected for anything but an injected fault, and the sizes Apple accepted.
  const held = new Map(); // pair → index of the associate that holds it
  const targetsOf = (token, request) =>
    [...(request.serialNumbers ?? []), ...(request.clientUserIds ?? []).map((u) => `u:${u}`)].map((t) => `${token}|${t}`);
  const pairsOf = (token, request) => {
    const targets = targetsOf(token, request);
    return (request.assets ?? []).flatMap((a) => targets.map((t) => `${a.adamId}|${t}`));
  };
  const heldByTarget = new Map(); // target → Set(pair)
  for (const [index, e] of log.entries()) {
    const kind = LICENSE_PATHS[e.path];
    if (e.method !== 'POST' || !kind) continue;
    if (e.errorNumber !== null && !INJECTED_ERRORS.has(e.errorNumber)) found(out.limits, `${kind} answered ${e.status}/${e.errorNumber}`);
    if (!e.event) continue;
    const r = e.event.request;
    const over = (what, n, max) => n > max && found(out.limits, `${kind} with ${n} ${what} (limit ${max})`);
    if (kind === 'createUsers') {
      over('users', r.users?.length ?? 0, limits.maxUsers);
    } else if (kind === 'revokeAssets') {
      over('serial numbers', r.serialNumbers?.length ?? 0, limits.maxRevokeSerialNumbers);
      over('client user ids', r.clientUserIds?.length ?? 0, limits.maxRevokeClientUserIds);
    } else {
      over('assets', r.assets?.length ?? 0, limits.maxAssets);
      over('serial numbers', r.serialNumbers?.length ?? 0, limits.maxSerialNumbers);
      over('client user ids', r.clientUserIds?.length ?? 0, limits.maxClientUserIds);
    }
    // No pair associated again while an earlier accepted association of it stands (no release in between).
    if (kind === 'associateAssets') {
      for (const pair of pairsOf(e.token, r)) {
        if (held.has(pair)) found(out.doubleAssociation, `${pair.split('|')[0]}|${pair.split('|')[2]} associated again (requests #${held.get(pair)} and #${index})`);
        // A FAILED event may not have made the pair: count only what a COMPLETE (or still PENDING) event made.
        if (e.event.eventStatus !== 'FAILED') {
          held.set(pair, index);
          const target = pair.slice(pair.indexOf('|') + 1);
          if (!heldByTarget.has(target)) heldByTarget.set(target, new Set());
          heldByTarget.get(target).add(pair);
        }
      }
    } else if (kind === 'disassociateAssets') {
      for (const pair of pairsOf(e.token, r)) held.delete(pair);
    } else if (kind === 'revokeAssets') {
      for (const t of targetsOf(e.token, r)) for (const pair of heldByTarget.get(t) ?? []) held.delete(pair);
    }
  }
  return out;
}

/** Pairs in `desired` Apple lacks, and pairs Apple holds that are not desired. */
export function compareState(desired, actual) {
  const have = new Set(actual);
  const missing = [...desired].filter((p) => !have.has(p));
  const extra = [...have].filter((p) => !desired.has(p));
  return { missing, extra };
}

/**
 * A store that counts what it is given to apply before passing it on: `writes` = { applies, puts, deletes, bytes,
 * countingMs } (bytes: each op's key and its value's JSON text, as the stores write them; countingMs: what counting
 * cost the caller), and the same per key prefix (up to the first '/') into the Map `byPrefix` while it is set.
 */
export function countingStore(store) {
  const counted = {
    writes: { applies: 0, puts: 0, deletes: 0, bytes: 0, countingMs: 0 },
    /** A Map (key prefix → { puts, deletes, bytes }) to count into, or null. */
    byPrefix: null,
    apply(ops) {
      const { writes, byPrefix } = counted;
      writes.applies++;
      const t = performance.now();
      for (const op of ops) {
        const bytes = op.key.length + (op.op === 'put' ? JSON.stringify(op.value).length : 0);
        writes[op.op === 'put' ? 'puts' : 'deletes']++;
        writes.bytes += bytes;
        if (byPrefix !== null) {
          const prefix = op.key.slice(0, op.key.indexOf('/') + 1 || op.key.length);
          const slot = byPrefix.get(prefix) ?? byPrefix.set(prefix, { puts: 0, deletes: 0, bytes: 0 }).get(prefix);
          slot[op.op === 'put' ? 'puts' : 'deletes']++;
          slot.bytes += bytes;
        }
      }
      writes.countingMs += performance.now() - t;
      return store.apply(ops);
    },
    load: () => store.load(),
    close: () => store.close?.(),
  };
  return counted;
}

export const fmt = (n) => (n === null || n === undefined ? '—' : Math.round(n).toLocaleString('en-US'));
export const secs = (ms) => (ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`);
export const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
