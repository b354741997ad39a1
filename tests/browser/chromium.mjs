// Headless Chromium for the browser tests: Debian's /usr/bin/chromium, driven by playwright-core.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** The `skip` option of a browser test: skipped without Chromium, except in CI, where that is a failure. */
export const skipWithoutChromium = !existsSync(CHROMIUM) && !process.env.CI
  ? `${CHROMIUM} is missing: run 'bash scripts/setup.sh --browser' (in CI this test fails instead of skipping)`
  : false;

/** Running as root needs --no-sandbox; the rest keeps Chromium off the network (only loopback exists here). */
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches Chromium with a fresh profile; `close()` removes the profile too. */
export async function launchChromium(options = {}) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'vpp-license-engine-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    ...options,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Collects what goes wrong in a page: uncaught errors, failed requests and (unless `consoleErrors` is
 * false, for pages that log expected errors) console errors.
 */
export function watchProblems(page, { consoleErrors = true } = {}) {
  const problems = [];
  if (consoleErrors) {
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
  }
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) =>
    problems.push(`request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText ?? ''}`));
  return problems;
}

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };

/**
 * A static server on 127.0.0.1 for a test page: `page` (HTML) at `/`, and files under `root` whose URL path
 * `allowed` accepts. Resolves `{ origin, close() }`.
 */
export async function serveStatic({ page, root, allowed }) {
  const server = createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    if (pathname === '/') {
      res.writeHead(200, { 'content-type': TYPES['.html'] }).end(page);
      return;
    }
    const file = path.join(root, path.normalize(pathname));
    if (!file.startsWith(root) || !allowed(pathname)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}
