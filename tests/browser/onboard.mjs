// A customer's IT admin onboards their company through a setup link, in a
// real headless browser (Debian's Chromium driven by playwright-core), and
// then one of their users signs in. Run by tests/it/admin/onboard.rs:
//
//   BASE_URL=http://127.0.0.1:PORT SETUP_LINK=... EMAIL=alice@acme.com \
//     node tests/browser/onboard.mjs
//
// Everything on Portcullis's side happens in the portal's pages (clicks,
// typing); what the admin does elsewhere — publish a DNS record, register
// an application in the identity provider's console — the script asks the
// test for, one line each way:
//
//   script → test (stdout):  ASK {"ask": NAME, ...values read off the page}
//   test → script (stdin):   {"ok": true, ...what the admin got back}
//                         or {"ok": false, "error": "..."}
//
// Asks, in order: `publish_txt` {name, value} (the test DNS server serves
// it), `oidc_app` {redirect_uri, backchannel_logout_uri} → {issuer,
// client_id, client_secret} (oidc-provider starts with that client),
// `saml_app` {} → {metadata_url} (the pysaml2 IdP starts, trusting no SP
// yet), `saml_sp` {metadata_url} (the IdP adds the SP from the portal's
// metadata URL), `checkpoint` {stage} (the test checks what it can see
// from outside: the app's password login), and `signed_in` {via, echo}
// (what the app received). Other stdout lines are progress for the log.
//
// Every wait is bounded; the first failed expectation ends the run with a
// non-zero exit code and a message naming the step.

import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { fail, watchdog } from './run.mjs';

const BASE_URL = process.env.BASE_URL ?? '';
const LINK = process.env.SETUP_LINK ?? '';
const EMAIL = process.env.EMAIL ?? '';
const DOMAIN = EMAIL.split('@')[1] ?? '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT_MS = 10_000;
const NAV_TIMEOUT_MS = 20_000;
const ASK_TIMEOUT_MS = 120_000; // starting an IdP on 2 busy cores
const RUN_TIMEOUT_MS = 300_000;

watchdog(RUN_TIMEOUT_MS);

const base = new URL(BASE_URL || 'invalid:');
if (base.protocol !== 'http:' || base.hostname !== '127.0.0.1' || !base.port || !LINK || !DOMAIN) {
  fail('BASE_URL (http://127.0.0.1:PORT), SETUP_LINK and EMAIL are required');
}
const url = (path) => new URL(path, base).href;
const portal = (page) => url(`/.portcullis/setup${page ? `/${page}` : ''}`);
let step = 'start';
const log = (msg) => console.log(`  ${msg}`);
const begin = (name) => {
  step = name;
  log(`step: ${name}`);
};

// ---------------------------------------------------------------- asking

const answers = [];
const waiting = [];
const stdin = createInterface({ input: process.stdin });
stdin.on('line', (line) => {
  const w = waiting.shift();
  if (w) w(line);
  else answers.push(line);
});
process.stdin.on('end', () => {
  while (waiting.length) waiting.shift()(null);
});

/** Hands `values` to the test and waits for its one-line answer. */
async function ask(name, values = {}) {
  console.log(`ASK ${JSON.stringify({ ask: name, ...values })}`);
  const line = await new Promise((resolve, reject) => {
    if (answers.length) return resolve(answers.shift());
    const timer = setTimeout(() => reject(new Error(`no answer to ${name} within ${ASK_TIMEOUT_MS} ms`)), ASK_TIMEOUT_MS);
    waiting.push((l) => {
      clearTimeout(timer);
      resolve(l);
    });
  });
  if (line === null) throw new Error(`the test closed stdin instead of answering ${name}`);
  const answer = JSON.parse(line);
  if (!answer.ok) throw new Error(`${name}: the test answered ${line}`);
  return answer;
}

// ------------------------------------------------------------- the pages

/** Text of a value the portal shows (with a copy button). */
async function shown(page, id) {
  const el = page.locator(`code#${id}`);
  assert.equal(await el.count(), 1, `the page shows #${id}`);
  return (await el.innerText()).trim();
}

/** Clicks and waits for the page it leads to. */
async function clickTo(page, locator, where) {
  await Promise.all([page.waitForURL(where), locator.click()]);
}

/** Runs Test sign-in in its new tab; `atIdp` does the IdP's part. */
async function testSignIn(page, atIdp) {
  const link = page.locator('#test-sign-in');
  assert.equal(await link.getAttribute('target'), '_blank', 'Test sign-in opens a tab');
  const [tab] = await Promise.all([page.context().waitForEvent('page'), link.click()]);
  try {
    await atIdp(tab);
    await tab.locator('#verdict').waitFor({ timeout: NAV_TIMEOUT_MS });
  } catch (e) {
    const body = await tab.locator('body').innerText().catch(() => '');
    throw new Error(`${e.message}\nthe tab is at ${tab.url()}:\n${body.slice(0, 2000)}`);
  }
  const result = {
    verdict: (await tab.locator('#verdict').innerText()).trim(),
    claims: JSON.parse(await tab.locator('#claims').innerText()),
    principal: JSON.parse((await tab.locator('#principal').innerText().catch(() => 'null')) || 'null'),
  };
  await tab.close();
  return result;
}

/** The pysaml2 IdP's own login page: pick the user, sign in; its
 * auto-post form carries the response back. */
async function atPysaml2(page) {
  const user = page.locator('select[name="user"]');
  await user.waitFor({ timeout: NAV_TIMEOUT_MS });
  assert.match(page.url(), /\/sso\/redirect\?SAMLRequest=/, 'at the IdP with an AuthnRequest');
  await user.selectOption('alice');
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Picks an IdP on the SSO page and lands on its step-by-step page. */
async function newConnection(page, name) {
  await page.goto(portal('sso'));
  const card = page.locator('#idps a').filter({ has: page.locator('strong', { hasText: name }) });
  await clickTo(page, card, (u) => u.pathname.startsWith('/.portcullis/setup/sso/new/'));
  assert.match(await page.locator('h1').innerText(), new RegExp(`Connect ${name}`));
}

/** Saves the new-connection form; returns the connection id. */
async function saveConnection(page) {
  await clickTo(page, page.getByRole('button', { name: 'Save connection' }), (u) => u.pathname.startsWith('/.portcullis/setup/sso/c/'));
  return new URL(page.url()).pathname.split('/').pop();
}

// ----------------------------------------------------------------- a run

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000 });
try {
  const admin = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  admin.setDefaultTimeout(STEP_TIMEOUT_MS);
  admin.setDefaultNavigationTimeout(NAV_TIMEOUT_MS);
  const page = await admin.newPage();

  begin('open the setup link');
  await page.goto(LINK);
  assert.equal(page.url(), portal(''), 'landed on the portal, the token left the address bar');

  begin('add the domain');
  await page.goto(portal('domains'));
  await page.fill('#domain', DOMAIN);
  await clickTo(page, page.getByRole('button', { name: 'Add domain' }), portal('domains'));
  const row = page.locator(`tr[data-domain="${DOMAIN}"]`);
  assert.match(await row.locator('.badge').innerText(), /pending/);
  const record = {
    name: (await row.locator('code[id^="txt-name-"]').innerText()).trim(),
    value: (await row.locator('code[id^="txt-value-"]').innerText()).trim(),
  };
  assert.ok(record.name.endsWith(DOMAIN) && record.value.length > 10, `a TXT record to publish: ${JSON.stringify(record)}`);

  begin('verify before the record is published');
  await clickTo(page, row.getByRole('button', { name: 'Verify' }), portal('domains'));
  const early = (await row.locator('.badge').innerText()).trim();
  assert.notEqual(early, 'verified', 'not verified without the record');

  begin('publish the TXT record and verify');
  await ask('publish_txt', record);
  await clickTo(page, row.getByRole('button', { name: 'Verify' }), portal('domains'));
  assert.equal((await row.locator('.badge').innerText()).trim(), 'verified', await row.innerText());
  await ask('checkpoint', { stage: 'verified' });

  begin('connect oidc-provider');
  await newConnection(page, 'Other OpenID Connect provider');
  const app = await ask('oidc_app', {
    redirect_uri: await shown(page, 'redirect-uri'),
    backchannel_logout_uri: await shown(page, 'backchannel-logout-uri'),
  });
  await page.fill('#display_name', 'Acme OIDC');
  await page.fill('#issuer', app.issuer);
  await page.fill('#client_id', app.client_id);
  await page.fill('#client_secret', app.client_secret);
  // A generic OIDC provider sends groups only when asked for them.
  await page.fill('#scopes', 'openid email profile groups');
  const oidc = await saveConnection(page);
  log(`connection ${oidc}`);

  begin('test sign-in with oidc-provider');
  const oidcTest = await testSignIn(page, async () => {
    // oidc-provider signs its one account in at once: only redirects.
  });
  log(`verdict: ${oidcTest.verdict}`);
  assert.match(oidcTest.verdict, /^Allowed: this user would be signed in\./);
  assert.equal(oidcTest.claims.email, EMAIL);
  assert.equal(oidcTest.principal?.email, EMAIL);
  assert.equal(oidcTest.principal?.tenant, 'acme');

  begin('connect the pysaml2 IdP');
  const idp = await ask('saml_app');
  await newConnection(page, 'Other SAML 2.0 IdP');
  const spEntity = await shown(page, 'sp-entity-id');
  await page.fill('#display_name', 'Acme SAML');
  await page.fill('#idp_metadata_url', idp.metadata_url);
  const saml = await saveConnection(page);
  log(`connection ${saml}`);
  assert.equal(await shown(page, 'sp-entity-id'), spEntity, 'the entity id the new page showed');
  await ask('saml_sp', { metadata_url: await shown(page, 'metadata-url'), acs_url: await shown(page, 'acs-url') });

  begin('test sign-in with the pysaml2 IdP');
  const samlTest = await testSignIn(page, async (tab) => {
    await atPysaml2(tab);
  });
  log(`verdict: ${samlTest.verdict}`);
  assert.match(samlTest.verdict, /^Allowed: this user would be signed in\./);
  assert.equal(samlTest.principal?.email, EMAIL);

  begin('both connections are listed');
  await page.goto(portal('sso'));
  for (const name of ['Acme OIDC', 'Acme SAML']) {
    assert.equal(await page.locator('#connections a', { hasText: name }).count(), 1, `${name} on the SSO page`);
  }

  begin('map a group to a role');
  await page.goto(portal('roles'));
  await page.getByLabel('Group 1', { exact: true }).fill('Engineering');
  await page.getByLabel('Roles of group 1', { exact: true }).fill('developer');
  await clickTo(page, page.getByRole('button', { name: 'Save mapping' }), portal('roles'));
  assert.equal(await page.getByLabel('Group 1', { exact: true }).inputValue(), 'Engineering');
  assert.equal(await page.getByLabel('Roles of group 1', { exact: true }).inputValue(), 'developer');

  begin('enforce single sign-on');
  await page.goto(portal('enforce'));
  assert.equal(await page.locator('#enforce-state').innerText(), 'not enforced');
  await page.getByLabel(/I ran Test sign-in/).check();
  await clickTo(page, page.getByRole('button', { name: 'Enforce single sign-on' }), portal('enforce'));
  assert.equal(await page.locator('#enforce-state').innerText(), 'enforced');
  await ask('checkpoint', { stage: 'enforced' });
  await admin.close();

  // A user of the domain, in a browser of their own, through each IdP.
  for (const [via, label, atIdp] of [
    ['oidc', 'Acme OIDC', async () => {}],
    ['saml', 'Acme SAML', atPysaml2],
  ]) {
    begin(`a user signs in through ${label}`);
    const user = await browser.newContext();
    user.setDefaultTimeout(STEP_TIMEOUT_MS);
    user.setDefaultNavigationTimeout(NAV_TIMEOUT_MS);
    const p = await user.newPage();
    await p.goto(url('/dashboard'));
    await p.waitForURL((u) => u.pathname === '/.portcullis/login');
    await p.getByLabel('Work email', { exact: true }).fill(EMAIL);
    await p.getByRole('button', { name: 'Continue' }).click();
    // Two connections: the login page lets the user choose.
    await p.getByRole('heading', { name: 'Choose how to sign in' }).waitFor();
    await p.getByRole('link', { name: `Continue with ${label}`, exact: true }).click();
    await atIdp(p);
    await p.waitForURL(url('/dashboard'));
    assert.equal(await p.locator('p.who strong').innerText(), EMAIL, 'the app page says who is signed in');
    const r = await p.request.get(url('/dashboard'), { headers: { accept: 'application/json' } });
    assert.equal(r.status(), 200);
    const echo = await r.json();
    await ask('signed_in', { via, echo });
    await user.close();
  }
  console.log('ok onboard');
} catch (e) {
  fail(`${step}: ${e.stack || String(e)}`);
} finally {
  await browser.close();
  // stdin stays open (the test holds it): let the process end.
  stdin.close();
  process.stdin.destroy();
}
