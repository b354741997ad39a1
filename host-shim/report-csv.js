// License usage reports as CSV (RFC 4180): the engine's `appReport` rows, and its paged `assignmentReport`
// streamed a page at a time, so a million rows never sit in one string.
//
// Escaping: every line ends in CRLF; a field holding a comma, a double quote, CR or LF is quoted, its quotes doubled.
// Formula injection: a spreadsheet runs a cell that starts with =, +, -, @ (or a tab or CR, which some strip first)
// as a formula, and serial numbers, user ids, account ids and names come from outside. Such a text field is written
// with a leading apostrophe (OWASP's advice; spreadsheets show the text, not run it). Numbers are written as
// numbers. `{ guardFormulas: false }` writes text unchanged (for a consumer that is not a spreadsheet).

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One CSV field: text guarded against formulas (unless `guardFormulas` is false) and quoted when it must be. */
export function csvField(value, { guardFormulas = true } = {}) {
  if (value == null) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  let text = String(value);
  if (guardFormulas && FORMULA_START.test(text)) text = `'${text}`;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One CSV line (CRLF-terminated) of `values`. */
export function csvLine(values, options) {
  return `${values.map((value) => csvField(value, options)).join(',')}\r\n`;
}

const APP_COLUMNS = ['accountId', 'adamId', 'appName', 'pricingParam', 'productType', 'purchased', 'usedByUs', 'usedByOthers',
  'pending', 'available'];
const ASSIGNMENT_COLUMNS = ['accountId', 'adamId', 'appName', 'pricingParam', 'serialNumber', 'clientUserId', 'assignedBy',
  'confirmedSince', 'policyId'];

/** Per app of one account (`accountId`) or of every account (`null`): the header, then one line per row. */
export async function* appReportCsv(engine, accountId, { appName = () => undefined, ...options } = {}) {
  yield csvLine(APP_COLUMNS, options);
  let chunk = '';
  for (const r of engine.appReport(accountId)) {
    const count = (n) => (r.unlimited ? 'unlimited' : n);
    chunk += csvLine([r.accountId, r.adamId, appName(r.adamId), r.pricingParam, r.productType, count(r.totalCount), r.usedByUs,
      r.usedByOthers, r.pending, count(r.availableCount)], options);
  }
  if (chunk) yield chunk;
}

/**
 * Per assignment of one account (`accountId`) or of every account (`null`), optionally of one app (`adamId`,
 * `pricingParam`): the header, then one chunk per page of `pageSize` rows (the engine's `assignmentReport`, cursor
 * by cursor). Between pages the generator awaits, so a page or UI can breathe.
 */
export async function* assignmentReportCsv(engine, accountId, { pageSize = 1000, adamId, pricingParam, appName = () => undefined,
  ...options } = {}) {
  yield csvLine(ASSIGNMENT_COLUMNS, options);
  let after = null;
  do {
    const page = engine.assignmentReport(accountId, { after, limit: pageSize, adamId, pricingParam });
    let chunk = '';
    for (const r of page.rows) {
      const since = r.confirmedSince == null ? null : new Date(r.confirmedSince).toISOString();
      chunk += csvLine([r.accountId, r.adamId, appName(r.adamId), r.pricingParam, r.serialNumber, r.clientUserId,
        r.ours ? 'us' : 'other', since, r.policyId], options);
    }
    if (chunk) yield chunk;
    after = page.next;
  } while (after != null);
}
