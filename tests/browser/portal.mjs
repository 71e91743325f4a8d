// The setup portal in a real headless browser (Debian's Chromium driven by
// playwright-core). Run by tests/it/admin/portal.rs, which starts Portcullis
// with a store tenant and hands over a fresh setup link:
//
//   BASE_URL=http://portcullis.test/ LISTENER=127.0.0.1:PORT SETUP_LINK=... \
//     CONNECTION=ID node tests/browser/portal.mjs
//
// BASE_URL is the server's public_url, a fixed name so that the values the
// pages show (and the screenshots) name no ephemeral port; Chromium maps
// that host to LISTENER, which must be on loopback.
//
// Checks what only a browser shows: the link lands on the portal and leaves
// the address bar, the pages' CSP lets the copy-button script run (and
// nothing else is blocked), a form posts and comes back (form-action 'self'),
// and Test sign-in is a link opening a new tab. With SHOTS=DIR it also saves
// a screenshot of each page there (docs/portal/ in the repository).

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { fail, watchdog } from './run.mjs';

const BASE_URL = process.env.BASE_URL ?? '';
const LISTENER = process.env.LISTENER ?? '';
const LINK = process.env.SETUP_LINK ?? '';
const CONNECTION = process.env.CONNECTION ?? '';
const SHOTS = process.env.SHOTS ?? '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT_MS = 10_000;
const NAV_TIMEOUT_MS = 15_000;
const RUN_TIMEOUT_MS = 90_000;

watchdog(RUN_TIMEOUT_MS);

const base = new URL(BASE_URL || 'invalid:');
if (base.protocol !== 'http:' || base.port || !/^127\.0\.0\.1:\d+$/.test(LISTENER) || !LINK || !CONNECTION) {
  fail('BASE_URL (http://HOST/), LISTENER (127.0.0.1:PORT), SETUP_LINK and CONNECTION are required');
}
const url = (path) => new URL(path, base).href;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: 30_000,
  // Only this host, only to the loopback listener; nothing else resolves
  // differently.
  args: [`--host-rules=MAP ${base.hostname} ${LISTENER}`],
});
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(NAV_TIMEOUT_MS);
  const page = await context.newPage();
  const blocked = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) blocked.push(m.text());
  });
  const shot = async (name) => {
    if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
  };

  // The link lands on the overview; the token is gone from the address bar.
  await page.goto(LINK);
  assert.equal(page.url(), url('/.portcullis/setup'), 'landed on the portal');
  assert.match(await page.locator('h1').innerText(), /Set up single sign-on/);
  await shot('overview');

  // Domains: a real form post, answered with 303 back to the page.
  await page.goto(url('/.portcullis/setup/domains'));
  await page.fill('#domain', 'globex.net');
  await Promise.all([page.waitForURL(url('/.portcullis/setup/domains')), page.click('text=Add domain')]);
  const row = page.locator('tr[data-domain="globex.net"]');
  await row.waitFor();
  assert.match(await row.innerText(), /pending/);
  assert.ok((await page.locator('button.copy').count()) >= 2, 'copy buttons: the script ran under the CSP');
  await shot('domains');

  await page.goto(url('/.portcullis/setup/sso'));
  await shot('sso');
  await page.goto(url('/.portcullis/setup/sso/new/entra'));
  await shot('sso-new-entra');
  await page.goto(url('/.portcullis/setup/sso/new/onelogin'));
  await shot('sso-new-onelogin');

  // A connection: our values with copy buttons; Test sign-in opens a tab.
  await page.goto(url(`/.portcullis/setup/sso/c/${CONNECTION}`));
  assert.ok((await page.locator('#acs-url + button.copy').count()) === 1, 'ACS URL has a copy button');
  const test = page.locator('#test-sign-in');
  assert.equal(await test.getAttribute('target'), '_blank');
  assert.equal(await test.getAttribute('href'), `/.portcullis/setup/sso/c/${CONNECTION}/test`);
  await shot('sso-connection');

  for (const name of ['provisioning', 'enforce', 'roles']) {
    await page.goto(url(`/.portcullis/setup/${name}`));
    await shot(name);
  }
  assert.deepEqual(blocked, [], 'nothing was blocked by the CSP');
  console.log('ok portal');
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await browser.close();
}
