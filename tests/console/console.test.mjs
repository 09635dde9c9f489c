// The console in a real browser: Debian's chromium, driven by
// playwright-core, against a seeded `lethe serve` (tests/console/run.sh
// starts it and passes its address and keys in the environment). Each test
// saves a screenshot of its last page under $LETHE_SHOTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const base = process.env.LETHE_BASE;
const keys = {
  t1: process.env.LETHE_KEY_T1,
  t2: process.env.LETHE_KEY_T2,
  t4: process.env.LETHE_KEY_T4,
  t5: process.env.LETHE_KEY_T5,
  support: process.env.LETHE_KEY_SUPPORT,
  operator: process.env.LETHE_KEY_OPERATOR,
};
const shots = process.env.LETHE_SHOTS;

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // Without these, chromium stalls on refused background connections.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
});

after(async () => {
  await browser?.close();
});

/// A fresh browser context (its own cookies) at laptop width.
async function fresh() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  return { context, page };
}

async function signIn(page, key, actor) {
  await page.goto(`${base}/console/sign-in`);
  await page.fill('#key', key);
  await page.fill('#actor', actor);
  await page.click('button[type=submit]');
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

/// A user's state through the API, as the tenant sees it.
async function stateOf(tenant, user) {
  const r = await fetch(`${base}/v1/tenants/${tenant}/users/${user}`, {
    headers: { authorization: `Bearer ${keys[tenant]}` },
  });
  assert.equal(r.status, 200);
  return (await r.json()).state;
}

test('seed 000: a tenant admin locks, asks to delete, support approves', async () => {
  const { context, page } = await fresh();
  try {
    await signIn(page, keys.t1, 't1-u1');
    assert.match(page.url(), /\/console\/t\/t1\/users$/);
    await page.selectOption('#state', 'active');
    await page.click('form.filters button[type=submit]');
    // Keys sort as text: t1-u6 is on a later page.
    const link = page.locator('a[href="/console/t/t1/users/t1-u6"]');
    for (let i = 0; i < 3 && (await link.count()) === 0; i++) {
      await page.click('#next-page');
    }
    await link.click();
    assert.equal(await stateOf('t1', 't1-u6'), 'active');

    // Lock: previewed, then confirmed.
    await page.selectOption('#action', 'lock');
    await page.fill('#reason', 'left the team');
    await page.click('#preview');
    assert.match(await page.textContent('#outcome'), /allows this\. Nothing has changed yet/);
    assert.equal(await stateOf('t1', 't1-u6'), 'active', 'a preview changes nothing');
    await page.click('#confirm');
    assert.match(await page.textContent('#outcome'), /Done: t1-u6 went from active to locked/);
    await page.click('#back-to-user');
    assert.match(await page.textContent('#state'), /locked/);
    assert.equal(await page.locator('#state svg.lock').count(), 1, 'a lock next to a locked user');

    // Delete: the policy sends it to support.
    await page.selectOption('#action', 'delete');
    await page.click('#preview');
    assert.match(await page.textContent('#outcome'), /would be escalated to support/);
    await page.click('#confirm');
    assert.match(await page.textContent('#outcome'), /Escalated to support/);
    assert.equal(await stateOf('t1', 't1-u6'), 'locked');
    await page.click('button:has-text("Sign out")');
    assert.match(page.url(), /\/console\/sign-in$/);

    // Support: the queue, the escalation with what approving does now, approval.
    await signIn(page, keys.support, 'sam');
    assert.match(page.url(), /\/console\/escalations$/);
    const row = page.locator('#escalations tr', { hasText: 't1-u6' });
    await row.locator('a').click();
    assert.match(await page.textContent('#queue-reason'), /asks to delete user t1-u6/);
    assert.equal(await page.textContent('#now-outcome'), 'allow');
    await page.fill('#note', 'confirmed with the customer');
    await page.click('#approve');
    assert.equal(await page.textContent('#status'), 'approved');
    assert.equal(await stateOf('t1', 't1-u6'), 'deleted');
    await shot(page, 'seed-000-support-approved');
  } finally {
    await context.close();
  }
});

test('seed 003: mentees by last login, all filtered across pages, typed count, progress, escalations', async () => {
  const { context, page } = await fresh();
  try {
    await signIn(page, keys.t4, 't4-u1');
    await page.fill('#role', 'mentee');
    await page.fill('#last_login_before', '2026-09-10');
    await page.click('form.filters button[type=submit]');
    assert.ok(await page.locator('#next-page').count() === 1, 'the mentees span two pages');
    await page.click('#select-all');
    const selected = Number(await page.textContent('#selected-count'));
    assert.ok(selected > 25, `more than a page selected: ${selected}`);
    await shot(page, 'seed-003-users-selected');
    // Every box is checked, on this page and the next.
    assert.equal(await page.locator('#users input[type=checkbox]:not(:checked)').count(), 0);
    await page.click('#next-page');
    const second = await page.locator('#users input[type=checkbox]').count();
    assert.ok(second > 0);
    assert.equal(await page.locator('#users input[type=checkbox]:checked').count(), second);
    // One box unchecked on page two leaves the selection (the script saves it).
    const first = page.locator('#users input[type=checkbox]').first();
    const dropped = await first.getAttribute('value');
    await first.uncheck();
    await page.waitForFunction((n) => document.getElementById('selected-count').textContent === String(n), selected - 1);
    await page.reload();
    assert.equal(Number(await page.textContent('#selected-count')), selected - 1);
    assert.equal(await page.locator(`#users input[type=checkbox][value="${dropped}"]`).isChecked(), false);

    await page.selectOption('#bulk-action', 'delete');
    await page.fill('#bulk-reason', 'cohort cleanup');
    await page.click('#bulk-preview');
    const allow = Number(await page.textContent('#allow'));
    const escalate = Number(await page.textContent('#escalate'));
    assert.ok(allow > 0 && escalate > 0, `allow ${allow}, escalate ${escalate}`);
    assert.match(await page.textContent('#reasons'), /customer-success/);
    assert.match(await page.textContent('#effects'), /cascade/);
    // Tablet width: the preview still reads.
    await page.setViewportSize({ width: 820, height: 1180 });
    await shot(page, 'seed-003-preview-tablet');
    await page.setViewportSize({ width: 1280, height: 860 });
    // A wrong count starts nothing.
    await page.fill('#confirm_count', String(allow + escalate));
    await page.click('#execute');
    assert.match(await page.textContent('#failure'), new RegExp(`applies to ${allow} users`));
    const jobs = await fetch(`${base}/v1/tenants/t4/jobs`, {
      headers: { authorization: `Bearer ${keys.t4}` },
    });
    assert.deepEqual((await jobs.json()).jobs, [], 'no job started');
    await page.fill('#confirm_count', String(allow));
    await page.click('#execute');
    assert.match(page.url(), /\/console\/t\/t4\/jobs\/job-/);
    // The page follows the job to its end.
    await page.waitForFunction(() => document.getElementById('job-status')?.textContent === 'completed', null, { timeout: 60_000 });
    assert.equal(Number(await page.textContent('#applied')), allow);
    assert.equal(Number(await page.textContent('#escalated')), escalate);
    assert.equal(await page.getAttribute('#progress', 'value'), await page.getAttribute('#progress', 'max'));
    // The stream the page follows while a job runs: the session's, not a key's.
    const stream = await context.request.get(`${page.url()}/events`);
    assert.equal(stream.status(), 200);
    assert.match(stream.headers()['content-type'], /text\/event-stream/);
    assert.match(await stream.text(), /event: end\ndata: \{"job_id"/);
    const notApplied = await page.locator('#not-applied tr[data-user]').evaluateAll(
      (rows) => rows.map((r) => r.getAttribute('data-user')));
    assert.equal(notApplied.length, escalate);
    assert.match(await page.textContent('#not-applied'), /linked to 2 platforms/);
    await shot(page, 'seed-003-job-completed');
    await page.click('button:has-text("Sign out")');

    // The users on two platforms wait in customer success's queue.
    await signIn(page, keys.support, 'sam');
    await page.fill('#tenant', 't4');
    await page.click('form.filters button[type=submit]');
    for (const user of notApplied) {
      const row = page.locator('#escalations tr', { hasText: user });
      assert.equal(await row.count(), 1, `${user} in the queue`);
      assert.match(await row.textContent(), /customer-success/);
    }
    await shot(page, 'seed-003-support-queue');
  } finally {
    await context.close();
  }
});

/// A JSON request to the API with a tenant's key.
async function api(tenant, method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${keys[tenant]}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

/// The tenant's billing seats, counted in the database (no API shows them).
function billingSeats(tenant) {
  const count = 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('
    + '"SELECT COUNT(*) FROM billing_seats WHERE tenant_id = ?", (sys.argv[2],)).fetchone()[0])';
  return Number(execFileSync('python3', ['-c', count, process.env.LETHE_DB, tenant]).toString().trim());
}

test('seed 001: deleted users by date and domain, one unchecked, the rest erased, billing kept', async () => {
  // Earlier today an admin deleted a few users (restorable, per seed 001).
  const today = new Date().toISOString().slice(0, 10);
  const victims = ['t2-u3', 't2-u4', 't2-u5', 't2-u6', 't2-u8'];
  const preview = await api('t2', 'POST', '/v1/tenants/t2/bulk/preview',
    { action: 'delete', actor_id: 't2-u1', user_ids: victims });
  assert.equal(preview.status, 200, JSON.stringify(preview.body));
  const job = await api('t2', 'POST', `/v1/tenants/t2/bulk/${preview.body.preview_id}/execute`,
    { confirm_count: preview.body.confirm_count });
  assert.equal(job.status, 202, JSON.stringify(job.body));
  for (let i = 0; i < 300; i++) {
    const j = await api('t2', 'GET', `/v1/tenants/t2/jobs/${job.body.job_id}`);
    if (j.body.status === 'completed') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const deleted = [];
  for (const u of victims) if ((await stateOf('t2', u)) === 'deleted') deleted.push(u);
  assert.ok(deleted.length >= 3, `deleted: ${deleted}`);
  const seats = billingSeats('t2');
  assert.ok(seats > 0);

  const { context, page } = await fresh();
  let kept;
  try {
    // The primary domain contact, who may erase.
    await signIn(page, keys.t2, 't2-u1');
    await page.selectOption('#state', 'deleted');
    await page.fill('#deleted_after', today);
    await page.fill('#domain', 'tenant2.example');
    await page.click('form.filters button[type=submit]');
    const listed = await page.locator('#users tr[data-user]').evaluateAll(
      (rows) => rows.map((r) => r.getAttribute('data-user')));
    assert.deepEqual([...listed].sort(), [...deleted].sort());
    await page.click('#select-all');
    assert.equal(Number(await page.textContent('#selected-count')), deleted.length);
    kept = listed[0];
    await page.locator(`#users input[type=checkbox][value="${kept}"]`).uncheck();
    await page.click('#update-selection');
    assert.equal(Number(await page.textContent('#selected-count')), deleted.length - 1);
    await page.selectOption('#bulk-action', 'erase');
    await page.click('#bulk-preview');
    assert.equal(Number(await page.textContent('#allow')), deleted.length - 1);
    await page.fill('#confirm_count', String(deleted.length - 1));
    await page.click('#execute');
    await page.waitForFunction(() => document.getElementById('job-status')?.textContent === 'completed', null, { timeout: 60_000 });
    assert.equal(Number(await page.textContent('#applied')), deleted.length - 1);
    await shot(page, 'seed-001-erase-completed');
  } finally {
    await context.close();
  }
  assert.equal(await stateOf('t2', kept), 'deleted', 'the unchecked user is left as it was');
  for (const u of deleted.filter((u) => u !== kept)) assert.equal(await stateOf('t2', u), 'erased');
  assert.equal(billingSeats('t2'), seats, 'billing seats are kept');
});

test('a refusal is a sentence with the policy\'s message', async () => {
  const { context, page } = await fresh();
  try {
    await signIn(page, keys.t5, 't5-u1');
    await page.goto(`${base}/console/t/t5/users/t5-u5`);
    await page.selectOption('#action', 'delete');
    await page.click('#preview');
    const outcome = await page.textContent('#outcome');
    assert.match(outcome, /The tenant's policy refused this: user t5-u5 is active; deactivate the account before deleting it/);
    assert.equal(await page.locator('#confirm').count(), 0, 'no confirmation of a denial');
    await page.goto(`${base}/console/t/t5/users?last_login_before=yesterday`);
    assert.match(await page.textContent('#failure'), /Last login before must be a date/);
    await page.goto(`${base}/console/t/t5/users/t5-u6`);
    await page.selectOption('#action', 'restore');
    await page.click('#preview');
    assert.match(await page.textContent('#failure'), /restore/i);
    await shot(page, 'refusal-sentence');
  } finally {
    await context.close();
  }
});

test('another tenant\'s user page is a 404', async () => {
  const { context, page } = await fresh();
  try {
    await signIn(page, keys.t1, 't1-u1');
    const r = await page.goto(`${base}/console/t/t5/users/t5-u5`);
    assert.equal(r.status(), 404);
    assert.match(await page.textContent('#failure'), /no such page/);
    await shot(page, 'cross-tenant-404');
  } finally {
    await context.close();
  }
});

test('a form posted without the CSRF token is refused', async () => {
  const { context, page } = await fresh();
  try {
    await signIn(page, keys.t1, 't1-u1');
    assert.equal(await stateOf('t1', 't1-u7'), 'active');
    // Another site's page posting the console's form: the SameSite=Strict
    // cookie stays home, so there is no session to act with.
    const form = `<form id="f" method="post" action="${base}/console/t/t1/users/t1-u7/act">
      <input name="action" value="lock"></form>`;
    await page.goto(`data:text/html,${encodeURIComponent(form)}`);
    await Promise.all([page.waitForNavigation(), page.evaluate(() => document.getElementById('f').submit())]);
    assert.match(page.url(), /\/console\/sign-in$/);
    // The same post with the session's cookie but without the token.
    const r = await context.request.post(`${base}/console/t/t1/users/t1-u7/act`, {
      form: { action: 'lock' },
    });
    assert.equal(r.status(), 403);
    assert.match(await r.text(), /did not come from your console session/);
    assert.equal(await stateOf('t1', 't1-u7'), 'active', 'nothing changed');
    await page.goto(`${base}/console/t/t1/users/t1-u7`);
    await shot(page, 'csrf-refused');
  } finally {
    await context.close();
  }
});

test('an operator uploads a version, replays it, activates it and rolls back', async () => {
  const { context, page } = await fresh();
  const root = process.env.LETHE_ROOT;
  // Recorded traffic on t5 for the replay: a deactivation seed 004 allows.
  const act = await fetch(`${base}/v1/tenants/t5/users/t5-u9/actions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${keys.t5}`, 'content-type': 'application/json' },
    body: JSON.stringify({ action: 'deactivate', actor_id: 't5-u1' }),
  });
  assert.equal(act.status, 200, await act.text());
  try {
    await signIn(page, keys.operator, '');
    assert.match(page.url(), /\/console\/operator$/);
    await page.click('a[href="/console/operator/t/t5"]');
    assert.match(await page.textContent('#active-version'), /version 1/);
    // Seed 000's component, with its cases, for seed 004's tenant.
    await page.setInputFiles('#component', `${root}/policies/dist/support-only.wasm`);
    await page.setInputFiles('#cases', `${root}/policies/support-only/cases.toml`);
    await page.fill('#message', 'try support-only on t5');
    await page.click('#upload');
    const v2 = page.locator('#versions tr[data-version="2"]');
    assert.match(await v2.textContent(), /accepted/);
    assert.match(await v2.textContent(), /support-only/);
    // The replay's diff, as tables: what t5's recorded decisions would become.
    await page.click('#replay-2');
    assert.match(await page.textContent('#replay-summary'), /recorded decisions re-run/);
    // Seed 000 offers no deactivation: the recorded allow would be a deny.
    const row = page.locator('#transitions tbody tr', { hasText: 'allow' });
    assert.match(await row.first().textContent(), /allow\s*deny\s*\d+/);
    await shot(page, 'operator-replay');
    await page.click('a:has-text("Back to t5")');
    await page.selectOption('#activate-version', '2');
    await page.fill('#activate-reason', 'trial');
    await page.click('#activate');
    assert.match(await page.textContent('#active-version'), /version 2/);
    await page.fill('#rollback-reason', 'trial over');
    await page.click('#rollback');
    assert.match(await page.textContent('#active-version'), /version 1/);
    assert.match(await page.textContent('#activations'), /rollback/);
    await shot(page, 'operator-tenant');
    // An operator session is no tenant's: a tenant page is a 404.
    const r = await page.goto(`${base}/console/t/t5/users`);
    assert.equal(r.status(), 404);
  } finally {
    await context.close();
  }
});
