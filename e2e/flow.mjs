#!/usr/bin/env node
// The demo page's whole flow in headless Chromium, against a running `stack`
// (sandbox on):
//
//   node e2e/flow.mjs http://127.0.0.1:8080
//
// Logs in through the sandbox's consent page, checks wx.config and the share
// calls, refuses a bad amount, pays 0.01 yuan through the JSAPI cashier (and
// sees PAID), cancels one (NOTPAY), pays through H5 (MWEB) and a QR code
// (NATIVE, scanned by the sandbox's stand-in phone), checks that a tampered
// signature makes wx.config fail, logs out and back in silently (snsapi_base),
// and that a MicroMessenger user agent loads WeChat's own JS-SDK. Prints the
// orders it placed as one `ORDERS {json}` line (the Rust test checks them in
// the sandbox). Saves a
// screenshot of each final page under target/e2e/ (E2E_OUT overrides);
// DOCS_SCREENSHOT=path also saves the README's picture of a paid order.
// Every wait is on a visible state; nothing sleeps.

import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STEP_TIMEOUT_MS = 15_000;
// The page polls every second; the notification has to reach pay-service first.
const PAID_TIMEOUT_MS = 30_000;

const base = parseBase(process.argv[2]);
const outDir = path.resolve(process.env.E2E_OUT || path.join(HERE, '..', 'target', 'e2e'));

function parseBase(arg) {
  if (!arg) {
    console.error('usage: node e2e/flow.mjs <stack URL, e.g. http://127.0.0.1:8080>');
    process.exit(2);
  }
  const u = new URL(arg);
  return u.origin;
}

class Failure extends Error {}

function check(cond, message) {
  if (!cond) throw new Failure(message);
}

function equal(actual, expected, what) {
  check(
    JSON.stringify(actual) === JSON.stringify(expected),
    `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
  );
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
    const where = await page
      .evaluate(() => `${location.href} (${document.readyState})`)
      .catch(() => page.url());
    console.error(`✘ ${stepNo}. ${name}\n  page: ${where}\n  screenshot: ${shot}`);
    throw e;
  }
  console.log(`✔ ${stepNo}. ${name} (${Date.now() - started} ms)`);
}

/** Waits until `selector`'s text is exactly `text`. */
async function textIs(page, selector, text, timeout = STEP_TIMEOUT_MS) {
  await page.waitForFunction(
    ([sel, t]) => document.querySelector(sel)?.textContent?.trim() === t,
    [selector, text],
    { timeout },
  );
}

/** The order as pay-service reports it to the page's session. */
async function orderFromApi(page, outTradeNo) {
  return page.evaluate(async (no) => {
    const res = await fetch(`/api/pay/orders/${encodeURIComponent(no)}`, { credentials: 'same-origin' });
    return res.json();
  }, outTradeNo);
}

async function screenshot(page, name, { fullPage = true } = {}) {
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage });
  console.log(`  screenshot: ${file}`);
}

/** Fills the pay form and submits it; returns nothing (the page reacts). */
async function submitPayment(page, yuan, tradeLabel) {
  await page.getByRole('radio', { name: tradeLabel }).check();
  await page.getByLabel('金额（元）').fill(yuan);
  await page.getByRole('button', { name: '立即支付' }).click();
}

async function shownOrderNo(page) {
  await page.locator('#order').waitFor({ state: 'visible' });
  const no = (await page.locator('#order-no').textContent()).trim();
  check(/^[A-Za-z0-9_\-|*]{1,32}$/.test(no), `an out_trade_no is shown, not ${JSON.stringify(no)}`);
  return no;
}

async function main() {
  await mkdir(outDir, { recursive: true });
  // A failure screenshot from an earlier run would mislead.
  for (const f of await readdir(outDir)) {
    if (/^failed-step-\d+\.png$/.test(f)) await rm(path.join(outDir, f));
  }
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'wxpay-e2e-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    locale: 'zh-CN',
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const pageErrors = [];
  const watched = new WeakSet();
  const watch = (page) => {
    if (watched.has(page)) return;
    watched.add(page);
    page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
    page.on('dialog', (d) => {
      pageErrors.push(`unexpected ${d.type()} dialog: ${d.message()}`);
      d.dismiss().catch(() => {});
    });
  };
  context.on('page', watch);
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    watch(page);
    await run(context, page);
    check(pageErrors.length === 0, `errors in the page:\n  ${pageErrors.join('\n  ')}`);
  } finally {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  }
}

async function run(context, page) {
  const home = `${base}/`;
  // Printed at the end for the Rust test, which checks them in the sandbox.
  const orders = {};
  let sandboxBase;

  await step(page, 'the page loads, signed out, with the sandbox JS-SDK configured', async () => {
    await page.goto(home);
    await page.locator('#login-status[data-state="anonymous"]').waitFor();
    await page.getByRole('button', { name: '微信登录（获取昵称和头像）' }).waitFor();
    await page.locator('#jssdk-status[data-state="ready"]').waitFor();
    await textIs(page, '#jssdk-status', 'JS-SDK 已就绪：wx.config 签名验证通过');
    sandboxBase = await page.evaluate(() => window.wx.sandboxBase);
    check(/^http:\/\/127\.0\.0\.1:\d+$/.test(sandboxBase), `the sandbox base, not ${sandboxBase}`);
    check(sandboxBase !== base, 'the JS-SDK stand-in comes from the sandbox, not the page origin');
  });

  await step(page, "three clicks on a fresh stack: 静默登录, 立即支付, 确认支付 → PAID", async () => {
    await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${base}/api/wechat/getOpenId?`)),
      page.getByRole('button', { name: '静默登录（仅获取 openid）' }).click(),
    ]);
    await page.locator('#login-status[data-state="signed-in"]').waitFor();
    // Without WeChat's #wechat_redirect, which the redirects carried along.
    equal(page.url(), home, 'the page after a silent login');
    // The form's defaults: 0.01 yuan, 公众号支付 (JSAPI).
    equal(await page.getByLabel('金额（元）').inputValue(), '0.01', 'default amount');
    check(await page.getByRole('radio', { name: /公众号支付/ }).isChecked(), 'JSAPI by default');
    await page.getByRole('button', { name: '立即支付' }).click();
    const cashier = page.frameLocator('iframe[title="微信支付收银台"]');
    await cashier.getByRole('button', { name: '确认支付' }).click();
    await page.locator('#order-status[data-status="PAID"]').waitFor({ timeout: PAID_TIMEOUT_MS });
    orders.threeClicks = await shownOrderNo(page);
    await screenshot(page, 'three-clicks-paid.png');
    // Signed out again for the steps below; the order goes with the session.
    await page.getByRole('button', { name: '退出登录' }).click();
    await page.locator('#login-status[data-state="anonymous"]').waitFor();
    check(await page.locator('#order').isHidden(), "the signed-out page shows no one's order");
  });

  await step(page, 'amounts convert exactly and bad ones are refused before any order', async () => {
    const table = await page.evaluate(async () => {
      const { yuanToFen } = await import('/money.js');
      return ['0.01', '1.1', '0.07', '19.99', '0.29', '1', '１２．３４', '1.005', '0', '1e2', '-1', '.5'].map(
        (s) => [s, yuanToFen(s)],
      );
    });
    equal(
      table.map(([s, r]) => [s, r.ok ? r.fen : r.error]),
      [
        ['0.01', 1],
        ['1.1', 110],
        ['0.07', 7],
        ['19.99', 1999],
        ['0.29', 29],
        ['1', 100],
        ['１２．３４', 1234],
        ['1.005', '金额最多两位小数（精确到分）'],
        ['0', '金额必须大于 0'],
        ['1e2', '金额格式不正确，请输入数字，例如 0.01'],
        ['-1', '金额格式不正确，请输入数字，例如 0.01'],
        ['.5', '金额格式不正确，请输入数字，例如 0.01'],
      ],
      'yuanToFen',
    );
    await page.getByLabel('金额（元）').fill('0.001');
    await page.getByRole('button', { name: '立即支付' }).click();
    await page.getByRole('alert').filter({ hasText: '金额最多两位小数（精确到分）' }).waitFor();
    equal(await page.getByLabel('金额（元）').getAttribute('aria-invalid'), 'true', 'aria-invalid');
    check(await page.locator('#order').isHidden(), 'no order is shown');
    // Signed out, a valid amount still places nothing.
    await page.getByLabel('金额（元）').fill('0.01');
    await page.getByRole('button', { name: '立即支付' }).click();
    await textIs(page, '#pay-message', '请先登录：支付需要微信身份。');
    check(await page.locator('#order').isHidden(), 'no order is shown');
  });

  await step(page, 'login through the consent page (允许 as 张三) shows the nickname and avatar', async () => {
    await page.getByRole('button', { name: '微信登录（获取昵称和头像）' }).click();
    await page.waitForURL((u) => u.href.startsWith(`${sandboxBase}/connect/oauth2/authorize?`));
    await page.getByRole('heading', { name: '授权登录' }).waitFor();
    await page.getByRole('link', { name: '以张三的身份允许' }).click();
    await page.waitForURL(home);
    await textIs(page, '#nickname', '张三');
    await page.getByRole('img', { name: '张三的头像' }).waitFor();
    await page.waitForFunction(() => {
      const img = document.getElementById('avatar');
      return img.complete && img.naturalWidth > 0;
    });
    await textIs(page, '#login-status', '已登录');
    check(await page.getByRole('button', { name: '退出登录' }).isVisible(), 'logout offered');
    // The page came back from the redirect: wx.config ran again for it.
    await page.locator('#jssdk-status[data-state="ready"]').waitFor();
  });

  await step(page, 'share buttons set the share data through the JS-SDK', async () => {
    await page.getByRole('button', { name: '设置“分享给朋友”' }).click();
    await textIs(page, '#share-status', '已设置“分享给朋友”的内容，可从右上角菜单分享。');
    await page.getByRole('button', { name: '设置“分享到朋友圈”' }).click();
    await textIs(page, '#share-status', '已设置“分享到朋友圈”的内容，可从右上角菜单分享。');
    const shared = await page.evaluate(() => window.wx.sandboxShared);
    equal(shared.updateAppMessageShareData?.link, home, 'shared link');
    equal(shared.updateTimelineShareData?.title, 'wxpay 演示', 'timeline title');
  });

  let paidNo;
  await step(page, 'JSAPI: pay 0.01 yuan, confirm in the cashier, see PAID', async () => {
    await submitPayment(page, '0.01', /公众号支付/);
    const dialog = page.getByRole('dialog', { name: '微信支付' });
    await dialog.waitFor();
    const cashier = page.frameLocator('iframe[title="微信支付收银台"]');
    await cashier.getByText('¥0.01').waitFor();
    paidNo = await shownOrderNo(page);
    orders.jsapiPaid = paidNo;
    await textIs(page, '#order-status', '未支付（NOTPAY）');
    await screenshot(page, 'jsapi-cashier.png', { fullPage: false });
    await cashier.getByRole('button', { name: '确认支付' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('#order-status[data-status="PAID"]').waitFor({ timeout: PAID_TIMEOUT_MS });
    await textIs(page, '#order-status', '已支付（PAID）');
    await textIs(page, '#pay-message', '支付成功，订单已确认。');
    await textIs(page, '#order-amount', '¥0.01');
    const api = await orderFromApi(page, paidNo);
    equal([api.code, api.data.status, api.data.amountFen, api.data.tradeType], [0, 'PAID', 1, 'JSAPI'], 'order');
    check(typeof api.data.transactionId === 'string' && api.data.transactionId.length > 0, 'transactionId');
    await screenshot(page, 'jsapi-paid.png');
    if (process.env.DOCS_SCREENSHOT) {
      await page.locator('#pay-title').scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.resolve(process.env.DOCS_SCREENSHOT), fullPage: true });
      console.log(`  docs screenshot: ${process.env.DOCS_SCREENSHOT}`);
    }
  });

  await step(page, 'JSAPI: cancelling in the cashier leaves the order NOTPAY', async () => {
    await submitPayment(page, '0.02', /公众号支付/);
    const dialog = page.getByRole('dialog', { name: '微信支付' });
    await dialog.waitFor();
    const cashier = page.frameLocator('iframe[title="微信支付收银台"]');
    await cashier.getByText('¥0.02').waitFor();
    const no = await shownOrderNo(page);
    check(no !== paidNo, 'a new order');
    orders.jsapiCancelled = no;
    await cashier.getByRole('button', { name: '取消' }).click();
    await dialog.waitFor({ state: 'detached' });
    await textIs(page, '#pay-message', '已取消支付，订单未支付。');
    await textIs(page, '#order-status', '未支付（NOTPAY）');
    const api = await orderFromApi(page, no);
    equal([api.data.status, api.data.amountFen], ['NOTPAY', 2], 'cancelled order');
    await screenshot(page, 'jsapi-cancelled.png');
  });

  await step(page, 'MWEB: the H5 cashier pays and sends the browser back to PAID', async () => {
    await submitPayment(page, '0.03', /H5 支付/);
    await page.waitForURL((u) => u.href.startsWith(`${sandboxBase}/sandbox/mweb?`));
    await page.getByText('¥0.03').waitFor();
    await page.getByRole('button', { name: '确认支付' }).click();
    await page.waitForURL(home);
    await page.locator('#order-status[data-status="PAID"]').waitFor({ timeout: PAID_TIMEOUT_MS });
    await textIs(page, '#order-amount', '¥0.03');
    const no = await shownOrderNo(page);
    orders.mwebPaid = no;
    const api = await orderFromApi(page, no);
    equal([api.data.status, api.data.amountFen, api.data.tradeType], ['PAID', 3, 'MWEB'], 'MWEB order');
    await screenshot(page, 'mweb-paid.png');
  });

  await step(page, 'NATIVE: the QR code shows, a sandbox scan pays it, and the page turns PAID', async () => {
    await submitPayment(page, '0.04', /扫码支付/);
    const qr = page.getByRole('img', { name: '微信支付二维码：请用微信扫一扫' });
    await qr.waitFor();
    await page.waitForFunction(() => {
      const img = document.getElementById('qr-img');
      return img.complete && img.naturalWidth > 0;
    });
    const no = await shownOrderNo(page);
    orders.nativePaid = no;
    // No phone: the sandbox plays the one that scans, in a new tab, as 张三.
    const [phone] = await Promise.all([
      context.waitForEvent('page'),
      page.getByRole('link', { name: '没有手机？在沙箱中模拟扫码' }).click(),
    ]);
    await phone.waitForURL((u) => u.href.startsWith(`${sandboxBase}/sandbox/native?`));
    await phone.getByText('¥0.04').waitFor();
    await phone.getByText('付款用户：张三').waitFor();
    await phone.getByRole('button', { name: '确认支付' }).click();
    await phone.getByRole('heading', { name: '支付成功' }).waitFor();
    await screenshot(phone, 'native-scanned.png');
    await phone.close();
    await page.locator('#order-status[data-status="PAID"]').waitFor({ timeout: PAID_TIMEOUT_MS });
    await qr.waitFor({ state: 'hidden' });
    await screenshot(page, 'native-paid.png');
  });

  const tampered = await context.newPage();
  await step(tampered, 'a tampered signature makes wx.config fail visibly', async () => {
    await tampered.route('**/api/wechat/jssdkConfig?*', async (route) => {
      const response = await route.fetch();
      const json = await response.json();
      const sig = json.data.signature;
      json.data.signature = (sig[0] === '0' ? '1' : '0') + sig.slice(1);
      await route.fulfill({ response, json });
    });
    await tampered.goto(home);
    await tampered.locator('#jssdk-status[data-state="error"]').waitFor();
    await textIs(tampered, '#jssdk-status', 'wx.config 失败：config:invalid signature');
    check(await tampered.getByRole('button', { name: '设置“分享给朋友”' }).isDisabled(), 'share disabled');
    // Still signed in, but JSAPI cannot be paid without the JS-SDK.
    await textIs(tampered, '#nickname', '张三');
    await submitPayment(tampered, '0.05', /公众号支付/);
    await textIs(
      tampered,
      '#pay-message',
      'JS-SDK 未就绪，无法发起公众号支付；请在微信内打开，或改用 H5 / 扫码支付。',
    );
    check(await tampered.locator('#order').isHidden(), 'no order is placed');
    await screenshot(tampered, 'config-invalid-signature.png');
  });

  await step(page, 'logout, then silent login (snsapi_base) returns the same user', async () => {
    const openid = (await page.locator('#openid').textContent()).trim();
    check(openid.startsWith('openid：o'), `an openid is shown, not ${openid}`);
    await page.getByRole('button', { name: '退出登录' }).click();
    await page.locator('#login-status[data-state="anonymous"]').waitFor();
    check(await page.locator('#user').isHidden(), 'the profile is gone');
    await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${base}/api/wechat/getOpenId?`)),
      page.getByRole('button', { name: '静默登录（仅获取 openid）' }).click(),
    ]);
    await page.locator('#login-status[data-state="signed-in"]').waitFor();
    equal(page.url(), home, 'the page after a silent login');
    equal((await page.locator('#openid').textContent()).trim(), openid, 'openid after silent login');
  });

  const inWeChat = await context.newPage();
  await step(inWeChat, "inside WeChat (MicroMessenger UA) the page loads WeChat's own JS-SDK", async () => {
    const cdp = await context.newCDPSession(inWeChat);
    await cdp.send('Emulation.setUserAgentOverride', {
      userAgent:
        'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) ' +
        'Chrome/130.0 Mobile Safari/537.36 MicroMessenger/8.0.50.2701(0x28003234) NetType/WIFI Language/zh_CN',
    });
    // This machine cannot reach WeChat: stand the sandbox's script in for it.
    const requested = [];
    await inWeChat.route('https://res.wx.qq.com/**', async (route) => {
      requested.push(route.request().url());
      const res = await fetch(`${sandboxBase}/sandbox/jweixin.js`);
      await route.fulfill({ status: 200, contentType: 'application/javascript', body: await res.text() });
    });
    await inWeChat.goto(home);
    await inWeChat.locator('#jssdk-status[data-state="ready"]').waitFor();
    await textIs(inWeChat, '#jssdk-source', '微信内：使用微信官方 JS-SDK');
    equal(requested, ['https://res.wx.qq.com/open/js/jweixin-1.6.0.js'], 'scripts asked of WeChat');
    await inWeChat.close();
  });

  console.log(`ORDERS ${JSON.stringify(orders)}`);
}

main().then(
  () => {
    console.log(`e2e flow passed against ${base}`);
  },
  (e) => {
    console.error(e instanceof Failure ? `FAILED: ${e.message}` : e);
    process.exitCode = 1;
  },
);
