// Query-string parameters of the paged GET endpoints and Apple's zero-based page slicing.
import { ApiError } from './errors.js';

const BOOLEANS = { true: true, false: false, 1: true, 0: false };

/**
 * Reads the parameters named in `spec` (name → 'bool' | 'int' | 'string' | array of allowed values) from
 * `query`; absent ones are left out, malformed ones are 400 / 9602. Unknown parameters are ignored.
 */
export function readParams(query, spec) {
  const params = {};
  for (const [name, type] of Object.entries(spec)) {
    const raw = query[name];
    if (raw === undefined) continue;
    params[name] = parseValue(raw, type);
  }
  return params;
}

function parseValue(raw, type) {
  if (Array.isArray(type)) {
    if (!type.includes(raw)) throw new ApiError(9602);
    return raw;
  }
  if (type === 'bool') {
    const value = BOOLEANS[raw.toLowerCase()];
    if (value === undefined) throw new ApiError(9602);
    return value;
  }
  if (type === 'int') {
    if (!/^-?\d{1,10}$/.test(raw)) throw new ApiError(9602);
    return Number(raw);
  }
  return raw;
}

/**
 * One page of `records`: Apple's paging fields plus the page's records. An empty set still has page 0
 * (`totalPages` 1). A page index outside [0, totalPages) is 400 / 9650.
 */
export function page(records, pageSize, pageIndex = 0) {
  const totalPages = Math.max(1, Math.ceil(records.length / pageSize));
  if (pageIndex < 0 || pageIndex >= totalPages) throw new ApiError(9650);
  const items = records.slice(pageIndex * pageSize, (pageIndex + 1) * pageSize);
  const fields = { currentPageIndex: pageIndex, size: items.length, totalPages };
  if (pageIndex + 1 < totalPages) fields.nextPageIndex = pageIndex + 1;
  return { items, fields };
}
