// The Apps and Books console: the engine runs in this page (wasm), driven by the host shim; requests go
// straight to the service-config URL the server names (the simulator, or a relay in front of Apple).
import init, { Engine, decodeToken } from 'vpp-license-engine';
import * as host from 'vpp-license-engine/host';

const LOG_LIMIT = 200;
/** Rows per page of the assignments table (`engine.assignmentReport`, cursor by cursor). */
const ASSIGNMENTS_SHOWN = 50;
/** Rows per engine call while a CSV export is built. */
const EXPORT_PAGE = 1000;
const STORE_NAME = 'vpp-license-engine-console';
const STATUS = {
  checking: ['↻', 'Checking'],
  syncing: ['↻', 'Syncing'],
  active: ['✓', 'Active'],
  backingOff: ['⏸', 'Backing off'],
  ownedByOtherMdm: ['⚠', 'Owned by another MDM'],
  tokenInvalid: ['✕', 'Token invalid'],
};

/** Statuses in which an account sends nothing until an administrator acts. */
const STOPPED = new Set(['ownedByOtherMdm', 'tokenInvalid']);

const $ = (selector) => document.querySelector(selector);
/** An element with properties (or attributes for `aria-*`/`data-*`) and children. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith('aria-') || key.startsWith('data-') || key === 'role') node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}
const formatTime = (ms) => (ms == null ? '—' : new Date(ms).toLocaleString());
const formatDate = (ms) => new Date(ms).toLocaleDateString();

const state = {
  engine: null,
  driver: null,
  store: null,
  fixtures: { locations: [] },
  /** accountId → { name?, token?, tokenOrg? } staged by Edit; applied on Save. */
  staged: new Map(),
  /** The saved license removal notification setting, and the staged one (undefined: unchanged). */
  notify: false,
  stagedNotify: undefined,
  policies: new Map(),
  /** accountId → { pagesDone, pagesTotal, done } of the current or last sync. */
  progress: new Map(),
  licenseAccount: null,
  assignmentsApp: null,
  /** The cursors (`after`) of the assignments table's pages up to the one shown: Previous pops, Next pushes. */
  assignmentCursors: [null],
  /** adamId → { name?, iconUrl? } the host gave (`setAppMetadata`); apps without are shown by adam id. */
  appMetadata: new Map(),
  editing: null,
  menuAccount: null,
};

// ------------------------------------------------------------------ start-up

async function main() {
  const [config, fixtures] = await Promise.all(['/console-config.json', '/demo-fixtures.json'].map(async (url) => {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }));
  state.fixtures = fixtures;
  await init();
  const { store, storeText } = await openStore(config.runId);
  state.store = store;
  const records = await store.load();
  const engineConfig = { mdmInfo: config.mdmInfo, serviceConfigUrl: config.serviceConfigUrl };
  state.engine = records.length > 0 ? Engine.restore(engineConfig, records, Date.now()) : new Engine(engineConfig, Date.now());
  for (const { key, value } of records) {
    if (key === 'settings') state.notify = value.licenseRemovalNotification === true;
    if (key.startsWith('policy/')) state.policies.set(value.policyId, { ...value, targets: [] });
  }
  // A policy's targets are in its `targets/` records (one `scope/` record each in stores of earlier engines).
  for (const { key, value } of records) {
    if (key.startsWith('targets/')) state.policies.get(value.policyId)?.targets.push(...value.targets);
    if (key.startsWith('scope/')) state.policies.get(value.policyId)?.targets.push(value.target);
  }
  state.driver = new host.Driver({
    engine: state.engine,
    store,
    // In production Apple is reached through the backend's relay (createAppleRelay); the demo's --relay mode does so.
    transport: host.createFetchTransport(config.relayPath ? { baseUrl: new URL(config.relayPath, location.origin).href } : {}),
    onEvent,
    onError: (error) => showAlert(`Engine: ${error.message}`),
  });
  state.driver.start();
  setAppMetadata(config.appMetadata ?? {});
  // For the devtools console, tests and a host embedding the page.
  window.vppConsole = { engine: state.engine, driver: state.driver, store, setAppMetadata };

  const apple = config.relayPath ? `${new URL(config.serviceConfigUrl).origin} via the relay at ${config.relayPath}` : new URL(config.serviceConfigUrl).origin;
  $('#engine-info').textContent = `Engine running in this page · ${storeText} · Apple API: ${apple}`;
  $('#token-downloads').replaceChildren('Demo sTokens: ', ...config.tokens.flatMap(({ name, url }, i) => [
    i > 0 ? ', ' : '', el('a', { href: url, download: '' }, name),
  ]));
  for (const id of ['#add-account', '#notify-toggle', '#reconcile']) $(id).disabled = false;
  wireControls();
  render();
  document.body.dataset.ready = 'true';
}

/** IndexedDB when the host shim has it (one database per demo run), else memory. */
async function openStore(runId) {
  if (!host.IndexedDbStore) return { store: new host.MemoryStore(), storeText: 'memory store (not kept across reloads)' };
  if (localStorage.getItem(`${STORE_NAME}:run`) !== runId) {
    await new Promise((resolve, reject) => {
      const request = indexedDB.deleteDatabase(STORE_NAME);
      request.onsuccess = resolve;
      request.onerror = () => reject(request.error);
    });
    localStorage.setItem(`${STORE_NAME}:run`, runId);
  }
  return { store: await host.IndexedDbStore.open(STORE_NAME), storeText: `IndexedDB store "${STORE_NAME}"` };
}

// ------------------------------------------------------------------ engine events

function accountName(accountId) {
  return state.engine.accounts().find((a) => a.accountId === accountId)?.name ?? accountId;
}

function onEvent(event) {
  if (event.type === 'syncStarted') state.progress.set(event.accountId, { pagesDone: 0, pagesTotal: 0, done: false });
  if (event.type === 'syncProgress') state.progress.set(event.accountId, { ...event, done: false });
  if (event.type === 'syncCompleted') {
    const p = state.progress.get(event.accountId);
    state.progress.set(event.accountId, { pagesDone: p?.pagesTotal ?? 1, pagesTotal: p?.pagesTotal ?? 1, done: true });
  }
  // An account that stops (another MDM took the location, the token is no longer valid) ends its sync unfinished:
  // the progress line says why instead of waiting for pages that will not come.
  const progress = state.progress.get(event.accountId);
  if (event.type === 'accountStatusChanged' && STOPPED.has(event.status) && progress && !progress.done) {
    state.progress.set(event.accountId, { ...progress, done: true, stopped: event.reason });
  }
  if (event.type === 'testResult') {
    showNotice(`Test of ${accountName(event.accountId)}: ${event.ok ? 'passed' : 'failed'} — ${event.message}`);
  }
  if (event.type === 'syncProgress') renderProgress();
  else log(event.type, describe(event));
  if (event.type === 'accountStatusChanged') renderProgress();
  scheduleRender();
}

/** One line for the log: the event's fields, account ids replaced by names. */
function describe(event) {
  const { type, accountId, ...rest } = event;
  const fields = Object.entries(rest)
    .filter(([, value]) => value !== null)
    .map(([key, value]) => `${key}=${typeof value === 'object' ? JSON.stringify(value) : value}`);
  return [accountId ? accountName(accountId) : null, ...fields].filter(Boolean).join(' · ');
}

function log(type, text) {
  const list = $('#event-log');
  list.prepend(el('li', { 'data-type': type },
    el('time', {}, new Date().toLocaleTimeString()), el('strong', {}, type), el('span', {}, text)));
  while (list.children.length > LOG_LIMIT) list.lastChild.remove();
}

// ------------------------------------------------------------------ rendering

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  const accounts = state.engine.accounts();
  renderAccounts(accounts);
  renderProgress();
  renderPending();
  renderLicenses(accounts);
  renderPolicies(accounts);
}

function renderAccounts(accounts) {
  $('#no-accounts').hidden = accounts.length > 0;
  $('#accounts tbody').replaceChildren(...accounts.map((a) => {
    const [icon, label] = STATUS[a.status] ?? ['?', a.status];
    const staged = state.staged.get(a.accountId);
    const name = staged?.name ?? a.name;
    const menuButton = el('button', {
      type: 'button', className: 'icon-button', textContent: '⋯', title: 'Actions',
      'aria-label': `Actions for ${a.name}`, 'aria-haspopup': 'menu', 'aria-expanded': 'false',
    });
    menuButton.addEventListener('click', () => openMenu(a.accountId, menuButton));
    const deleteButton = el('button', { type: 'button', className: 'danger', textContent: 'Delete', 'aria-label': `Delete ${a.name}` });
    deleteButton.addEventListener('click', () => runAction('delete', a.accountId));
    const row = el('tr', { 'data-account': a.accountId, 'data-status': a.status },
      el('td', {}, el('span', { className: `status status-${a.status}`, title: a.statusReason, role: 'img', 'aria-label': `${label}: ${a.statusReason}` }, icon)),
      el('td', { className: staged ? 'staged' : '' }, name, staged ? el('span', { className: 'muted small' }, ' (unsaved)') : ''),
      el('td', {}, a.orgName),
      el('td', {}, a.locationName ?? '—', a.otherMdmName ? el('div', { className: 'muted small' }, `held by ${a.otherMdmName}`) : ''),
      el('td', {}, formatTime(a.lastSyncedAt)),
      el('td', {}, formatDate(staged?.tokenExpiresAt ?? a.tokenExpiresAt)),
      el('td', { className: 'actions' }, menuButton, deleteButton),
    );
    row.addEventListener('contextmenu', (e) => {
      e.preventDefault();
      openMenu(a.accountId, menuButton);
    });
    return row;
  }));
}

function renderProgress() {
  const all = [...state.progress.entries()];
  const running = all.filter(([, p]) => !p.done);
  const stopped = all.filter(([, p]) => p.stopped);
  const bar = $('#sync-progress');
  if (all.length === 0) return;
  if (running.length === 0 && stopped.length > 0) {
    bar.dataset.state = 'stopped';
    $('#sync-label').textContent = stopped.map(([id, p]) => `Sync of ${accountName(id)} stopped: ${p.stopped}`).join(' · ');
    return;
  }
  const shown = running.length > 0 ? running : all;
  const done = shown.reduce((n, [, p]) => n + p.pagesDone, 0);
  const total = shown.reduce((n, [, p]) => n + p.pagesTotal, 0);
  bar.max = Math.max(total, 1);
  bar.value = running.length > 0 ? done : bar.max;
  bar.dataset.state = running.length > 0 ? 'running' : 'done';
  $('#sync-label').textContent = running.length > 0
    ? `Syncing ${running.map(([id]) => accountName(id)).join(', ')}: ${done} of ${total || '?'} pages`
    : 'All accounts synchronized';
}

function renderPending() {
  const changes = state.staged.size + (state.stagedNotify === undefined ? 0 : 1);
  $('#pending-text').textContent = changes === 0 ? 'No unsaved changes' : `${changes} unsaved change${changes > 1 ? 's' : ''}`;
  $('#pending-bar').classList.toggle('dirty', changes > 0);
  $('#save-changes').disabled = changes === 0;
  $('#cancel-changes').disabled = changes === 0;
  $('#notify-toggle').checked = state.stagedNotify ?? state.notify;
}

/** Keeps a select's options in sync with [value, text] pairs, keeping the selection (or `prefer`) when it exists. */
// ------------------------------------------------------------------ app metadata

/**
 * Names and icons of apps, from the host (the engine knows adam ids only; Apple's `GET /assets` has no names — a
 * backend asks the content metadata lookup, `urls.contentMetadataLookup`): `{ [adamId]: { name?, iconUrl? } }`,
 * merged into what the console holds. Only `https:`, `http:` and `data:image/` icon URLs are shown.
 */
export function setAppMetadata(entries) {
  for (const [adamId, { name, iconUrl } = {}] of Object.entries(entries ?? {})) {
    const safeIcon = typeof iconUrl === 'string' && /^(https?:|data:image\/)/i.test(iconUrl) ? iconUrl : undefined;
    state.appMetadata.set(String(adamId), { name: typeof name === 'string' ? name : undefined, iconUrl: safeIcon });
  }
  if (state.engine) scheduleRender();
}

const appName = (adamId) => state.appMetadata.get(adamId)?.name;

/** The app's icon and name with its adam id, or the adam id alone. */
function appLabel(adamId) {
  const meta = state.appMetadata.get(adamId);
  if (!meta?.name && !meta?.iconUrl) return el('span', { className: 'app' }, adamId);
  const icon = meta.iconUrl ? el('img', { className: 'app-icon', src: meta.iconUrl, alt: '', width: 20, height: 20 }) : '';
  return el('span', { className: 'app' }, icon, el('span', { className: 'app-name' }, meta.name ?? adamId), ' ',
    el('span', { className: 'muted small' }, adamId));
}

const appText = (adamId) => (appName(adamId) ? `${appName(adamId)} (${adamId})` : adamId);

function fillSelect(select, options, prefer = select.value) {
  const previous = prefer;
  select.replaceChildren(...options.map(([value, text]) => el('option', { value, textContent: text })));
  if (options.some(([value]) => value === previous)) select.value = previous;
}

/** The Licenses panel's choice that shows every app over all accounts (`appTotals`), one token's share each. */
const ALL_ACCOUNTS = '*all*';

function renderLicenses(accounts) {
  const choices = accounts.map((a) => [a.accountId, a.name]);
  fillSelect($('#license-account'), accounts.length > 1 ? [...choices, [ALL_ACCOUNTS, 'All accounts']] : choices, state.licenseAccount);
  const accountId = $('#license-account').value || null;
  state.licenseAccount = accountId;
  const names = new Map(choices);
  const all = accountId === ALL_ACCOUNTS;
  const counts = all ? state.engine.appTotals() : accountId ? state.engine.appCounts(accountId) : [];
  $('#app-counts tbody').replaceChildren(...counts.map((c) => {
    let last;
    if (all) {
      last = el('td', { className: 'small muted' }, c.accounts.map((a) => `${names.get(a.accountId) ?? a.accountId}: ${a.assignedCount} of ${c.unlimited ? '∞' : a.totalCount}`).join(' · '));
    } else {
      const show = el('button', { type: 'button', className: 'link', textContent: 'Assignments', 'aria-label': `Assignments of ${c.adamId} ${c.pricingParam}` });
      show.addEventListener('click', () => {
        state.assignmentsApp = { adamId: c.adamId, pricingParam: c.pricingParam };
        state.assignmentCursors = [null];
        renderAssignments();
      });
      const reclaim = el('button', { type: 'button', className: 'link', textContent: 'Reclaim', 'aria-label': `Reclaim licenses of ${c.adamId} ${c.pricingParam}` });
      reclaim.addEventListener('click', () => confirmChange(`Reclaim every license of ${c.adamId} (${c.pricingParam}) this MDM assigned in ${names.get(accountId)}?`,
        [{ type: 'reclaimApp', accountId, adamId: c.adamId, pricingParam: c.pricingParam }],
        () => log('admin', `reclaimApp ${c.adamId} in ${names.get(accountId)}`)));
      last = el('td', {}, show, ' ', reclaim);
    }
    return el('tr', { 'data-adam-id': c.adamId },
      el('td', {}, appLabel(c.adamId)), el('td', {}, c.productType), el('td', {}, c.pricingParam),
      el('td', { className: 'num' }, c.unlimited ? 'Unlimited' : String(c.totalCount)),
      el('td', { className: 'num' }, String(c.assignedCount)),
      el('td', { className: 'num' }, c.unlimited ? '—' : String(c.availableCount)),
      last);
  }));
  renderAssignments();
  fillSelect($('#policy-account'), accounts.map((a) => [a.accountId, a.name]));
  const policyAccount = $('#policy-account').value;
  const apps = policyAccount ? state.engine.appCounts(policyAccount).filter((c) => c.productType === 'App' && c.deviceAssignable) : [];
  fillSelect($('#policy-app'), apps.map((c) => [`${c.adamId}|${c.pricingParam}`, `${appText(c.adamId)} ${c.pricingParam}`]));
}

function renderAssignments() {
  const app = state.assignmentsApp;
  const section = $('#assignments');
  section.hidden = !app || !state.licenseAccount || state.licenseAccount === ALL_ACCOUNTS;
  if (section.hidden) return;
  const query = (after) => ({ adamId: app.adamId, pricingParam: app.pricingParam, after, limit: ASSIGNMENTS_SHOWN });
  const cursors = state.assignmentCursors;
  let page;
  try {
    page = state.engine.assignmentReport(state.licenseAccount, query(cursors.at(-1)));
  } catch {
    // A cursor of an engine that was replaced (or of an account since deleted): back to the first page.
    state.assignmentCursors = [null];
    page = state.engine.assignmentReport(state.licenseAccount, query(null));
  }
  const first = (state.assignmentCursors.length - 1) * ASSIGNMENTS_SHOWN;
  $('#assignments-title').textContent = `Assignments of ${appText(app.adamId)} ${app.pricingParam}`;
  section.querySelector('tbody').replaceChildren(...page.rows.map((a) =>
    el('tr', {}, el('td', {}, a.serialNumber ?? '—'), el('td', {}, a.clientUserId ?? '—'),
      el('td', {}, a.ours ? 'This MDM' : 'Another MDM'), el('td', {}, formatTime(a.confirmedSince)), el('td', {}, a.policyId ?? '—'))));
  $('#assignments-more').textContent = page.total === 0 ? 'None'
    : `${first + 1}–${first + page.rows.length} of ${page.total}`;
  $('#assignments-prev').disabled = state.assignmentCursors.length === 1;
  $('#assignments-next').disabled = page.next == null;
  $('#assignments-next').dataset.next = page.next ?? '';
}

/** The Licenses panel's account for the reports: one account, or null for all accounts. */
const reportAccount = () => (state.licenseAccount === ALL_ACCOUNTS ? null : state.licenseAccount);

/** Builds the report's CSV page by page (a Blob of the parts, never one string) and downloads it. */
async function exportCsv(kind) {
  const accountId = reportAccount();
  const chunks = kind === 'apps'
    ? host.appReportCsv(state.engine, accountId, { appName })
    : host.assignmentReportCsv(state.engine, accountId, { appName, pageSize: EXPORT_PAGE });
  const parts = [];
  for await (const chunk of chunks) parts.push(chunk);
  const url = URL.createObjectURL(new Blob(parts, { type: 'text/csv;charset=utf-8' }));
  const scope = accountId ?? 'all-accounts';
  const link = el('a', { href: url, download: `${kind === 'apps' ? 'app-licenses' : 'assignments'}-${scope}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  log('admin', `exported ${kind === 'apps' ? 'app licenses' : 'assignments'} of ${accountId ? accountName(accountId) : 'all accounts'} as CSV`);
}

function renderPolicies(accounts) {
  const names = new Map(accounts.map((a) => [a.accountId, a.name]));
  $('#policies').replaceChildren(...[...state.policies.values()].map((p) => {
    const remove = el('button', { type: 'button', className: 'link', textContent: 'Remove', 'aria-label': `Remove policy ${p.name}` });
    remove.addEventListener('click', () => confirmChange(`Remove the policy "${p.name}"?`, [{ type: 'removePolicy', policyId: p.policyId }], () => {
      state.policies.delete(p.policyId);
      log('admin', `removed policy ${p.name}`);
    }));
    return el('li', { 'data-policy': p.policyId },
      el('strong', {}, p.name), ` — ${p.adamId} (${p.pricingParam}) on ${names.get(p.accountId) ?? p.accountId}, ${p.targets.length} devices `, remove);
  }));
}

// ------------------------------------------------------------------ commands

function showAlert(text) {
  const alert = $('#alert');
  alert.textContent = text;
  alert.hidden = false;
}
function showNotice(text) {
  $('#notice').textContent = text;
}

/** Shows an engine refusal, after `what` (e.g. "Cannot delete …"). */
function showRefusal(error, what = '') {
  const text = `${what}${error.message}`;
  showAlert(text);
  log('refused', text);
}

/** Runs a command; an engine refusal is shown, not thrown. */
function attempt(fn, what = '') {
  $('#alert').hidden = true;
  try {
    fn();
  } catch (error) {
    showRefusal(error, what);
  }
  render();
}

function confirmDialog(text) {
  const dialog = $('#confirm-dialog');
  $('#confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

const plural = (n, word) => `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;

/** "about 3 s" / "about 2 min": a preview's `estimatedMs`. */
function duration(ms) {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  return seconds < 120 ? `about ${seconds} s` : `about ${Math.ceil(seconds / 60)} min`;
}

/** Whom an app's licenses go to or come from: "250 devices", "3 users", "250 devices and 3 users". */
function whom(figures) {
  return [figures.devices && plural(figures.devices, 'device'), figures.users && plural(figures.users, 'user')].filter(Boolean).join(' and ');
}

/** What a preview (`engine.preview`) says would happen, in one sentence. */
function previewText(report) {
  const names = new Map(state.engine.accounts().map((a) => [a.accountId, a.name]));
  const several = report.accounts.length > 1;
  const parts = report.apps.flatMap(({ accountId, adamId, figures: f }) => {
    const app = `${adamId}${several ? ` in ${names.get(accountId) ?? accountId}` : ''}`;
    const out = [];
    if (f.assign > 0 && f.release > 0) out.push(`assigns ${plural(f.assign, 'license')} and reclaims ${plural(f.release, 'license')} of ${app}`);
    else if (f.assign > 0) out.push(`assigns ${plural(f.assign, 'license')} of ${app} to ${whom(f)}`);
    else if (f.release > 0) out.push(`reclaims ${plural(f.release, 'license')} of ${app} from ${whom(f)}`);
    if (f.otherMdmReleased > 0) out.push(`${f.otherMdmReleased.toLocaleString('en-US')} of them assigned by another MDM`);
    if (f.shortBy > 0) out.push(`${plural(f.shortBy, 'license')} of ${app} short`);
    return out;
  });
  if (parts.length === 0) return 'No license changes.';
  const { requests } = report.totals;
  const waits = report.accounts.filter((a) => a.waitReason && a.figures.requests > 0).map((a) => `${names.get(a.accountId) ?? a.accountId} waits: ${a.waitReason}`);
  const timing = requests > 0 ? `; ${plural(requests, 'request')}, ${duration(report.estimatedMs)}` : '';
  const sentence = parts.join(', ');
  return `${sentence[0].toUpperCase()}${sentence.slice(1)}${timing}.${waits.length ? ` (${waits.join('; ')})` : ''}`;
}

/**
 * Shows what `inputs` would do (the engine's preview: nothing changes) under `question`, in the page's dialog, and
 * feeds them to the driver if the administrator confirms; `applied` runs after. An input the engine refuses is shown
 * as refused, without asking.
 */
async function confirmChange(question, inputs, applied = () => {}) {
  $('#alert').hidden = true;
  let report;
  try {
    report = state.engine.preview(inputs, Date.now());
  } catch (error) {
    showRefusal(error);
    render();
    return;
  }
  if (!(await confirmDialog(`${question} ${previewText(report)}`))) return;
  attempt(() => {
    for (const input of inputs) state.driver.input(input);
    applied();
  });
}

async function runAction(action, accountId) {
  closeMenu();
  const name = accountName(accountId);
  const input = (type) => attempt(() => {
    state.driver.input({ type, accountId });
    log('admin', `${type} ${name}`);
  });
  switch (action) {
    case 'test': return input('testAccount');
    case 'refresh': return input('refresh');
    case 'edit': return openAccountDialog(accountId);
    case 'cleanUp':
      return confirmChange(`Clean Up "${name}"? Licenses that another MDM assigned in this location and no policy wants are released.`,
        [{ type: 'cleanUp', accountId }], () => log('admin', `cleanUp ${name}`));
    case 'reclaimOwnership':
      if (await confirmDialog(`Reclaim ownership of "${name}"? The other MDM stops managing this location.`)) input('reclaimOwnership');
      return undefined;
    case 'delete':
      if (await confirmDialog(`Delete the account "${name}"?`)) {
        attempt(() => {
          state.driver.input({ type: 'deleteAccount', accountId });
          state.staged.delete(accountId);
          log('admin', `deleteAccount ${name}`);
        }, `Cannot delete "${name}": `);
      }
      return undefined;
    default: throw new Error(`unknown action ${action}`);
  }
}

function openMenu(accountId, button) {
  const menu = $('#account-menu');
  const account = state.engine.accounts().find((a) => a.accountId === accountId);
  state.menuAccount = { accountId, button };
  menu.querySelector('[data-action="reclaimOwnership"]').disabled = account?.status !== 'ownedByOtherMdm';
  const rect = button.getBoundingClientRect();
  menu.style.top = `${rect.bottom + window.scrollY + 4}px`;
  menu.style.left = `${Math.max(8, rect.right + window.scrollX - 180)}px`;
  menu.hidden = false;
  button.setAttribute('aria-expanded', 'true');
  menu.querySelector('button:not(:disabled)').focus();
}

function closeMenu() {
  const menu = $('#account-menu');
  if (menu.hidden) return;
  menu.hidden = true;
  state.menuAccount?.button.setAttribute('aria-expanded', 'false');
}

function openAccountDialog(accountId = null) {
  state.editing = { accountId, token: null, tokenExpiresAt: null };
  const account = accountId && state.engine.accounts().find((a) => a.accountId === accountId);
  $('#account-dialog-title').textContent = account ? `Edit ${account.name}` : 'Add account';
  $('#account-submit').textContent = account ? 'Stage changes' : 'Add';
  $('#account-name').value = state.staged.get(accountId)?.name ?? account?.name ?? '';
  $('#account-token').value = '';
  $('#account-token').required = !account;
  $('#token-info').textContent = account ? 'Choose a file only to replace the token.' : '';
  $('#account-dialog').showModal();
}

async function onTokenChosen() {
  const file = $('#account-token').files[0];
  state.editing.token = null;
  if (!file) return;
  const text = (await file.text()).trim();
  try {
    const info = decodeToken(text);
    state.editing.token = text;
    state.editing.tokenExpiresAt = info.expiresAt;
    $('#token-info').textContent = `${info.orgName} · expires ${formatDate(info.expiresAt)}`;
    if (!$('#account-name').value) $('#account-name').value = file.name.replace(/\.vpptoken$/, '');
  } catch (error) {
    $('#token-info').textContent = `Not a valid sToken (${error.code ?? 'error'}): ${error.message}`;
  }
}

function submitAccountDialog(event) {
  event.preventDefault();
  const { accountId, token, tokenExpiresAt } = state.editing;
  const name = $('#account-name').value.trim();
  if (!name) return;
  if (accountId === null) {
    if (!token) {
      $('#token-info').textContent = 'Choose a valid sToken file.';
      return;
    }
    attempt(() => {
      const id = `account-${crypto.randomUUID().slice(0, 8)}`;
      state.driver.input({ type: 'addAccount', accountId: id, name, token });
      log('admin', `addAccount ${name}`);
      state.licenseAccount = id;
      state.assignmentsApp = null;
    });
  } else {
    const account = state.engine.accounts().find((a) => a.accountId === accountId);
    const change = { ...state.staged.get(accountId) };
    if (name !== account.name) change.name = name;
    else delete change.name;
    if (token) Object.assign(change, { token, tokenExpiresAt });
    if (Object.keys(change).length > 0) state.staged.set(accountId, change);
    else state.staged.delete(accountId);
    render();
  }
  $('#account-dialog').close();
}

function save() {
  attempt(() => {
    for (const [accountId, change] of state.staged) {
      const input = { type: 'editAccount', accountId };
      if (change.name !== undefined) input.name = change.name;
      if (change.token !== undefined) input.token = change.token;
      state.driver.input(input);
      state.staged.delete(accountId);
      log('admin', `editAccount ${accountName(accountId)}${input.token ? ' (token replaced)' : ''}`);
    }
    if (state.stagedNotify !== undefined) {
      state.driver.input({ type: 'setLicenseRemovalNotification', enabled: state.stagedNotify });
      state.notify = state.stagedNotify;
      state.stagedNotify = undefined;
      log('admin', `license removal notification ${state.notify ? 'on' : 'off'}`);
    }
  });
}

function createPolicy(event) {
  event.preventDefault();
  const accountId = $('#policy-account').value;
  const [adamId, pricingParam] = $('#policy-app').value.split('|');
  const account = state.engine.accounts().find((a) => a.accountId === accountId);
  const fleet = state.fixtures.locations.find((l) => l.locationName === account?.locationName);
  if (!adamId || !fleet) {
    showAlert('Choose an account whose location is synchronized and an app.');
    return;
  }
  const name = $('#policy-name').value.trim();
  const policy = {
    policyId: `policy-${crypto.randomUUID().slice(0, 8)}`, name, accountId, adamId, pricingParam,
    licenseType: 'device', targets: fleet.serialNumbers.slice(0, Number($('#policy-devices').value)),
  };
  confirmChange(`Create the policy "${name}" for ${plural(policy.targets.length, 'device')}?`, [{ type: 'setPolicy', policy }], () => {
    state.policies.set(policy.policyId, policy);
    log('admin', `setPolicy ${name}: ${adamId} on ${account.name}, ${policy.targets.length} devices`);
  });
}

function wireControls() {
  $('#add-account').addEventListener('click', () => openAccountDialog());
  $('#account-token').addEventListener('change', onTokenChosen);
  $('#account-form').addEventListener('submit', submitAccountDialog);
  $('#account-cancel').addEventListener('click', () => $('#account-dialog').close());
  $('#reconcile').addEventListener('click', () => confirmChange('Reconcile every account? Licenses this MDM assigned that no policy wants are released.',
    [{ type: 'reconcile' }], () => log('admin', 'reconcile (all accounts)')));
  $('#notify-toggle').addEventListener('change', (e) => {
    state.stagedNotify = e.target.checked === state.notify ? undefined : e.target.checked;
    renderPending();
  });
  $('#save-changes').addEventListener('click', save);
  $('#cancel-changes').addEventListener('click', () => {
    state.staged.clear();
    state.stagedNotify = undefined;
    render();
  });
  $('#license-account').addEventListener('change', (e) => {
    state.licenseAccount = e.target.value;
    state.assignmentsApp = null;
    state.assignmentCursors = [null];
    render();
  });
  $('#policy-account').addEventListener('change', render);
  $('#assignments-prev').addEventListener('click', () => {
    if (state.assignmentCursors.length > 1) state.assignmentCursors.pop();
    renderAssignments();
  });
  $('#assignments-next').addEventListener('click', (e) => {
    if (e.target.dataset.next) state.assignmentCursors.push(e.target.dataset.next);
    renderAssignments();
  });
  $('#export-apps').addEventListener('click', () => exportCsv('apps').catch((error) => showAlert(`Export: ${error.message}`)));
  $('#export-assignments').addEventListener('click', () => exportCsv('assignments').catch((error) => showAlert(`Export: ${error.message}`)));
  $('#policy-form').addEventListener('submit', createPolicy);
  const menu = $('#account-menu');
  menu.addEventListener('click', (e) => {
    const action = e.target.closest('[data-action]')?.dataset.action;
    if (action && state.menuAccount) runAction(action, state.menuAccount.accountId);
  });
  menu.addEventListener('keydown', (e) => {
    const items = [...menu.querySelectorAll('button:not(:disabled)')];
    const at = items.indexOf(document.activeElement);
    if (e.key === 'Escape') {
      closeMenu();
      state.menuAccount?.button.focus();
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      items[(at + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length].focus();
    }
  });
  document.addEventListener('click', (e) => {
    if (!menu.hidden && !menu.contains(e.target) && e.target !== state.menuAccount?.button) closeMenu();
  });
}

main().catch((error) => {
  showAlert(`The console could not start: ${error.message}`);
  throw error;
});
