// Crash safety, end to end: a real backend process (tests/node/fixtures/backend.mjs: the built engine, Driver, fetch
// transport, notification endpoint, SqliteStore) against the Apps and Books simulator, SIGKILLed at 27 points during
// sync (mid-page traversal, under Retry-After), assignment (between Apple accepting an associate and the backend
// reading its eventId, just after, while notifications or /status answers are on their way) and reclaim
// (disassociate / revoke in flight), and restarted each time from the same SQLite file. Inputs are delivered at
// least once: the backend acknowledges an input once its records are written, and the test sends again what was
// not acknowledged before a crash, as an MDM reconciling its policies at start-up would.
//
// At the end: every pending operation resolved, provenance (the apps the prov/ records list, one record per device)
// = the assignments the simulator shows for our targets = the desired state, no (asset, device) pair associated twice by associate requests Apple accepted,
// a Retry-After deadline set before a crash honoured after it, and no request over Apple's rate limit.
// Real time, about a minute: events complete after 40 ms (5 s at the slow-event points), an unanswered association
// settles after 7 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator } from '../../host-shim/simulator/index.js';
import { Backend, startRelay, waitFor } from './fixtures/backends.mjs';

const ACCOUNT = 'crash-district';
const MDM = { id: 'crash-test-mdm', name: 'Crash Test MDM', metadata: 'test' };
const EVENT_DELAY_MS = 40;
/** Long enough for a restarted backend to find the event still pending. */
const SLOW_EVENT_DELAY_MS = 5000;
/**
 * The engine's contract (`unconfirmedSettleMs`): Apple finishes an association within the settle time, so a sync
 * starting after it shows every pair an unanswered association made, and the pairs it does not show are sent again.
 * Associations sent while events are slow (a backend restarted at a slow-event kill point sends its queue at once)
 * must therefore settle after the slowest event; a shorter settle time makes the test ask for the impossible.
 */
const SETTLE_MS = SLOW_EVENT_DELAY_MS + 2000;
const RETRY_AFTER_S = 3;
const KILL_POINT_TIMEOUT_MS = 20_000;
const API = '/mdm/v2';

/** Matchers of the simulator's request log: a kill point fires on the first request of the running backend they accept. */
const page = (resource, minIndex) => (e) => e.method === 'GET' && e.path === `${API}/${resource}` && Number(e.query.pageIndex ?? 0) >= minIndex;
const accepted = (...paths) => (e) => paths.some((p) => e.path === `${API}/${p}`) && e.status === 200 && e.eventId !== undefined;
const statusPoll = (e) => e.method === 'GET' && e.path === `${API}/status`;

test('SIGKILL at 27 points during sync, assignment and reclaim: each restart from the SQLite file loses nothing and does nothing twice', { timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vpp-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sim = await startSimulator({
    port: 0, seed: 11, pageSize: 6, eventDelayMs: EVENT_DELAY_MS, notificationRetryDelayMs: 300,
    limits: { maxSerialNumbers: 5 }, logHeaders: ['x-instance'],
  });
  t.after(() => sim.close());
  const org = sim.addOrganization({ orgName: 'CRASH', locationName: 'HQ', apps: 5, freeApps: 0, books: 0, devices: 100, users: 0, assignedFraction: 0.25 });
  const apps = org.assets.filter((a) => a.deviceAssignable && a.revocable).slice(0, 3);
  assert.equal(apps.length, 3);
  sim.mutate(org.token, (o) => { for (const a of apps) o.adjustAssetCount(a.adamId, a.pricingParam, 100); });
  // Our targets: devices that hold none of the three apps, so that every assignment of them on these devices is ours.
  const others = new Set(org.assignments.filter((a) => apps.some((p) => p.adamId === a.adamId)).map((a) => a.serialNumber));
  const devices = org.serialNumbers.filter((s) => !others.has(s));
  assert.ok(devices.length >= 28, `enough free devices (${devices.length})`);

  let backend = null;
  let generation = 0;
  const relay = await startRelay(() => (backend?.alive ? backend.notificationUrl : null));
  t.after(() => relay.close());
  const engine = {
    mdmInfo: MDM, serviceConfigUrl: sim.serviceConfigUrl, seed: 5,
    notifications: { url: relay.url, authToken: randomBytes(32).toString('hex') },
    unconfirmedSettleMs: SETTLE_MS,
  };
  const path = join(dir, 'backend.sqlite');
  t.after(() => backend?.kill());

  // ------------------------------------------------------------------ inputs, delivered at least once
  const journal = [];
  async function deliver(entry) {
    const b = backend;
    try {
      await b.command(entry.input.type === 'addAccount' ? 'addAccount' : 'input', { input: entry.input });
      entry.acked = true;
    } catch (error) {
      // Killed before it answered: sent again after the restart. Already applied before the crash: done.
      if (error.code === 'ACCOUNT_EXISTS') entry.acked = true;
      else if (b.alive) throw error;
    }
  }
  async function send(...inputs) {
    for (const input of inputs) {
      const entry = { input, acked: false };
      journal.push(entry);
      await deliver(entry);
    }
  }
  async function startBackend() {
    generation += 1;
    backend = new Backend(`gen-${generation}`, { instance: `gen-${generation}`, store: { kind: 'sqlite', path }, engine });
    await backend.ready;
    for (const entry of journal) if (!entry.acked) await deliver(entry);
  }

  // ------------------------------------------------------------------ kill points
  const kills = [];
  let armed = null;
  /** SIGKILLs the running backend for `point`; resolves once it is gone. */
  function crash(point, entry) {
    const victim = backend;
    kills.push({ label: point.label, generation, at: Date.now(), request: entry ? `${entry.method} ${entry.path} ${JSON.stringify(entry.query)}` : null });
    const gone = victim.kill();
    point.fired(gone);
    return gone;
  }
  sim.setReplyHook((entry) => {
    const point = armed;
    if (!point?.request || entry.headers?.['x-instance'] !== backend?.name || !point.request(entry)) return undefined;
    armed = null;
    if (point.afterReplyMs === undefined) return crash(point, entry); // the answer waits until the process is gone
    setTimeout(() => crash(point, entry), point.afterReplyMs);
    return undefined;
  });
  /**
   * While set, the relay answers every notification 503 (Apple retries later): a /status poll kill point needs the
   * event still unknown to the restarted engine, and on a loaded machine the completion notification could otherwise
   * reach it before its first poll.
   */
  let holdNotifications = false;
  relay.intercept = async (accountId, body) => {
    if (holdNotifications) throw new Error('notifications held for a /status poll kill point');
    const point = armed;
    if (!point?.notification || !backend?.alive || JSON.parse(body).notificationType !== point.notification) return;
    armed = null;
    await crash(point, null); // the relay then answers 503: Apple retries, perhaps after the restart
  };

  /** Arms `point`, runs its action, waits for it to fire and restarts the backend from the file. */
  async function killAt(point) {
    let fired;
    const firing = new Promise((resolve) => { fired = resolve; });
    const live = { ...point, fired };
    armed = live;
    if (point.action) await point.action();
    if (point.afterActionMs !== undefined && armed === live) {
      armed = null;
      setTimeout(() => crash(live, null), point.afterActionMs);
    }
    let timer;
    const gone = await Promise.race([
      firing,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`kill point "${point.label}" was never reached; requests of ${backend.name}: ${
          JSON.stringify(sim.requestLog.filter((e) => e.headers?.['x-instance'] === backend.name).map((e) => `${e.method} ${e.path} ${e.status}`))
        }; notifications: ${JSON.stringify(sim.notificationLog.slice(-5).map((n) => `${n.notificationType} ${n.status ?? n.error}`))}; backend stderr: ${backend.stderr}`)),
        KILL_POINT_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    const { signal } = await gone;
    assert.equal(signal, 'SIGKILL');
    await startBackend();
    if (point.afterRestart) await point.afterRestart();
  }

  /** After a crash between Apple accepting an associate and the backend reading the answer: it is not sent blindly again. */
  const unconfirmed = async () => {
    const pending = await backend.command('pendingOperations', { accountId: ACCOUNT });
    assert.ok(pending.some((op) => op.kind === 'associate' && op.state === 'unconfirmed'),
      `the restored engine waits to learn what Apple made of the unanswered associate: ${JSON.stringify(pending)}`);
  };

  // ------------------------------------------------------------------ desired state
  const policies = new Map(); // policyId → { adamId, targets }
  const retired = new Set();
  const setPolicy = (policyId, app, targets) => {
    policies.set(policyId, { adamId: app.adamId, targets });
    return { type: 'setPolicy', policy: { policyId, name: policyId, accountId: ACCOUNT, adamId: app.adamId, pricingParam: app.pricingParam, licenseType: 'device', targets } };
  };
  const desiredPairs = () => new Set([...policies.values()].flatMap(({ adamId, targets }) =>
    targets.filter((s) => !retired.has(s)).map((s) => `${adamId}/${s}`)));
  const simPairs = () => new Set(org.assignments.filter((a) => a.serialNumber && devices.includes(a.serialNumber) && apps.some((p) => p.adamId === a.adamId))
    .map((a) => `${a.adamId}/${a.serialNumber}`));
  const sameSet = (a, b) => a.size === b.size && [...a].every((x) => b.has(x));
  const diff = () => {
    const want = desiredPairs();
    const have = simPairs();
    return `missing at Apple: ${[...want].filter((p) => !have.has(p))}; extra at Apple: ${[...have].filter((p) => !want.has(p))}`;
  };
  const grow = (policyId, app, count) => {
    const current = policies.get(policyId)?.targets ?? [];
    const fresh = devices.filter((s) => !current.includes(s) && !retired.has(s)).slice(0, count);
    return send(setPolicy(policyId, app, [...current, ...fresh]));
  };
  const shrink = (policyId, app, count) => send(setPolicy(policyId, app, policies.get(policyId).targets.slice(count)));
  // Drops the first `count` targets that are not retired: their licenses are still held, so a disassociate must go
  // (a retired target's license is released by its revoke, and once the engine knows that, leaving scope costs nothing).
  const shrinkLive = (policyId, app, count) => {
    const { targets } = policies.get(policyId);
    const dropped = new Set(targets.filter((s) => !retired.has(s)).slice(0, count));
    return send(setPolicy(policyId, app, targets.filter((s) => !dropped.has(s))));
  };
  const retire = async (policyId, count) => {
    const victims = policies.get(policyId).targets.filter((s) => !retired.has(s)).slice(0, count);
    for (const s of victims) retired.add(s);
    await send(...victims.map((serialNumber) => ({ type: 'deviceRetired', serialNumber })));
  };
  const [app1, app2, app3] = apps;
  const synced = () => backend.events.some((e) => e.type === 'syncCompleted');

  // ------------------------------------------------------------------ the run
  await startBackend();
  let retryAfter = null;
  const refresh = () => send({ type: 'refresh', accountId: ACCOUNT });
  const plan = [
    // Sync: the first full sync after adding the account, then full refreshes asked for (a restart catches up
    // with a delta sync of one page).
    { label: 'sync: assignments page 1 in flight', action: () => send({ type: 'addAccount', accountId: ACCOUNT, name: 'District', token: org.token }), request: page('assignments', 1) },
    { label: 'sync: assignments page 3 in flight', action: refresh, request: page('assignments', 3) },
    { label: 'sync: assignments page 5 in flight', action: refresh, request: page('assignments', 5) },
    { label: 'sync: assignments page 7 in flight', action: refresh, request: page('assignments', 7) },
    { label: 'sync: assignments page 9 in flight', action: refresh, request: page('assignments', 9) },
    { label: 'sync: assets in flight', action: refresh, request: page('assets', 0) },
    {
      label: 'sync: waiting out a Retry-After',
      async action() {
        sim.injectFault({ token: org.token, path: '/assignments', status: 503, retryAfter: String(RETRY_AFTER_S) });
        await refresh();
        await waitFor('backingOff stored', async () => (await backend.command('accounts')).some((a) => a.status === 'backingOff'));
        const answer = sim.requestLog.findLast((e) => e.status === 503 && e.token === org.token);
        retryAfter = { answeredAt: answer.answeredAt, index: sim.requestLog.indexOf(answer), instance: answer.headers['x-instance'] };
      },
      afterActionMs: 0,
    },
  ];
  for (const point of plan) await killAt(point);
  await waitFor('a sync after the last sync crash', synced, { describe: () => backend.stderr });

  const enrolled = devices.slice(0, 28).map((serialNumber) => ({ type: 'deviceEnrolled', serialNumber }));
  await send(...enrolled);
  // A slow event is still pending at Apple when the backend restarts: the restored engine polls /status at once.
  const slowEvents = (ms) => sim.setEventDelay(ms);
  /** Runs `change` with slow events and resolves once the backend has stored the eventId of the request it caused. */
  const eventStored = async (kind, change) => {
    slowEvents(SLOW_EVENT_DELAY_MS);
    holdNotifications = true;
    await change();
    await waitFor(`${kind} eventId stored`, async () => (await backend.command('pendingOperations', { accountId: ACCOUNT }))
      .some((op) => op.kind === kind && op.state === 'pending' && op.eventId !== null));
  };
  const releaseNotifications = () => { holdNotifications = false; };
  const assignment = [
    { label: 'associate accepted, answer not read', action: () => grow('p1', app1, 4), request: accepted('assets/associate'), afterRestart: unconfirmed },
    { label: 'associate accepted, answer not read (again)', action: () => grow('p1', app1, 4), request: accepted('assets/associate'), afterRestart: unconfirmed },
    { label: 'associate answered, crash at once', action: () => grow('p1', app1, 4), request: accepted('assets/associate'), afterReplyMs: 0 },
    { label: 'associate answered, crash 10 ms later', action: () => grow('p1', app1, 4), request: accepted('assets/associate'), afterReplyMs: 10 },
    { label: 'associate answered, crash 30 ms later', action: () => grow('p2', app2, 4), request: accepted('assets/associate'), afterReplyMs: 30 },
    { label: 'completion notification on its way', action: () => grow('p2', app2, 4), notification: 'ASSET_MANAGEMENT' },
    { label: 'associate pending at Apple, its eventId stored', action: () => eventStored('associate', () => grow('p3', app3, 4)), afterActionMs: 0 },
    { label: '/status poll in flight', request: statusPoll, afterRestart: releaseNotifications },
    { label: 'a moment after a policy change', action: () => { slowEvents(EVENT_DELAY_MS); return grow('p2', app2, 4); }, afterActionMs: 20 },
    { label: 'full refresh amid license work: assignments page 2 in flight', action: async () => { await grow('p3', app3, 2); await refresh(); }, request: page('assignments', 2) },
    { label: 'associate accepted, answer not read (third app)', action: () => grow('p3', app3, 4), request: accepted('assets/associate'), afterRestart: unconfirmed },
  ];
  for (const point of assignment) await killAt(point);
  await waitFor('desired state after the assignment crashes', () => sameSet(simPairs(), desiredPairs()), { timeoutMs: 30_000, describe: diff });

  const releases = accepted('assets/disassociate', 'assets/revoke');
  const reclaim = [
    { label: 'disassociate accepted, answer not read', action: () => shrink('p1', app1, 4), request: releases },
    { label: 'disassociate answered, crash at once', action: () => shrink('p1', app1, 4), request: releases, afterReplyMs: 0 },
    { label: 'retire: release accepted, answer not read', action: () => retire('p2', 2), request: releases },
    { label: 'release notification on its way', action: () => shrink('p2', app2, 4), notification: 'ASSET_MANAGEMENT' },
    { label: 'release pending at Apple, its eventId stored', action: () => eventStored('disassociate', () => shrink('p3', app3, 2)), afterActionMs: 0 },
    { label: '/status poll of a release in flight', request: statusPoll, afterRestart: releaseNotifications },
    { label: 'a moment after a scope change', action: () => { slowEvents(EVENT_DELAY_MS); return shrink('p3', app3, 2); }, afterActionMs: 10 },
    { label: 'retire: release answered, crash 20 ms later', action: () => retire('p1', 2), request: releases, afterReplyMs: 20 },
    { label: 'disassociate accepted, answer not read (last)', action: () => shrinkLive('p1', app1, 2), request: releases },
  ];
  for (const point of reclaim) await killAt(point);

  // ------------------------------------------------------------------ the end state
  // A release sent again after a crash may finish before the slow event of the first one: wait for Apple too.
  const unfinishedEvents = () => sim.requestLog.filter((e) => e.eventId !== undefined)
    .map((e) => sim.event(e.eventId)).filter((e) => e.eventStatus === 'PENDING');
  const describe = async () => `${diff()}; pending: ${JSON.stringify(await backend.command('pendingOperations', { accountId: ACCOUNT }).catch(String))}; ` +
    `pending at Apple: ${JSON.stringify(unfinishedEvents().map((e) => `${e.eventType} ${e.eventId}`))}; ` +
    `kills: ${JSON.stringify(kills.map((k) => `${k.generation}: ${k.label} (${k.request})`))}; backend errors: ${backend.errors}; stderr: ${backend.stderr}`;
  await waitFor('desired state, nothing pending here or at Apple', async () => sameSet(simPairs(), desiredPairs())
    && (await backend.command('pendingOperations', { accountId: ACCOUNT })).length === 0 && unfinishedEvents().length === 0,
  { timeoutMs: 60_000, describe });
  const acceptedAssociates = sim.requestLog.filter(accepted('assets/associate')).length;
  t.diagnostic(`${kills.length} SIGKILLs, ${generation} backend processes, ${sim.requestLog.length} requests ` +
    `(${acceptedAssociates} associates accepted); kill points: ${kills.map((k) => k.label).join(' | ')}`);
  assert.ok(kills.length >= 20, `${kills.length} kill points fired`);

  // Provenance = what Apple shows for our targets = the desired state.
  const provenance = new Set((await backend.command('records', { prefix: 'prov/' }))
    .flatMap(({ value }) => [...value.adamIds, ...(value.plusAdamIds ?? [])].map((adamId) => `${adamId}/${value.serialNumber}`)));
  assert.deepEqual([...provenance].sort(), [...desiredPairs()].sort(), 'prov/ records are the desired assignments');
  assert.deepEqual([...simPairs()].sort(), [...desiredPairs()].sort(), 'Apple holds the desired assignments');

  // No (asset, device) pair in two associate requests Apple accepted (no target ever re-entered a scope).
  const associated = new Map();
  for (const entry of sim.requestLog.filter(accepted('assets/associate'))) {
    const { request } = sim.event(entry.eventId);
    for (const a of request.assets) {
      for (const s of request.serialNumbers) {
        const key = `${a.adamId}/${s}`;
        associated.set(key, [...(associated.get(key) ?? []), `${entry.headers['x-instance']}@${entry.at}`]);
      }
    }
  }
  const twice = [...associated].filter(([, by]) => by.length > 1);
  // On failure, say what each generation was doing and what Apple made of each associate (to find the cause of a rare
  // double association seen once under load in CI at dde359f).
  const associates = sim.requestLog.filter(accepted('assets/associate')).map((entry) => {
    const event = sim.event(entry.eventId);
    return `${entry.headers['x-instance']}@${entry.at} ${entry.eventId} ${event.eventStatus} ${event.request.assets.map((a) => a.adamId)} ${event.request.serialNumbers}`;
  });
  assert.deepEqual(twice, [], `pairs Apple was asked to associate twice; associates: ${JSON.stringify(associates)}; kills: ${
    JSON.stringify(kills.map((k) => `${k.generation}@${k.at}: ${k.label} (${k.request})`))}`);

  // Every event Apple accepted finished, and none failed.
  const events = sim.requestLog.filter((e) => e.eventId !== undefined).map((e) => sim.event(e.eventId));
  assert.deepEqual(events.filter((e) => e.eventStatus !== 'COMPLETE').map((e) => `${e.eventType} ${e.eventStatus}`), []);

  // The Retry-After deadline stored before the crash held after it: no request of the account from the restarted
  // backend before it (the crashed one had other pages in flight already).
  const early = sim.requestLog.slice(retryAfter.index + 1)
    .filter((e) => e.token === org.token && e.headers['x-instance'] !== retryAfter.instance && e.at < retryAfter.answeredAt + RETRY_AFTER_S * 1000);
  assert.ok(sim.requestLog.slice(retryAfter.index + 1).some((e) => e.token === org.token && e.headers['x-instance'] !== retryAfter.instance),
    'the restarted backend called Apple again');
  assert.deepEqual(early.map((e) => `${e.method} ${e.path} +${e.at - retryAfter.answeredAt} ms`), [], 'requests inside the Retry-After window');
  assert.deepEqual(sim.requestLog.filter((e) => e.errorNumber === 9646).map((e) => `${e.method} ${e.path}`), [], 'rate-limited requests');
  await backend.command('stop');
});
