// A stand-in for the mini program's `wx`, backed by wxpay's WeChat sandbox:
//   wx.login          → a js_code from POST /sandbox/mp/code, for one test user
//   wx.request        → fetch (GET, or JSON bodies as WeChat sends objects)
//   wx.requestPayment → POST /sandbox/jssdk/pay checks paySign and the order as
//                       WeChat does, then the person confirms or cancels in the
//                       sandbox's JSAPI cashier
//   wx.*StorageSync   → an in-memory map
// It records what the mini program passed, so tests can check it.

const SANDBOX_SOURCE = 'wechat-sandbox';

async function sandboxJson(sandbox, path, body) {
  const res = await fetch(sandbox + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${JSON.stringify(data)}`);
  return data;
}

/** The errMsg the sandbox's cashier result page reports to its parent. */
function cashierErrMsg(html) {
  const m = /postMessage\((\{.*?\}),"\*"\)/.exec(html);
  if (!m) throw new Error(`the cashier page reported nothing:\n${html.slice(0, 500)}`);
  const payload = JSON.parse(m[1]);
  if (payload.source !== SANDBOX_SOURCE) throw new Error(`unexpected report ${m[1]}`);
  return payload.errMsg;
}

/** Calls `success` or `fail`, then `complete`, as WeChat does. */
function settle(options, promise) {
  promise.then(
    (res) => {
      if (options.success) options.success(res);
      if (options.complete) options.complete(res);
    },
    (err) => {
      const res = { errMsg: err.errMsg || String(err.message || err) };
      if (options.fail) options.fail(res);
      if (options.complete) options.complete(res);
    },
  );
}

function failure(errMsg) {
  return Object.assign(new Error(errMsg), { errMsg });
}

/**
 * `sandbox`: the sandbox's base URL. `user`: the sandbox test user who uses
 * the phone (u1, u2, …). `cashier`: what the person does at the cashier,
 * 'confirm' or 'cancel' (changeable later through `wx.cashier`).
 */
async function createWx({ sandbox, user = 'u1', cashier = 'confirm' }) {
  // The mini program's own appid: WeChat knows it without being told.
  const info = await sandboxJson(sandbox, '/sandbox/');
  const app = info.apps.find((a) => a.kind === 'Mp');
  if (!app) throw new Error('the sandbox has no mini program');
  const storage = new Map();

  const wx = {
    appId: app.appid,
    cashier,
    // What the mini program passed to wx.requestPayment, in order.
    payments: [],
    // Every wx.request's {url, method, statusCode, data}.
    requests: [],

    login(options) {
      settle(
        options,
        sandboxJson(sandbox, '/sandbox/mp/code', { appid: app.appid, user }).then(({ code }) => ({
          code,
          errMsg: 'login:ok',
        })),
      );
    },

    request(options) {
      const method = (options.method || 'GET').toUpperCase();
      const headers = { ...(options.header || {}) };
      let body;
      if (method !== 'GET' && options.data !== undefined) {
        body = typeof options.data === 'string' ? options.data : JSON.stringify(options.data);
      }
      const done = fetch(options.url, { method, headers, body })
        .then(async (res) => {
          const text = await res.text();
          let data = text;
          // dataType 'json' (the default): parsed when it parses.
          try {
            data = JSON.parse(text);
          } catch {
            // left as text, as WeChat does
          }
          const header = Object.fromEntries(res.headers.entries());
          wx.requests.push({ url: options.url, method, statusCode: res.status, data });
          return { statusCode: res.status, data, header, errMsg: 'request:ok' };
        })
        .catch((err) => {
          if (err.errMsg) throw err;
          throw failure(`request:fail ${err.message}`);
        });
      settle(options, done);
    },

    requestPayment(options) {
      const { success, fail, complete, ...params } = options;
      wx.payments.push(params);
      settle(options, pay(params));
    },

    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => storage.set(key, JSON.parse(JSON.stringify(value))),
    removeStorageSync: (key) => storage.delete(key),
  };

  async function pay(params) {
    const opened = await sandboxJson(sandbox, '/sandbox/jssdk/pay', { appId: app.appid, ...params });
    if (opened.errMsg !== 'chooseWXPay:ok') {
      throw failure(opened.errMsg.replace(/^chooseWXPay:fail,?\s*/, 'requestPayment:fail '));
    }
    const ticket = new URL(opened.cashierUrl).searchParams.get('ticket');
    const action = wx.cashier === 'cancel' ? 'cancel' : 'confirm';
    const res = await fetch(`${sandbox}/sandbox/jsapi/cashier/${action}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ticket }).toString(),
    });
    const errMsg = cashierErrMsg(await res.text());
    if (errMsg === 'chooseWXPay:ok') return { errMsg: 'requestPayment:ok' };
    // WeChat reports a closed cashier to `fail` with this errMsg.
    if (errMsg === 'chooseWXPay:cancel') throw failure('requestPayment:fail cancel');
    throw failure(errMsg.replace(/^chooseWXPay:fail,?\s*/, 'requestPayment:fail '));
  }

  return wx;
}

module.exports = { createWx, sandboxJson };
