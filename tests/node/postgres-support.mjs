// The PostgreSQL server of the tests (not a test file itself): scripts/test.sh starts one (scripts/postgres.sh) and
// names it in VPP_PG_URL. Tests that need it are skipped only when VPP_PG_URL and CI are both unset; under CI a
// missing VPP_PG_URL fails them.
import { after } from 'node:test';
import { createRequire } from 'node:module';

const pg = createRequire(import.meta.url)('pg');

export const pgUrl = process.env.VPP_PG_URL;

/** node:test's `skip` option for a test that needs the server. */
export const pgSkip = !pgUrl && !process.env.CI
  ? "VPP_PG_URL is unset: run 'bash scripts/test.sh', or start a server with 'eval \"$(bash scripts/postgres.sh start)\"' and export VPP_PG_URL"
  : false;

/** VPP_PG_URL; throws when it is unset (a test running without it runs under CI). */
export function requirePgUrl() {
  if (!pgUrl) throw new Error('VPP_PG_URL is unset (required under CI: scripts/test.sh starts PostgreSQL and sets it)');
  return pgUrl;
}

let admin;
after(() => admin?.end());

/** A small pool of the test file's own, for set-up and clean-up; ended after the file's tests. */
export function adminPool() {
  admin ??= new pg.Pool({ connectionString: requirePgUrl(), max: 2 });
  return admin;
}

/** Drops `table` and the lease tables a PostgresStore on it may have created. */
export async function dropStoreTables(table) {
  for (const suffix of ['', '_leases', '_holders']) await adminPool().query(`DROP TABLE IF EXISTS "${table}${suffix}"`);
}
