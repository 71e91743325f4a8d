// The login page in a real headless browser: Debian's Chromium driven by
// playwright-core. Run by tests/it/browser.rs, which starts Portcullis (with
// its stand-in IdP and tenants acme/globex) and sets what the IdP asserts
// before each run (the demo scenarios instead run against the real
// `portcullis demo` binary and its development IdP):
//
//   BASE_URL=http://127.0.0.1:PORT node tests/browser/login.mjs SCENARIO...
//
// Environment: BASE_URL (required, must be http://127.0.0.1:PORT),
// CHROMIUM (default /usr/bin/chromium). Each scenario runs in a fresh browser
// context. Every wait is bounded; the first failed expectation ends the run
// with a non-zero exit code and a message naming the scenario and step.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL ?? '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT_MS = 10_000; // one click, fill or expectation
const NAV_TIMEOUT_MS = 15_000; // one navigation, redirects included
const LAUNCH_TIMEOUT_MS = 30_000;
const RUN_TIMEOUT_MS = 90_000; // the whole script, whatever happens

const base = new URL(BASE_URL || 'invalid:');
if (base.protocol !== 'http:' || base.hostname !== '127.0.0.1' || !base.port) {
  fail(`BASE_URL must be http://127.0.0.1:PORT, got ${JSON.stringify(BASE_URL)}`);
}
const url = (path) => new URL(path, base).href;

// A hard stop in case something below ignores its own timeout.
const watchdog = setTimeout(
  () => fail(`the run did not finish within ${RUN_TIMEOUT_MS} ms`),
  RUN_TIMEOUT_MS,
);
watchdog.unref();

function fail(message) {
  console.error(`FAIL ${message}`);
  process.exit(1);
}

const log = (msg) => console.log(`  ${msg}`);

/// The login page as the stand-in IdP leaves it: returns nothing, asserts.
async function expectLoginPage(page, what) {
  await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
  assert.equal(await page.title(), 'Sign in', `${what}: page title`);
}

/// The echo app's page, signed in as `email`, at `path`.
async function expectSignedIn(page, email, path) {
  await page.waitForURL((u) => u.pathname === path, { timeout: NAV_TIMEOUT_MS });
  const who = page.locator('p.who');
  await who.waitFor();
  assert.equal(
    (await who.innerText()).replace(/\s+/g, ' ').trim(),
    `Signed in as ${email}. Sign out`,
    'the app page says who is signed in',
  );
  assert.equal(await who.locator('strong').innerText(), email);
}

/// The session cookie, if the browser holds one.
async function sessionCookie(context) {
  const cookies = await context.cookies(base.href);
  return cookies.find((c) => c.name === 'portcullis_session' && c.value !== '');
}

const scenarios = {
  // ?email= prefills; the page works with JavaScript off (a plain form POST
  // that discovery answers with redirects) and labels its field properly.
  async prefill(page) {
    await page.goto(url('/.portcullis/login?email=alice%40acme.com&return_to=%2Fprefilled'));
    await expectLoginPage(page, 'prefill');
    const field = page.getByLabel('Work email', { exact: true });
    assert.equal(await field.count(), 1, 'exactly one field is labelled "Work email"');
    assert.equal(await field.inputValue(), 'alice@acme.com', 'the email field is prefilled');
    const id = await field.getAttribute('id');
    assert.ok(id, 'the email field has an id');
    assert.equal(
      await page.locator(`label[for="${id}"]`).count(),
      1,
      `a <label for="${id}"> names the field`,
    );
    assert.equal(await field.getAttribute('type'), 'email');
    assert.equal(await field.getAttribute('name'), 'email');
    assert.equal(await field.getAttribute('autocomplete'), 'email');
    assert.notEqual(await field.getAttribute('required'), null, 'the field is required');
    assert.equal(
      await page.locator('script').count(),
      0,
      'the page needs no script of its own',
    );
    log('prefilled, labelled field; no scripts on the page');
    // No JavaScript: submitting is a plain form POST; acme has one
    // connection, so it goes straight through the IdP back to return_to.
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/prefilled', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    await expectSignedIn(page, 'alice@acme.com', '/prefilled');
    log('submitted without JavaScript: signed in at /prefilled');
  },

  // Discovery's messages for domains without SSO, with the app's own login.
  async discovery(page) {
    for (const [email, domain] of [
      ['someone@example.org', 'example.org'],
      ['dan@pending.acme.com', 'pending.acme.com'], // claimed but not verified
    ]) {
      await page.goto(url('/.portcullis/login'));
      await expectLoginPage(page, email);
      const field = page.getByLabel('Work email', { exact: true });
      assert.equal(await field.inputValue(), '', 'the field starts empty');
      await field.fill(email);
      await Promise.all([
        page.waitForURL((u) => u.pathname === '/.portcullis/login', {
          timeout: NAV_TIMEOUT_MS,
          waitUntil: 'load',
        }),
        field.press('Enter'),
      ]);
      const notice = page.getByRole('alert');
      await notice.waitFor();
      assert.equal(
        (await notice.innerText()).trim(),
        `Single sign-on isn't set up for ${domain}.`,
        `${email}: the message`,
      );
      assert.equal(await field.inputValue(), email, `${email}: the field keeps what was typed`);
      const password = page.getByRole('link', { name: 'Sign in with a password' });
      assert.equal(await password.getAttribute('href'), '/login', 'link to the app login');
      log(`${email}: "${domain}" message and a link to /login`);
    }
    // Not an email at all (the browser's own type=email check bypassed).
    await page.goto(url('/.portcullis/login'));
    await page.locator('form').evaluate((f) => f.setAttribute('novalidate', ''));
    await page.getByLabel('Work email', { exact: true }).fill('not-an-email');
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/.portcullis/login', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    await page.getByRole('alert').waitFor();
    assert.equal(
      (await page.getByRole('alert').innerText()).trim(),
      'Enter your work email address.',
    );
    log('not-an-email: "Enter your work email address."');
    // The link really leads to the app's login page (public, so served).
    await page.goto(url('/.portcullis/login'));
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/login', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('link', { name: 'Sign in with a password' }).click(),
    ]);
    log('the password link opens /login');
  },

  // A tenant with two connections: a chooser, and a choice completes SSO.
  async chooser(page) {
    await page.goto(url('/.portcullis/login?return_to=%2Freports%3Fq%3D1'));
    await expectLoginPage(page, 'chooser');
    await page.getByLabel('Work email', { exact: true }).fill('bob@globex.com');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { level: 1, name: 'Choose how to sign in' }).waitFor();
    assert.equal(await page.title(), 'Choose how to sign in');
    const choices = page.getByRole('list').getByRole('link');
    assert.deepEqual(
      (await choices.allInnerTexts()).map((t) => t.trim()),
      ['Continue with Okta', 'Continue with Entra ID'],
      'one link per connection, in configuration order',
    );
    assert.match(
      await page.locator('main').innerText(),
      /sign in as bob@globex\.com\./,
      'the chooser names the email',
    );
    log('chooser offers Okta and Entra ID for bob@globex.com');
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/reports', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('link', { name: 'Continue with Okta' }).click(),
    ]);
    await expectSignedIn(page, 'bob@globex.com', '/reports');
    assert.equal(new URL(page.url()).search, '?q=1', 'return_to kept its query');
    log('Continue with Okta: signed in at /reports?q=1');
  },

  // The bookmark link IT puts in IdP portals goes straight through SSO.
  async bookmark(page) {
    const seen = [];
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) seen.push(new URL(f.url()).pathname);
    });
    await page.goto(
      url('/.portcullis/login?use_sso=true&email=alice%40acme.com&return_to=%2Fdashboard'),
    );
    await expectSignedIn(page, 'alice@acme.com', '/dashboard');
    assert.ok(
      !seen.includes('/.portcullis/login'),
      `no login page was shown on the way (${seen.join(' → ')})`,
    );
    log('use_sso bookmark: straight to /dashboard as alice@acme.com');
  },

  // `make demo` as a newcomer meets it (run against `portcullis demo`):
  // `/` → login page → alice@example.com → the development IdP's pick page
  // → Alice → its auto-posting form → the ACS → the demo app.
  async demo(page) {
    await page.goto(url('/'));
    await expectLoginPage(page, 'demo: / first shows the login page');
    await page.getByLabel('Work email', { exact: true }).fill('alice@example.com');
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/.portcullis/dev-idp/sso', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    await page.getByRole('heading', { level: 1, name: 'Development IdP' }).waitFor();
    const alice = page.getByRole('button', { name: 'Alice Example (alice@example.com)' });
    const bob = page.getByRole('button', { name: 'Bob Example (bob@example.com)' });
    assert.equal(await alice.count(), 1, 'the pick page offers Alice');
    assert.equal(await bob.count(), 1, 'the pick page offers Bob');
    log('dev IdP pick page lists Alice and Bob');
    // No click on the post page's Continue button: its script submits it.
    await alice.click();
    await expectSignedIn(page, 'alice@example.com', '/');
    const body = await page.locator('body').innerText();
    for (const expected of ['Engineering', 'developer', '"tenant": "example"']) {
      assert.ok(body.includes(expected), `the app page shows ${expected}`);
    }
    log('picked Alice: the auto-posted response signed her in; the app shows her headers and claims');
  },

  // The same with JavaScript off: every step is a plain form, and the post
  // page's visible Continue button replaces its script.
  async demo_nojs(page) {
    await page.goto(url('/'));
    await expectLoginPage(page, 'demo_nojs');
    await page.getByLabel('Work email', { exact: true }).fill('bob@example.com');
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/.portcullis/dev-idp/sso', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/.portcullis/dev-idp/pick', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('button', { name: 'Bob Example (bob@example.com)' }).click(),
    ]);
    await page.getByRole('heading', { level: 1, name: 'Signing in as bob@example.com' }).waitFor();
    await page.getByRole('button', { name: 'Continue' }).click();
    await expectSignedIn(page, 'bob@example.com', '/');
    log('without JavaScript: picked Bob, pressed Continue, signed in');
  },

  // A session cookie that works, and a logout that ends it.
  async logout(page) {
    const context = page.context();
    await page.goto(url('/.portcullis/login?use_sso=true&email=alice%40acme.com'));
    await expectSignedIn(page, 'alice@acme.com', '/');
    const cookie = await sessionCookie(context);
    assert.ok(cookie, 'a portcullis_session cookie is set');
    assert.equal(cookie.httpOnly, true, 'the session cookie is HttpOnly');
    assert.equal(cookie.path, '/', 'the session cookie covers the whole app');
    assert.equal(cookie.sameSite, 'Lax', 'the session cookie is SameSite=Lax (the default)');
    const flows = (await context.cookies(base.href)).filter((c) => c.name.startsWith('portcullis_flow_'));
    assert.deepEqual(flows.map((c) => c.name), [], 'the single-use flow cookie is gone');
    await page.goto(url('/projects/42'));
    await expectSignedIn(page, 'alice@acme.com', '/projects/42');
    log('session cookie (HttpOnly, Path=/, SameSite=Lax; no flow cookie left) opens a protected page');
    // The app page's own "Sign out" link: a GET, which only asks.
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/.portcullis/logout', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('link', { name: 'Sign out' }).click(),
    ]);
    await page.getByRole('heading', { level: 1, name: 'Sign out' }).waitFor();
    assert.ok(await sessionCookie(context), 'the confirmation page ends nothing');
    log('the Sign out link shows a confirmation page; the session is still there');
    // Its button POSTs the CSRF token; that ends the session.
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/.portcullis/login', { timeout: NAV_TIMEOUT_MS }),
      page.getByRole('button', { name: 'Sign out' }).click(),
    ]);
    await expectLoginPage(page, 'after logout');
    assert.equal(await sessionCookie(context), undefined, 'the session cookie is gone');
    await page.goto(url('/'));
    await expectLoginPage(page, 'next visit to /');
    await page.goto(url('/projects/42'));
    await expectLoginPage(page, 'protected page after logout');
    assert.equal(
      new URL(page.url()).searchParams.get('return_to'),
      '/projects/42',
      'the login page remembers where the browser was going',
    );
    log('logout: the next visits show the Sign in page');
  },
};

// --- runner ---

const names = process.argv.slice(2);
if (names.length === 0) names.push(...Object.keys(scenarios));
for (const n of names) {
  if (!(n in scenarios)) fail(`unknown scenario ${n}; known: ${Object.keys(scenarios).join(', ')}`);
}

const NO_JAVASCRIPT = new Set(['prefill', 'demo_nojs']);

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: LAUNCH_TIMEOUT_MS,
    // playwright-core gives each launch a fresh, empty --user-data-dir.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Containers often have a tiny /dev/shm; Chromium then crashes tabs.
      '--disable-dev-shm-usage',
      // Belt and braces: no name resolves except the test server's.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
} catch (e) {
  fail(`could not launch ${CHROMIUM}: ${e.message}`);
}

let failed = false;
for (const name of names) {
  const started = Date.now();
  const context = await browser.newContext({ javaScriptEnabled: !NO_JAVASCRIPT.has(name) });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(NAV_TIMEOUT_MS);
  // Chromium only ever talks to the test server.
  const offHost = [];
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.host === base.host) return route.continue();
    offHost.push(u.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  console.log(`scenario ${name}${NO_JAVASCRIPT.has(name) ? ' (JavaScript disabled)' : ''}`);
  try {
    await scenarios[name](page);
    assert.deepEqual(offHost, [], 'no request left the test server');
    assert.deepEqual(pageErrors, [], 'no script errors on the pages');
    console.log(`ok ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed = true;
    console.error(`FAIL ${name} at ${page.url()}`);
    console.error(e instanceof assert.AssertionError ? e.message : (e.stack ?? String(e)));
    try {
      const text = await page.locator('body').innerText({ timeout: 2_000 });
      console.error(`--- page text ---\n${text.slice(0, 2_000)}\n---`);
    } catch {
      // the page may be gone; the error above is what matters
    }
  } finally {
    await context.close().catch(() => {});
  }
  if (failed) break;
}

await browser.close().catch(() => {});
process.exit(failed ? 1 : 0);
