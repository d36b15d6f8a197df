#!/usr/bin/env node
// The operator console (/admin/) in headless Chromium, against a running
// `stack` prepared by stack/tests/console_browser.rs:
//
//   CONSOLE_TOKEN=… CONSOLE_ORDER=<paid, ≥ 0.30 yuan> CONSOLE_DAY=YYYY-MM-DD \
//   CONSOLE_MISSING=<order the day's bill lacks> node e2e/console.mjs http://127.0.0.1:8080
//
// A wrong token is refused; the right one signs in; the order is found by its
// out_trade_no and 0.29 yuan of it refunded: the first answer is lost on the
// way back (the request did reach the server), the confirm button is
// double-clicked and then clicked again, and every send carries the one
// Idempotency-Key of that confirmation, so the server holds one refund (the
// Rust side checks). Then the refund and the merchant events on the order's
// page, a failed event retried, the planted discrepancy of the day, the
// charts' SVGs, and signing out. Screenshots go to target/console-screenshots/
// (E2E_OUT overrides); DOCS_SCREENSHOT=path also saves the README's picture.
// Every wait is on a visible state; nothing sleeps.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STEP_TIMEOUT_MS = 15_000;

const base = new URL(process.argv[2] ?? usage()).origin;
const token = process.env.CONSOLE_TOKEN ?? usage();
const orderNo = process.env.CONSOLE_ORDER ?? usage();
const day = process.env.CONSOLE_DAY ?? usage();
const missingNo = process.env.CONSOLE_MISSING ?? usage();
const outDir = path.resolve(process.env.E2E_OUT || path.join(HERE, '..', 'target', 'console-screenshots'));

function usage() {
  console.error('usage: CONSOLE_TOKEN=… CONSOLE_ORDER=… CONSOLE_DAY=… CONSOLE_MISSING=… node e2e/console.mjs <stack URL>');
  process.exit(2);
}

class Failure extends Error {}

function check(cond, message) {
  if (!cond) throw new Failure(message);
}

let stepNo = 0;
async function step(page, name, fn) {
  stepNo += 1;
  const started = Date.now();
  try {
    await fn();
  } catch (e) {
    const shot = path.join(outDir, `failed-step-${stepNo}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`✘ ${stepNo}. ${name}\n  page: ${page.url()}\n  screenshot: ${shot}`);
    throw e;
  }
  console.log(`✔ ${stepNo}. ${name} (${Date.now() - started} ms)`);
}

async function screenshot(page, name) {
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot: ${file}`);
}

/** Waits until the view shows `route` rendered (not loading). */
// Ready for the hash now in the address bar: after a click that stays on the
// same route (a tab, a filter) the previous rendering is "ready" too.
async function viewReady(page, route) {
  await page.waitForFunction(
    (r) => {
      const v = document.getElementById('view');
      return v && v.dataset.route === r && v.dataset.state === 'ready' && v.dataset.hash === location.hash;
    },
    route,
  );
}

async function main() {
  await mkdir(outDir, { recursive: true });
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'wxpay-console-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
    locale: 'zh-CN',
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const problems = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    // A CSP violation (an inline style or script slipped in) is reported here.
    page.on('console', (m) => {
      // Expected: 401 before sign-in and for the wrong token, 400 for the refused range, and the refund answer the test cuts off.
      const expected = /Failed to load resource: (the server responded with a status of 40[01]|net::ERR_CONNECTION_RESET)/;
      if (m.type() === 'error' && !expected.test(m.text())) {
        problems.push(`console error: ${m.text()}`);
      }
    });
    page.on('dialog', (d) => {
      problems.push(`unexpected ${d.type()} dialog: ${d.message()}`);
      d.dismiss().catch(() => {});
    });
    await run(page);
    check(problems.length === 0, `problems in the page:\n  ${problems.join('\n  ')}`);
    console.log(`SCREENSHOTS ${outDir}`);
  } finally {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  }
}

async function run(page) {
  await step(page, 'a wrong token is refused with a message', async () => {
    await page.goto(`${base}/admin/`);
    await page.getByRole('heading', { name: /登录/ }).waitFor();
    await page.getByLabel(/管理令牌/).fill('not-the-admin-token-at-all');
    await page.getByRole('button', { name: '登录', exact: true }).click();
    await page.locator('#signin-error').filter({ hasText: '令牌不正确' }).waitFor();
    check((await page.getByLabel(/管理令牌/).getAttribute('aria-invalid')) === 'true', 'the token is marked invalid');
    check(await page.locator('#nav').isHidden(), 'no menu while signed out');
    await screenshot(page, 'console-signin-refused.png');
  });

  await step(page, 'the right token signs in and shows the orders', async () => {
    await page.getByLabel(/管理令牌/).fill(token);
    await page.getByRole('button', { name: '登录', exact: true }).click();
    await viewReady(page, 'orders');
    check((await page.locator('#operator').textContent()) === 'admin', 'operator admin (ADMIN_TOKEN)');
    await page.locator(`tr[data-out-trade-no="${orderNo}"]`).waitFor();
    await page.locator(`tr[data-out-trade-no="${missingNo}"]`).waitFor();
    // The cookie is HttpOnly: the page cannot read it.
    check(!(await page.evaluate(() => document.cookie)).includes('wxpay_admin'), 'the session cookie is HttpOnly');
    await screenshot(page, 'console-orders.png');
  });

  await step(page, 'bad filters are refused (amount on the page, range by the server); the search finds the order', async () => {
    await page.getByLabel('最低金额（元）').fill('1.001');
    await page.getByRole('button', { name: '查询' }).click();
    await page.locator('#filter-error').filter({ hasText: '金额最多两位小数' }).waitFor();
    await page.getByLabel('最低金额（元）').fill('');
    // A range the server refuses: its message shows, the form stays.
    await page.getByLabel('起始日期（北京时间）').fill('2026-01-02');
    await page.getByLabel('截止日期（含）').fill('2026-01-01');
    await page.getByRole('button', { name: '查询' }).click();
    await page.getByRole('alert').filter({ hasText: '请求有误' }).waitFor();
    await page.getByLabel('起始日期（北京时间）').fill('');
    await page.getByLabel('截止日期（含）').fill('');
    await page.getByLabel(/搜索商户订单号/).fill(orderNo);
    await page.getByRole('button', { name: '查询' }).click();
    await page.waitForURL((u) => u.hash.includes(`q=${orderNo}`));
    await viewReady(page, 'orders');
    const rows = page.locator('tbody tr[data-out-trade-no]');
    check((await rows.count()) === 1, `one row for the search, not ${await rows.count()}`);
    await page.getByRole('link', { name: orderNo }).click();
    await viewReady(page, 'orders');
    check((await page.locator('#order-no').textContent()) === orderNo, 'the order page');
  });

  const refundPosts = [];
  await step(page, 'refund 0.29 yuan: confirm, lost answer, double click, retry → one refund', async () => {
    const refundable = await page.locator('#order-refundable').textContent();
    await page.getByLabel('退款金额（元）').fill('0.001');
    await page.getByRole('button', { name: '退款…' }).click();
    await page.locator('#refund-error').filter({ hasText: '金额最多两位小数' }).waitFor();
    await page.getByLabel('退款金额（元）').fill('99999');
    await page.getByRole('button', { name: '退款…' }).click();
    await page.locator('#refund-error').filter({ hasText: `超过可退金额 ${refundable}` }).waitFor();

    await page.getByLabel('退款金额（元）').fill('0.29');
    await page.getByLabel('退款原因（可选）').fill('浏览器测试：部分退款');
    await page.getByRole('button', { name: '退款…' }).click();
    const confirm = page.getByRole('group', { name: '确认退款' });
    await confirm.waitFor();
    check((await page.locator('#refund-confirm-amount').textContent()) === '¥0.29', 'the confirmation names ¥0.29');
    await confirm.getByText('（29 分）').waitFor();

    const refundUrl = `${base}/api/pay/admin/orders/${orderNo}/refunds`;
    page.on('request', (r) => {
      if (r.url() === refundUrl && r.method() === 'POST') {
        refundPosts.push({ key: r.headers()['idempotency-key'], csrf: r.headers()['x-csrf-token'], body: r.postDataJSON() });
      }
    });
    // The first send reaches the server, but its answer is lost on the way back.
    let lostStatus = null;
    await page.route(refundUrl, async (route) => {
      if (lostStatus !== null || route.request().method() !== 'POST') return route.continue();
      lostStatus = (await route.fetch()).status();
      return route.abort('connectionreset');
    });
    await page.locator('#refund-confirm-button').dblclick();
    await page.locator('#refund-confirm-error').filter({ hasText: '网络错误' }).waitFor();
    check(lostStatus === 200, `the lost send did refund at the server (status ${lostStatus})`);
    check(refundPosts.length === 1, `the double click sent once, not ${refundPosts.length} times`);
    await page.locator('#refund-confirm-button').click();
    await page.locator('#flash').filter({ hasText: '退款已提交' }).waitFor();
    await page.unroute(refundUrl);
    check(refundPosts.length === 2, `two sends in all, not ${refundPosts.length}`);
    const [a, b] = refundPosts;
    check(a.key && a.key === b.key, `one Idempotency-Key per confirmation: ${a.key} / ${b.key}`);
    check(a.body.amountFen === 29 && b.body.amountFen === 29, `29 fen exactly: ${JSON.stringify(a.body)}`);
    check(typeof a.csrf === 'string' && a.csrf.length > 0, 'the X-CSRF-Token header goes with the write');
    console.log(`REFUND ${JSON.stringify({ key: a.key, sends: refundPosts.length })}`);
  });

  await step(page, 'the order page shows the refund and the merchant events', async () => {
    await viewReady(page, 'orders');
    const refunds = page.locator('section[aria-labelledby="refunds-title"] tbody tr');
    check((await refunds.count()) === 1, `one refund row, not ${await refunds.count()}`);
    await refunds.first().getByText('¥0.29').waitFor();
    await refunds.first().getByText('浏览器测试：部分退款').waitFor();
    const events = page.locator('section[aria-labelledby="events-title"] tbody tr');
    await events.filter({ hasText: 'order.paid' }).first().waitFor();
    check((await page.locator('#order-refunded').textContent()) === '¥0.00' ||
      (await page.locator('#order-refunded').textContent()) === '¥0.29', 'refunded so far');
    const history = page.locator('section[aria-labelledby="history-title"] tbody tr');
    check((await history.count()) >= 1, 'the status history has the payment');
    const notes = page.locator('section[aria-labelledby="notifications-title"] tbody tr');
    await notes.filter({ hasText: '验签通过' }).first().waitFor();
    await screenshot(page, 'console-order.png');
    // The list again, now with the refund in it: the README's picture.
    await page.getByRole('link', { name: /订单/ }).first().click();
    await viewReady(page, 'orders');
    // Refunded once WeChat's refund notification is in: reload until then.
    const row = page.locator(`tr[data-out-trade-no="${orderNo}"]`);
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (!(await row.textContent()).includes('¥0.29')) {
      check(Date.now() < deadline, 'the list shows the refunded ¥0.29');
      await page.reload();
      await viewReady(page, 'orders');
    }
    await screenshot(page, 'console-orders-refunded.png');
    if (process.env.DOCS_SCREENSHOT) {
      // Only as tall as the content: the picture stays small in the README.
      await page.setViewportSize({ width: 1440, height: 560 });
      await page.screenshot({ path: path.resolve(process.env.DOCS_SCREENSHOT), fullPage: true });
      await page.setViewportSize({ width: 1440, height: 900 });
      console.log(`  docs screenshot: ${process.env.DOCS_SCREENSHOT}`);
    }
  });

  await step(page, 'merchant events: the failed one is retried', async () => {
    await page.getByRole('link', { name: /商户事件/ }).click();
    await viewReady(page, 'events');
    check((await page.getByRole('tab', { name: /投递失败/ }).getAttribute('aria-selected')) === 'true', 'failed tab first');
    const row = page.locator('tbody tr[data-state="failed"]').filter({ hasText: orderNo }).first();
    await row.waitFor();
    const id = await row.getAttribute('data-event-id');
    await row.getByRole('button', { name: '重试' }).click();
    await page.locator('#flash').filter({ hasText: `事件 ${id} 已安排立即重试` }).waitFor();
    await page.getByRole('tab', { name: /待投递/ }).click();
    await viewReady(page, 'events');
    check((await page.getByRole('tab', { name: /待投递/ }).getAttribute('aria-selected')) === 'true', 'pending tab');
    await screenshot(page, 'console-events.png');
  });

  await step(page, 'reconciliation: the planted day shows its discrepancy', async () => {
    await page.getByRole('link', { name: /对账/ }).click();
    await viewReady(page, 'reconciliations');
    const row = page.locator(`tr[data-date="${day}"]`);
    await row.waitFor();
    await row.getByRole('link', { name: day }).click();
    await page.waitForURL((u) => u.hash === `#/reconciliations/${day}`);
    await viewReady(page, 'reconciliations');
    await page.locator(`tr[data-kind="MISSING_AT_WECHAT"][data-out-trade-no="${missingNo}"]`).waitFor();
    await page.getByText('微信账单无此交易').waitFor();
    await page.getByRole('button', { name: '重新对账' }).click();
    await page.locator('#flash').filter({ hasText: '已重新对账' }).waitFor();
    await page.locator(`tr[data-kind="MISSING_AT_WECHAT"][data-out-trade-no="${missingNo}"]`).waitFor();
    await screenshot(page, 'console-reconciliation.png');
  });

  await step(page, 'charts: the four server-drawn SVGs load', async () => {
    await page.getByRole('link', { name: /图表/ }).click();
    await viewReady(page, 'charts');
    for (const name of ['paid-hourly', 'paid-daily', 'success-ratio', 'notify-delay']) {
      await page.waitForFunction((id) => {
        const img = document.getElementById(id);
        return img && img.complete && img.naturalWidth > 0;
      }, `chart-${name}`);
    }
    await screenshot(page, 'console-charts.png');
  });

  await step(page, 'signing out ends the session', async () => {
    await page.getByRole('button', { name: '退出登录' }).click();
    await page.locator('#signin-error').filter({ hasText: '已退出登录' }).waitFor();
    await page.goto(`${base}/admin/#/orders`);
    await page.getByRole('heading', { name: /登录/ }).waitFor();
    check(await page.locator('#nav').isHidden(), 'signed out after a reload');
    const status = await page.evaluate(async () => (await fetch('/api/pay/admin/session')).status);
    check(status === 401, `GET session after sign-out: 401, not ${status}`);
  });
}

main().catch((e) => {
  console.error(e instanceof Failure ? `FAILED: ${e.message}` : e);
  process.exit(1);
});
