// What the console's browser tests stand on: headless Chromium (the system's /usr/bin/chromium,
// driven by playwright-core; no browser is downloaded) with one page whose script errors fail the
// test, a `check(name)` step that refuses stray "null"/"undefined" text in the page, saves a
// screenshot and runs axe-core on the page as it is (no serious or critical violation allowed),
// and a sign-in with an admin key.
// Environment: CHROMIUM_BIN (default /usr/bin/chromium); CONSOLE_SCREENSHOTS (default: a temporary
// directory).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { startWorld } from './harness.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/**
 * Launches Chromium with a fresh profile. Screenshots are named `{prefix}-{nn}-{step}.png`.
 * Returns `{ page, check, sees, dialogs, close }`; `dialogs` holds what every confirm() asked (all
 * are accepted).
 */
export async function openBrowser(prefix) {
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium`);
  const shots = process.env.CONSOLE_SCREENSHOTS || (await fsp.mkdtemp(path.join(os.tmpdir(), 'console-screenshots-')));
  await fsp.mkdir(shots, { recursive: true });
  const userDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'console-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  // Deletions and revocations ask for confirmation: accepted, and what they asked kept.
  const dialogs = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.accept();
  });
  // A CSP violation or a script error fails the test.
  page.on('pageerror', (e) => {
    throw e;
  });

  let shot = 0;
  /** A screenshot named after the step, then axe-core on the page as it is. */
  async function check(name) {
    // A part that was absent must not show as text.
    assert.doesNotMatch(await page.locator('main').innerText(), /\b(null|undefined|NaN|\[object Object\])\b/, `${name}: stray text`);
    shot += 1;
    const file = `${prefix}-${String(shot).padStart(2, '0')}-${name}.png`;
    await page.screenshot({ path: path.join(shots, file), fullPage: true });
    // The console's CSP refuses injected <script> tags (page.addScriptTag): axe-core goes in
    // through the DevTools protocol instead, which the page's policy does not govern.
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
    });
    const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad, [], `${name}: accessibility violations ${JSON.stringify(bad, null, 2)}`);
  }

  /** Waits for the text to show in the main region. */
  const sees = (text) => page.locator('main').getByText(text, { exact: false }).first().waitFor();

  async function close() {
    await context.close();
    await fsp.rm(userDataDir, { recursive: true, force: true });
  }

  return { page, check, sees, dialogs, close };
}

/**
 * What every console test file stands on, set up by a `before` hook of the calling suite and torn
 * down by its `after`: a world (`startWorld`: Portcullis serving, an OpenID provider, a third-party
 * provider) and a browser (`openBrowser(prefix)`). Returns the object the hook fills in:
 * `{ world, server, page, check, sees, dialogs }`.
 */
export function consoleWorld(prefix) {
  const held = {};
  let browser;
  before(async () => {
    held.world = await startWorld();
    held.server = held.world.server;
    browser = await openBrowser(prefix);
    Object.assign(held, browser);
  });
  after(async () => {
    await browser?.close();
    await held.world?.stop();
  });
  return held;
}

/** Signs in to the console at `url` with an admin key and waits for the dashboard. */
export async function signInWithKey(page, url, adminKey) {
  await page.goto(`${url}/console`);
  await page.getByLabel('Admin key').fill(adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Dashboard', exact: true }).waitFor();
}

/** Follows a link of the console's main navigation and waits for the page's heading. */
export async function navigate(page, link, heading = link) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { name: heading, exact: true, level: 1 }).waitFor();
}
