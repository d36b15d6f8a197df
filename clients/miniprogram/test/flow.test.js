// The mini program's logic (lib/) against a real `stack`: sign-in through
// wx.login, the profile, payments confirmed and cancelled in the sandbox's
// cashier, and the server's errors as the page shows them.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startStack } = require('./support/stack');
const { createWx, sandboxJson } = require('./support/wx');
const { createApi, ApiError } = require('../lib/api');
const session = require('../lib/session');
const payment = require('../lib/payment');
const { createShop } = require('../lib/shop');

let stack;

before(async () => {
  stack = await startStack();
});

after(() => stack && stack.stop());

/** A phone for `user`, the page's shop on it, and everything it was told to show. */
async function phone(user, options = {}) {
  const wx = await createWx({ sandbox: stack.sandbox, user, ...options });
  const api = createApi(wx.request, stack.base);
  let data = {};
  const shop = createShop({
    wx,
    api,
    setData: (d) => {
      data = { ...data, ...d };
    },
  });
  data = shop.initial();
  return { wx, api, shop, shown: () => data };
}

async function openidOf(user, appid) {
  const users = await sandboxJson(stack.sandbox, '/sandbox/users');
  return users.find((u) => u.key === user).openids[appid];
}

/** The v2Pay reply the mini program received, as the stand-in recorded it. */
function v2PayReply(wx) {
  const r = wx.requests.filter((q) => q.url.includes('/api/mp/v2Pay')).at(-1);
  assert.equal(r.statusCode, 200);
  return r.data.data;
}

test('sign-in: wx.login code → getSession gives a token for the user', async () => {
  const { wx, api } = await phone('u1');
  const s = await session.signIn(wx, api);
  assert.equal(s.openid, await openidOf('u1', wx.appId));
  assert.ok(s.token.length > 20, 'a token');
  assert.ok(s.expiresAt > Date.now() + 3600_000, 'valid for more than an hour');
  assert.deepEqual(session.storedSession(wx), s);
  const me = await session.me(api, s.token);
  assert.equal(me.openid, s.openid);
  assert.equal(me.kind, 'mp');
});

test('a login code is single-use: reusing it is refused', async () => {
  const { wx, api } = await phone('u1');
  const { code } = await sandboxJson(stack.sandbox, '/sandbox/mp/code', { appid: wx.appId, user: 'u1' });
  await api.get('/api/mp/getSession', { query: { code } });
  const err = await api.get('/api/mp/getSession', { query: { code } }).catch((e) => e);
  assert.ok(err instanceof ApiError, String(err));
  // WeChat's own errcode (40163: code been used) comes back with HTTP 502.
  assert.equal(err.status, 502);
  assert.equal(err.code, 40163);
});

test('the profile is saved and /api/auth/me shows it', async () => {
  const { shop, shown } = await phone('u2');
  const user = await shop.saveProfile({
    nickName: '小程序用户',
    avatarUrl: 'https://example.com/avatar.png',
    gender: 2,
    city: '杭州',
  });
  assert.equal(shown().error, '');
  assert.equal(shown().nickName, '小程序用户');
  assert.equal(user.nickname, '小程序用户');
  assert.equal(user.headimgurl, 'https://example.com/avatar.png');
  assert.equal(user.sex, 2);
  assert.equal(user.city, '杭州');
});

test('a bad profile is refused with the server message and code', async () => {
  const { shop, shown } = await phone('u2');
  const user = await shop.saveProfile({ nickName: 'x', avatarUrl: 'wxfile://tmp_avatar.png' });
  assert.equal(user, undefined);
  assert.match(shown().error, /avatarUrl.*（1001）$/);
});

test('pay: requestPayment gets exactly the server params, the order ends PAID', async () => {
  const { wx, shop, shown } = await phone('u1');
  const result = await shop.pay('0.01');
  assert.equal(shown().error, '');
  assert.equal(result.outcome, 'paid');

  const reply = v2PayReply(wx);
  assert.equal(wx.payments.length, 1);
  assert.deepEqual(wx.payments[0], {
    timeStamp: reply.timeStamp,
    nonceStr: reply.nonceStr,
    package: reply.package,
    signType: reply.signType,
    paySign: reply.paySign,
  });
  // stack pays over APIv3 by default: the paySign is RSA (v2 would say MD5 or HMAC-SHA256).
  assert.equal(reply.signType, 'RSA');

  assert.equal(result.order.status, 'PAID');
  assert.equal(result.order.amountFen, 1);
  assert.equal(shown().order.status, 'PAID');
  assert.equal(shown().order.statusText, '已支付');
  const atWechat = await sandboxJson(stack.sandbox, `/sandbox/orders/${result.outTradeNo}`);
  assert.equal(atWechat.totalFee, 1);
  assert.ok(atWechat.transactionId, 'paid at WeChat');
});

test('a cancelled payment leaves the order NOTPAY', async () => {
  const { wx, shop, shown } = await phone('u1', { cashier: 'cancel' });
  const result = await shop.pay('2.50');
  assert.equal(result.outcome, 'cancelled');
  assert.equal(wx.payments.length, 1);
  assert.equal(result.order.status, 'NOTPAY');
  assert.equal(result.order.amountFen, 250);
  assert.equal(shown().message, '已取消支付');
  assert.equal(shown().order.status, 'NOTPAY');

  // Asking WeChat changes nothing: it was never paid.
  assert.equal((await shop.refresh()).status, 'NOTPAY');
  const atWechat = await sandboxJson(stack.sandbox, `/sandbox/orders/${result.outTradeNo}`);
  assert.equal(atWechat.transactionId ?? null, null);
});

test('money=0 is refused by the server: 400/1001 shown, no order, no cashier', async () => {
  const { wx, shop, shown } = await phone('u1');
  await shop.signIn();
  const before = await sandboxJson(stack.sandbox, '/sandbox/calls');
  const result = await shop.pay('0');
  assert.equal(result, undefined);
  const r = wx.requests.at(-1);
  assert.equal(r.statusCode, 400);
  assert.equal(r.data.code, 1001);
  assert.match(shown().error, /^money: .*（1001）$/);
  assert.equal(shown().order, null);
  assert.equal(wx.payments.length, 0);
  const calls = await sandboxJson(stack.sandbox, '/sandbox/calls');
  assert.equal(calls['/pay/unifiedorder'] ?? 0, before['/pay/unifiedorder'] ?? 0);
});

test('WeChat Pay failing is shown as the server reports it (502/10009)', async () => {
  const { wx, shop, shown } = await phone('u1');
  await shop.signIn();
  await sandboxJson(stack.sandbox, '/sandbox/faults', {
    // stack pays over APIv3 by default: its order call is the one to break.
    path: '/v3/pay/transactions/jsapi',
    kind: 'garbage',
    count: 5,
  });
  try {
    assert.equal(await shop.pay('0.01'), undefined);
  } finally {
    await sandboxJson(stack.sandbox, '/sandbox/reset', {});
  }
  const r = wx.requests.at(-1);
  assert.equal(r.statusCode, 502);
  assert.equal(r.data.code, 10009);
  assert.match(shown().error, /（10009）$/);
  assert.equal(wx.payments.length, 0);
});

test('a token the server refuses gets one fresh sign-in, then the payment goes on', async () => {
  const { wx, shop, shown } = await phone('u3');
  wx.setStorageSync(session.STORAGE_KEY, {
    openid: 'stale',
    token: 'v1.not-a-token',
    expiresAt: Date.now() + 3600_000,
  });
  const fresh = createShop({ wx, api: createApi(wx.request, stack.base), setData: () => {} });
  const result = await fresh.pay('0.01');
  assert.equal(result.outcome, 'paid');
  assert.equal(result.order.status, 'PAID');
  const statuses = wx.requests.map((q) => `${q.statusCode} ${new URL(q.url).pathname}`);
  assert.deepEqual(statuses.slice(0, 3), [
    '401 /api/mp/v2Pay',
    '200 /api/mp/getSession',
    '200 /api/mp/v2Pay',
  ]);
  assert.equal(wx.requests.filter((q) => q.url.includes('/api/mp/v2Pay')).length, 2);
  assert.notEqual(session.storedSession(wx).token, 'v1.not-a-token');
  assert.equal(shown().error, '');
});

test('without a session the API answers 401/1002', async () => {
  const { api } = await phone('u1');
  const err = await payment.placeOrder(api, '', '0.01').catch((e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 401);
  assert.equal(err.code, 1002);
});
