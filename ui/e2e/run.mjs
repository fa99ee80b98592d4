// Browser tests of the dashboard and editor: playwright-core driving Debian's chromium against a
// running `mutask serve` (started by tests/ui_browser.rs with the templates of e2e/templates).
//
// env: MUTASK_URL (base URL), E2E_OUT (screenshot folder), CHROMIUM (default /usr/bin/chromium).
// Users: alice (requester), rita (resolver of e2e-approval), admin (admin); password `pw`.
// Exits non-zero with the failing step's name on the first failure.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.MUTASK_URL;
const out = process.env.E2E_OUT ?? 'e2e/out';
if (!base) throw new Error('MUTASK_URL is not set');
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const problems = [];
let failed = false;

async function scenario(name, viewport, fn) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => {
    // failed API answers (401 before sign-in, 4xx of a form under test) are logged by chromium
    // as "Failed to load resource": they are expected; any other console error is not
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`${name}: console: ${m.text()}`);
  });
  const started = Date.now();
  try {
    await fn(page);
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    await page.screenshot({ path: join(out, `${name}-failure.png`), fullPage: true }).catch(() => {});
  }
  await context.close();
}

async function signIn(page, user) {
  await page.goto(`${base}/ui/`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill('pw');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').filter({ hasText: user }).waitFor();
}

async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
}

function check(cond, what) {
  if (!cond) throw new Error(`expected: ${what}`);
}

let taskUrl = '';

await scenario('approval-flow', { width: 1280, height: 800 }, async (page) => {
  // a wrong password is refused with a message
  await page.goto(`${base}/ui/`);
  await page.getByLabel('User name').fill('alice');
  await page.getByLabel('Password').fill('wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong user name or password.').waitFor();

  await signIn(page, 'alice');
  await page.getByTestId('empty').waitFor();
  await page.screenshot({ path: join(out, '01-empty-list.png') });
  await page.getByRole('link', { name: 'Templates' }).click();
  await page.locator('tr[data-template="e2e-approval"] >> text=New task').click();
  // the regex is checked as you type
  const service = page.locator('#input-service');
  await service.fill('Bad Name');
  await page.locator('[data-input="service"] .field-error').waitFor();
  await service.fill('billing');
  check(await page.locator('[data-input="service"] .field-error').count() === 0, 'no regex error once the value matches');
  // a missing required input: the API's error shows at the field
  await page.getByRole('button', { name: 'Create task' }).click();
  await page.locator('[data-input="environment"] .field-error').waitFor();
  await page.locator('#input-environment').selectOption('production');
  // watchers in the form: a group
  await page.locator('#watcher_groups').fill('ops');
  await page.screenshot({ path: join(out, '02-new-task-form.png') });
  await page.getByRole('button', { name: 'Create task' }).click();
  await page.getByTestId('task-title').filter({ hasText: 'Ship billing to production' }).waitFor();
  await page.getByRole('heading', { name: 'Waiting for a resolver' }).waitFor();
  await page.getByTestId('watchers').filter({ hasText: 'group ops' }).waitFor();
  // the requester edits the watchers while no resolver has taken the task
  await page.getByRole('button', { name: 'edit watchers' }).click();
  check((await page.locator('#watcher_groups').inputValue()) === 'ops', 'the form starts from the current watchers');
  await page.locator('#watcher_usernames').fill('admin');
  await page.getByRole('button', { name: 'Save watchers' }).click();
  await page.getByTestId('watchers').filter({ hasText: 'admin, group ops' }).waitFor();
  taskUrl = page.url();
  await page.screenshot({ path: join(out, '03-waiting-for-resolver.png') });
  // the list: counts of what alice sees, and the title search goes to the API
  await page.getByRole('link', { name: 'Tasks', exact: true }).click();
  await page.locator('[data-count="TODO"]').filter({ hasText: /^1$/ }).waitFor();
  check((await page.locator('[data-count="DONE"]').innerText()) === '0', 'no DONE task counted for alice');
  await page.locator('input[name="search"]').fill('no such title');
  await page.getByTestId('empty').waitFor();
  await page.locator('[data-count="TODO"]').filter({ hasText: /^0$/ }).waitFor();
  await page.locator('input[name="search"]').fill('BILLING');
  await page.getByRole('link', { name: 'Ship billing to production' }).waitFor();
  await signOut(page);

  await signIn(page, 'rita');
  await page.locator('select[name="type"]').selectOption('resolvable');
  // the live task page refreshes every 1.5 s; it fetches the template once, not on every tick
  const templateFetches = [];
  const countTemplate = (r) => { if (r.url().includes('/template/e2e-approval')) templateFetches.push(r.url()); };
  page.on('request', countTemplate);
  await page.getByRole('link', { name: 'Ship billing to production' }).click();
  await page.getByRole('heading', { name: 'Waiting for a resolver' }).waitFor();
  await page.waitForTimeout(3500);
  page.off('request', countTemplate);
  check(templateFetches.length === 1, `the template fetched once in 3.5 s of refreshes, not ${templateFetches.length} times`);
  // a bad resolver input is refused at its field
  await page.locator('#resolver_input-ticket').fill('nope');
  await page.locator('[data-input="ticket"] .field-error').waitFor();
  await page.locator('#resolver_input-ticket').fill('CHG-42');
  await page.getByRole('button', { name: 'Approve and run' }).click();
  // every step turns DONE in the graph, and the task too
  await page.waitForFunction(() => document.querySelectorAll('.node[data-state="DONE"]').length === 3, null, { timeout: 30000 });
  await page.locator('[data-testid="task-title"] .badge[data-state="DONE"]').waitFor({ timeout: 30000 });
  await page.locator('.node[data-step="ship"]').click();
  await page.getByTestId('step-output').filter({ hasText: 'billing under CHG-42' }).waitFor();
  // the configuration is shown rendered with the resolution's values, or as written
  await page.getByTestId('step-configuration').filter({ hasText: '"shipped": "billing under CHG-42"' }).waitFor();
  await page.screenshot({ path: join(out, '04-resolved-all-done.png'), fullPage: true });
  await page.getByRole('button', { name: 'as written' }).click();
  await page.getByTestId('step-configuration').filter({ hasText: '{{ resolver_input.ticket }}' }).waitFor();
  await page.getByRole('button', { name: 'rendered', exact: true }).click();
  await page.getByTestId('step-configuration').filter({ hasText: 'billing under CHG-42' }).waitFor();
  // watchers of a finished task cannot change: the API's refusal is shown
  await page.getByTestId('watchers').filter({ hasText: 'admin, group ops' }).waitFor();
  await page.getByRole('button', { name: 'edit watchers' }).click();
  await page.locator('#watcher_usernames').fill('admin, alice');
  await page.getByRole('button', { name: 'Save watchers' }).click();
  await page.getByTestId('watchers-error').filter({ hasText: "not in state 'PAUSED'" }).waitFor();
  await page.locator('form[aria-label="edit watchers"]').getByRole('button', { name: 'Cancel' }).click();
  await page.getByTestId('watchers').filter({ hasText: 'admin, group ops' }).waitFor();
  // keyboard: focus a node and select it with Enter
  await page.locator('.node[data-step="verify"]').focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('step-panel').filter({ hasText: 'verify' }).waitFor();
  // a comment
  await page.getByLabel('Add a comment').fill('shipped, thanks');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.getByText('shipped, thanks').waitFor();
});

await scenario('skip-failed-step', { width: 1280, height: 800 }, async (page) => {
  await signIn(page, 'admin');
  await page.goto(`${base}/ui/#/new/e2e-fail`);
  await page.getByRole('button', { name: 'Create task' }).click();
  await page.locator('.node[data-step="broken"][data-state="CLIENT_ERROR"]').waitFor({ timeout: 30000 });
  await page.locator('.node[data-step="broken"]').click();
  await page.getByTestId('step-error').filter({ hasText: 'the disk is full' }).waitFor();
  await page.screenshot({ path: join(out, '05-step-failed.png'), fullPage: true });
  await page.getByRole('button', { name: 'Skip (mark DONE)' }).click();
  await page.locator('.node[data-step="after"][data-state="DONE"]').waitFor({ timeout: 30000 });
  await page.locator('[data-testid="task-title"] .badge[data-state="DONE"]').waitFor({ timeout: 30000 });
  await page.screenshot({ path: join(out, '06-step-skipped-task-done.png'), fullPage: true });
});

await scenario('editor', { width: 1280, height: 800 }, async (page) => {
  await signIn(page, 'admin');
  await page.goto(`${base}/ui/#/editor`);
  const content = page.locator('.cm-content');
  await content.waitFor();
  // the example is valid: its graph is previewed
  await page.getByText('No problem found.').waitFor();
  await page.locator('.graph[aria-label="preview"] .node[data-step="shout"]').waitFor();
  // plan mode: shout=false skips `shout`, greet's configuration is rendered
  await page.locator('textarea[name="sample"]').fill('{"name": "world", "shout": false}');
  await page.getByRole('button', { name: 'Plan', exact: true }).click();
  await page.locator('tr[data-plan-step="shout"][data-outcome="skip"]').waitFor();
  const greet = await page.locator('tr[data-plan-step="greet"]').innerText();
  check(greet.includes('Hello world') && greet.includes('run'), `greet runs with "Hello world" (got ${greet})`);
  await page.screenshot({ path: join(out, '07-plan.png'), fullPage: true });
  // save (versioned)
  await page.getByRole('button', { name: 'Save template' }).click();
  await page.getByTestId('save-status').filter({ hasText: 'version 1 (created)' }).waitFor();
  // an invalid template: the error is marked at its line
  await content.click();
  await page.keyboard.press('Control+a');
  await page.keyboard.press('Delete');
  const bad = ['name: broken-one', 'description: a broken template', 'title_format: broken run', 'steps:', '  a:', '    dependencies: [nowhere]',
    '    action:', '      type: echo', '      configuration: {output: {}}', ''].join('\n');
  await page.keyboard.insertText(bad);
  await page.locator('[data-testid="problems"] li.error[data-line="6"]').waitFor();
  await page.locator('.cm-lintRange-error').first().waitFor();
  const problem = await page.locator('[data-testid="problems"] li.error').first().innerText();
  check(problem.includes('line 6') && problem.includes('nowhere'), `the problem names line 6 and the bad dependency (got ${problem})`);
  check(await page.getByRole('button', { name: 'Save template' }).isDisabled(), 'save is disabled while the template has errors');
  await page.screenshot({ path: join(out, '08-editor-error.png'), fullPage: true });
  // completion of keys comes from the template JSON schema (GET /template/schema)
  await content.click();
  await page.keyboard.press('Control+End');
  await page.keyboard.type('allow_task');
  await page.locator('.cm-tooltip-autocomplete li').filter({ hasText: 'allow_task_start_over' }).waitFor();
  await page.keyboard.press('Escape');
});

await scenario('step-log', { width: 1280, height: 800 }, async (page) => {
  await signIn(page, 'admin');
  await page.goto(`${base}/ui/#/new/e2e-logs`);
  await page.getByRole('button', { name: 'Create task' }).click();
  await page.locator('.node[data-step="copy"]').click();
  // lines and progress show while the step runs, and stay once it is done
  await page.getByTestId('step-log').filter({ hasText: 'preparing the release' }).waitFor({ timeout: 30000 });
  await page.locator('.node[data-step="copy"][data-state="DONE"]').waitFor({ timeout: 30000 });
  await page.getByTestId('step-log').filter({ hasText: '! warning: disk almost full' }).waitFor();
  await page.getByTestId('step-progress').filter({ hasText: '100% finished' }).waitFor();
  // the page refreshed the log while the step ran (it prints for 3 s): every line is there, once
  // (stdout and stderr are separate pipes: their lines may interleave either way)
  const log = (await page.getByTestId('step-log').innerText()).split('\n').sort();
  const printed = ['preparing the release', '! warning: disk almost full', '{"copied": 3}'].sort();
  check(JSON.stringify(log) === JSON.stringify(printed), `the log holds each line once (got ${JSON.stringify(log)})`);
  await page.screenshot({ path: join(out, '10-step-log.png'), fullPage: true });
});

await scenario('schedules', { width: 1280, height: 800 }, async (page) => {
  await signIn(page, 'admin');
  await page.getByRole('link', { name: 'Schedules' }).click();
  await page.getByTestId('no-schedules').waitFor();
  await page.locator('input[name="schedule-name"]').fill('nightly-hello');
  await page.locator('select[name="schedule-template"]').selectOption('hello-world');
  await page.locator('input[name="schedule-when"]').fill('daily@02:30');
  await page.locator('textarea[name="schedule-input"]').fill('{"name": "night"}');
  await page.locator('select[name="schedule-missed"]').selectOption('run_once');
  await page.locator('select[name="schedule-overlap"]').selectOption('skip');
  await page.locator('textarea[name="schedule-suspend"]').fill('22:00-06:00');
  await page.getByRole('button', { name: 'Create schedule' }).click();
  const row = page.locator('tr[data-schedule="nightly-hello"]');
  await row.waitFor();
  const text = await row.innerText();
  check(text.includes('daily@02:30'), 'the schedule is listed');
  check(text.includes('missed: run once') && text.includes('overlap: skip'), `the policies are shown: ${text}`);
  check(text.includes('suspended 22:00-06:00'), `the suspend window is shown: ${text}`);
  await row.getByRole('button', { name: 'Runs' }).click();
  await page.locator('tr[data-runs="nightly-hello"]').filter({ hasText: 'No run yet.' }).waitFor();
  // admins see the notification outbox
  await page.getByRole('heading', { name: 'Notifications' }).waitFor();
  await row.getByRole('button', { name: 'Pause' }).click();
  await row.filter({ hasText: '(paused)' }).waitFor();
  // a bad calendar is refused with the API's message
  await page.locator('input[name="schedule-name"]').fill('broken');
  await page.locator('select[name="schedule-template"]').selectOption('hello-world');
  await page.locator('input[name="schedule-when"]').fill('sometimes@noon');
  await page.getByRole('button', { name: 'Create schedule' }).click();
  await page.locator('form[aria-label="new schedule"] .error').waitFor();
  await page.screenshot({ path: join(out, '11-schedules.png'), fullPage: true });
});

await scenario('phone-width', { width: 390, height: 844 }, async (page) => {
  await signIn(page, 'alice');
  await page.getByRole('link', { name: 'Ship billing to production' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no horizontal scrolling at phone width (overflow ${overflow}px)`);
  if (taskUrl) {
    await page.goto(taskUrl);
    await page.locator('.node[data-step="ship"]').waitFor();
    await page.getByTestId('watchers').filter({ hasText: 'admin, group ops' }).waitFor();
  }
  await page.screenshot({ path: join(out, '09-phone.png'), fullPage: true });
});

await browser.close();
for (const p of problems) console.log(`PROBLEM ${p}`);
if (failed || problems.length > 0) process.exit(1);
console.log('all browser scenarios passed');
