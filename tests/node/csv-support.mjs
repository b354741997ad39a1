// Reading CSV back in the tests (not a test file itself).
import assert from 'node:assert/strict';

/** RFC 4180 back into rows of fields (the reference the tests read the output with). */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let i = 0;
  while (i < text.length) {
    if (text[i] === '"') {
      i += 1;
      for (;;) {
        if (text[i] === '"' && text[i + 1] === '"') { field += '"'; i += 2; }
        else if (text[i] === '"') { i += 1; break; }
        else { field += text[i]; i += 1; }
      }
    } else if (text[i] === ',') { row.push(field); field = ''; i += 1; }
    else if (text.startsWith('\r\n', i)) { row.push(field); rows.push(row); row = []; field = ''; i += 2; }
    else { field += text[i]; i += 1; }
  }
  assert.equal(field, '', 'the text ends with CRLF');
  return rows;
}
