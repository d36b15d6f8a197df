// The demo page: WeChat login, JS-SDK (share), and WeChat Pay in three trade
// types. Plain ES module, no build step. Every call goes to this page's own
// origin (the gateway or `stack`), with the session cookie.

import { fenToYuan, yuanToFen } from './money.js';

const $ = (id) => document.getElementById(id);

const IN_WECHAT = /MicroMessenger/i.test(navigator.userAgent);
const WECHAT_JSSDK = 'https://res.wx.qq.com/open/js/jweixin-1.6.0.js';
// `stack` (and the dev gateway) send this to the sandbox's JS-SDK stand-in.
const SANDBOX_JSSDK = '/sandbox/jweixin.js';
const JS_API_LIST = ['updateAppMessageShareData', 'updateTimelineShareData', 'chooseWXPay'];

const POLL_INTERVAL_MS = 1000;
// About a minute after paying in a cashier; longer while a QR code waits for a phone.
const POLL_LIMIT = 60;
const QR_POLL_LIMIT = 300;
const PENDING_KEY = 'wxpay-demo.pending-order';

const STATUS_TEXT = {
  NOTPAY: '未支付',
  PAID: '已支付',
  CLOSED: '已关闭',
  REFUND: '已退款',
  PAYERROR: '支付失败',
};
const FINAL = new Set(['PAID', 'CLOSED', 'REFUND', 'PAYERROR']);

let user = null;
let jssdk = 'loading'; // loading | ready | error | unavailable
// Bumped for every new order, so an older order's polling stops.
let orderGeneration = 0;

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls one of the services and unwraps the `{code, data, message}` envelope. */
async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError('网络错误，请稍后重试', 0, -1);
  }
  let envelope = null;
  try {
    envelope = await res.json();
  } catch {
    // Not JSON: a proxy's error page, say.
  }
  if (!envelope || envelope.code !== 0) {
    throw new ApiError(envelope?.message || `服务器错误（HTTP ${res.status}）`, res.status, envelope?.code);
  }
  return envelope.data;
}

function pageUrl() {
  return location.href.split('#')[0];
}

function setText(id, text) {
  $(id).textContent = text;
}

function setState(id, state, text) {
  const el = $(id);
  el.dataset.state = state;
  el.textContent = text;
}

// ---------------------------------------------------------------- login

function login(scope) {
  location.href = `/api/wechat/redirect?url=${encodeURIComponent(location.href)}&scope=${scope}`;
}

async function loadUser() {
  try {
    user = await api('/api/wechat/getUserInfo');
  } catch (e) {
    user = null;
    if (e.status === 401) {
      setState('login-status', 'anonymous', '未登录：请先用微信登录，再发起支付。');
    } else {
      setState('login-status', 'error', `无法获取用户信息：${e.message}`);
    }
    $('user').hidden = true;
    $('login-actions').hidden = false;
    $('logout').hidden = true;
    return;
  }
  const nickname = user.nickname || '微信用户';
  setText('nickname', nickname);
  setText('openid', `openid：${user.openid}`);
  const avatar = $('avatar');
  if (user.headimgurl) {
    avatar.src = user.headimgurl;
    avatar.alt = `${nickname}的头像`;
    avatar.hidden = false;
  } else {
    avatar.hidden = true;
  }
  $('user').hidden = false;
  $('login-actions').hidden = true;
  $('logout').hidden = false;
  setState('login-status', 'signed-in', user.nickname ? '已登录' : '已登录（静默授权，没有昵称和头像）');
}

/** Forgets the order on screen: it belongs to the session that placed it. */
function clearOrder() {
  orderGeneration += 1;
  $('order').hidden = true;
  $('qr').hidden = true;
  message('');
}

async function logout() {
  clearOrder();
  try {
    await api('/api/auth/logout', { method: 'POST' });
  } catch {
    // The cookie may be gone already; the page state below is what matters.
  }
  await loadUser();
}

// ---------------------------------------------------------------- JS-SDK

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`无法加载 ${src}`));
    document.head.append(s);
  });
}

function setJssdk(state, text) {
  // WeChat may call ready even after error; a failure stays visible.
  if (jssdk === 'error' && state === 'ready') return;
  jssdk = state;
  setState('jssdk-status', state, text);
  const ready = state === 'ready';
  $('share-friend').disabled = !ready;
  $('share-timeline').disabled = !ready;
}

async function setUpJssdk() {
  const src = IN_WECHAT ? WECHAT_JSSDK : SANDBOX_JSSDK;
  setText('jssdk-source', IN_WECHAT ? '微信内：使用微信官方 JS-SDK' : '微信外：使用 wechat-sandbox 模拟的 JS-SDK');
  try {
    await loadScript(src);
  } catch (e) {
    setJssdk('unavailable', `JS-SDK 不可用：${e.message}。请在微信内打开，或改用 H5 / 扫码支付。`);
    return;
  }
  let cfg;
  try {
    cfg = await api(`/api/wechat/jssdkConfig?url=${encodeURIComponent(pageUrl())}`);
  } catch (e) {
    setJssdk('error', `无法获取 wx.config 签名：${e.message}`);
    return;
  }
  const wx = window.wx;
  wx.ready(() => setJssdk('ready', 'JS-SDK 已就绪：wx.config 签名验证通过'));
  wx.error((res) => setJssdk('error', `wx.config 失败：${res.errMsg}`));
  wx.config({
    debug: false,
    appId: cfg.appId,
    timestamp: cfg.timestamp,
    nonceStr: cfg.nonceStr,
    signature: cfg.signature,
    jsApiList: JS_API_LIST,
  });
}

function shareData() {
  return {
    title: 'wxpay 演示',
    desc: '微信登录、JS-SDK 分享和微信支付，一页走完',
    link: pageUrl(),
    imgUrl: new URL('icon.svg', location.href).href,
  };
}

function share(api, label) {
  window.wx[api]({
    ...shareData(),
    success: () => setState('share-status', 'ready', `已设置“${label}”的内容，可从右上角菜单分享。`),
    fail: (res) => setState('share-status', 'error', `设置“${label}”失败：${res.errMsg}`),
  });
}

// ---------------------------------------------------------------- pay

function idempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function amountError(message) {
  const input = $('amount');
  setText('amount-error', message);
  if (message) {
    input.setAttribute('aria-invalid', 'true');
  } else {
    input.removeAttribute('aria-invalid');
  }
}

function showOrder(outTradeNo, amountFen, status) {
  setText('order-no', outTradeNo);
  setText('order-amount', `¥${fenToYuan(amountFen)}`);
  showStatus(status);
  $('order').hidden = false;
}

function showStatus(status) {
  const out = $('order-status');
  out.dataset.status = status;
  out.textContent = `${STATUS_TEXT[status] || status}（${status}）`;
}

function message(text, state = 'info') {
  setState('pay-message', state, text);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Shows the order's status every second until it is final or `limit` polls
 * have passed; then asks pay-service to check with WeChat once (`sync`).
 */
async function follow(outTradeNo, limit, generation) {
  const path = `/api/pay/orders/${encodeURIComponent(outTradeNo)}`;
  for (let i = 0; i <= limit; i += 1) {
    if (generation !== orderGeneration) return;
    const last = i === limit;
    try {
      const order = await api(last ? `${path}?sync=true` : path);
      if (generation !== orderGeneration) return;
      showStatus(order.status);
      if (order.status === 'PAID') {
        message('支付成功，订单已确认。', 'ready');
        $('qr').hidden = true;
        return;
      }
      if (FINAL.has(order.status)) {
        message(`订单${STATUS_TEXT[order.status]}。`, 'error');
        return;
      }
    } catch (e) {
      message(`查询订单失败：${e.message}`, 'error');
    }
    if (!last) await sleep(POLL_INTERVAL_MS);
  }
  message('暂未收到支付结果，稍后可刷新页面查看。', 'error');
}

async function refreshOnce(outTradeNo) {
  try {
    const order = await api(`/api/pay/orders/${encodeURIComponent(outTradeNo)}`);
    showStatus(order.status);
  } catch (e) {
    message(`查询订单失败：${e.message}`, 'error');
  }
}

function payInWeChat(order, amountFen, generation) {
  const p = order.payParams;
  window.wx.chooseWXPay({
    // The JS-SDK spells it `timestamp`; the signed field is `timeStamp`.
    timestamp: p.timeStamp,
    nonceStr: p.nonceStr,
    package: p.package,
    signType: p.signType,
    paySign: p.paySign,
    success: () => {
      message('已付款，正在等待支付结果通知…');
      follow(order.outTradeNo, POLL_LIMIT, generation);
    },
    cancel: () => {
      message('已取消支付，订单未支付。', 'error');
      refreshOnce(order.outTradeNo);
    },
    fail: (res) => {
      message(`支付失败：${res.errMsg}`, 'error');
      refreshOnce(order.outTradeNo);
    },
  });
}

async function pay(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const parsed = yuanToFen($('amount').value);
  if (!parsed.ok) {
    amountError(parsed.error);
    $('amount').focus();
    return;
  }
  amountError('');
  if (!user) {
    message('请先登录：支付需要微信身份。', 'error');
    return;
  }
  const tradeType = form.elements.tradeType.value;
  if (tradeType === 'JSAPI' && jssdk !== 'ready') {
    message('JS-SDK 未就绪，无法发起公众号支付；请在微信内打开，或改用 H5 / 扫码支付。', 'error');
    return;
  }
  const body = {
    amountFen: parsed.fen,
    tradeType,
    description: form.elements.description.value.trim() || undefined,
  };
  if (tradeType === 'MWEB') body.redirectUrl = pageUrl();

  orderGeneration += 1;
  const generation = orderGeneration;
  $('qr').hidden = true;
  $('order').hidden = true;
  const submit = $('pay-submit');
  submit.disabled = true;
  message('正在下单…');
  let order;
  try {
    order = await api('/api/pay/orders', {
      method: 'POST',
      body,
      headers: { 'Idempotency-Key': idempotencyKey() },
    });
  } catch (e) {
    message(`下单失败：${e.message}`, 'error');
    return;
  } finally {
    submit.disabled = false;
  }
  showOrder(order.outTradeNo, parsed.fen, 'NOTPAY');

  if (tradeType === 'JSAPI') {
    message('请在收银台确认支付。');
    payInWeChat(order, parsed.fen, generation);
  } else if (tradeType === 'MWEB') {
    // WeChat's H5 cashier sends the browser back here; pick the order up then.
    sessionStorage.setItem(PENDING_KEY, JSON.stringify({ outTradeNo: order.outTradeNo, amountFen: parsed.fen }));
    message('正在前往微信支付…');
    location.href = order.mwebUrl;
  } else {
    const img = $('qr-img');
    img.src = `/api/pay/orders/${encodeURIComponent(order.outTradeNo)}/qrcode.svg`;
    // With the sandbox's JS-SDK, the sandbox can play the phone that scans.
    const sandboxBase = window.wx?.sandboxBase;
    const scan = $('qr-sandbox');
    scan.hidden = !(sandboxBase && order.codeUrl);
    if (!scan.hidden) {
      scan.href = `${sandboxBase}/sandbox/native?code_url=${encodeURIComponent(order.codeUrl)}`;
    }
    $('qr').hidden = false;
    message('等待扫码支付…');
    follow(order.outTradeNo, QR_POLL_LIMIT, generation);
  }
}

/** Back from the H5 cashier: follow the order that was being paid. */
function resumePending() {
  const raw = sessionStorage.getItem(PENDING_KEY);
  if (!raw) return;
  sessionStorage.removeItem(PENDING_KEY);
  let pending;
  try {
    pending = JSON.parse(raw);
  } catch {
    return;
  }
  if (typeof pending?.outTradeNo !== 'string') return;
  orderGeneration += 1;
  showOrder(pending.outTradeNo, pending.amountFen, 'NOTPAY');
  message('正在确认支付结果…');
  follow(pending.outTradeNo, POLL_LIMIT, orderGeneration);
}

// ---------------------------------------------------------------- start

// The authorize URL ends in #wechat_redirect, and a browser keeps a fragment
// across redirects that set none, so a silent (snsapi_base) login lands here
// with it. It is not the page's: drop it before anything reads location.href.
if (location.hash === '#wechat_redirect') {
  history.replaceState(history.state, '', pageUrl());
}

$('login-userinfo').addEventListener('click', () => login('snsapi_userinfo'));
$('login-base').addEventListener('click', () => login('snsapi_base'));
$('logout').addEventListener('click', logout);
$('share-friend').addEventListener('click', () => share('updateAppMessageShareData', '分享给朋友'));
$('share-timeline').addEventListener('click', () => share('updateTimelineShareData', '分享到朋友圈'));
$('pay-form').addEventListener('submit', pay);
$('amount').addEventListener('input', () => amountError(''));

if (!IN_WECHAT) {
  // Outside WeChat the JSAPI cashier only exists in the sandbox; H5 is the usual choice.
  $('pay-form').dataset.outsideWechat = 'true';
}

loadUser().then(resumePending);
setUpJssdk();
