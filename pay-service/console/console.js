// The operator console: one page, hash routes, the admin JSON API.
//
// Signed in, the session cookie is HttpOnly: this script never sees it. It
// keeps only the CSRF token (from the sign-in reply or GET session) in
// memory and sends it as X-CSRF-Token with every write. Everything shown is
// built with createElement/textContent: no server text is parsed as HTML.

import { fenToYuan, yuanToFen } from './money.js';

const API = '/api/pay/admin';
const BEIJING = 'Asia/Shanghai';
const BEIJING_OFFSET_S = 8 * 3600;
const PAGE_SIZE = 50;

const STATUS = {
  NOTPAY: '未支付',
  PAID: '已支付',
  CLOSED: '已关闭',
  REFUND: '有退款',
  PAYERROR: '支付失败',
};
const TRADE_TYPES = { JSAPI: '公众号/小程序', MWEB: 'H5', NATIVE: '扫码' };
const EVENT_STATES = { pending: '待投递', failed: '投递失败', delivered: '已投递' };
const DISCREPANCY_KINDS = {
  MISSING_LOCAL: '本地无此交易',
  MISSING_AT_WECHAT: '微信账单无此交易',
  AMOUNT_MISMATCH: '金额不一致',
  STATUS_MISMATCH: '状态不一致',
};
const CHARTS = [
  ['paid-hourly', '每小时支付金额与笔数', 'Paid per hour (last 24 h)'],
  ['paid-daily', '每日支付金额与笔数', 'Paid per day (last 30 days)'],
  ['success-ratio', '每日支付成功率', 'Payment success ratio'],
  ['notify-delay', '支付通知延迟（微信完成 → 本地提交）', 'Notification delay p50/p90'],
];

/** {operator, csrfToken, expiresAt} while signed in; memory only. */
let session = null;
/** Bumped on every render: a late answer for an older view is dropped. */
let renderSeq = 0;
/** A message to show once on the next render (e.g. after a refund). */
let flash = null;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- helpers

/** An element with attributes (`on*` are listeners) and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const yuan = (fen) => (fen === null || fen === undefined ? '—' : `¥${fenToYuan(fen)}`);
const text = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));

/** Unix seconds → "2026-12-01 09:30:00" in Beijing time. */
function when(unix) {
  if (unix === null || unix === undefined) return '—';
  return new Date(unix * 1000).toLocaleString('sv-SE', { timeZone: BEIJING });
}

/** "YYYY-MM-DD" (a Beijing day) → unix seconds of its start. */
function dayStart(date) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return null;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / 1000 - BEIJING_OFFSET_S;
}

function statusBadge(status) {
  const cls = { PAID: 'ok', REFUND: 'warn', CLOSED: '', NOTPAY: '', PAYERROR: 'bad' }[status] ?? '';
  return h('span', { class: `badge ${cls}`, dataset: { status } }, `${STATUS[status] ?? status}`, h('small', {}, ` ${status}`));
}

function stateBadge(state) {
  const cls = { delivered: 'ok', failed: 'bad', pending: 'warn' }[state] ?? '';
  return h('span', { class: `badge ${cls}`, dataset: { state } }, EVENT_STATES[state] ?? state);
}

function orderLink(no) {
  return h('a', { href: `#/orders/${encodeURIComponent(no)}`, class: 'mono' }, no);
}

function table(headers, rows, empty) {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  const head = h('tr', {}, headers.map(([label, cls]) => h('th', { class: cls, scope: 'col' }, label)));
  return h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, head), h('tbody', {}, rows)));
}

function td(content, cls) {
  return h('td', { class: cls }, content);
}

/** One key per confirmation: the same refund however often it is sent. */
function newIdempotencyKey() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the admin API; answers `data`, throws ApiError (a 401 also signs out). */
async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && session) init.headers['X-CSRF-Token'] = session.csrfToken;
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, '网络错误，请检查连接后重试（network error）');
  }
  let json = null;
  try {
    json = await res.json();
  } catch {
    // Not JSON (a gateway's error page): the status speaks.
  }
  if (res.ok && json && json.code === 0) return json.data;
  const message = json?.message || `HTTP ${res.status}`;
  if (res.status === 401 && session && !path.startsWith(`${API}/session`)) {
    session = null;
    showSignIn('登录已过期，请重新登录。');
  }
  throw new ApiError(res.status, message, json?.code);
}

function errorText(e) {
  if (!(e instanceof ApiError)) return `出错了：${e.message}`;
  const zh = {
    0: '',
    400: '请求有误',
    401: '未登录或令牌不正确',
    403: '没有权限（CSRF 校验失败或来源不符）',
    404: '不存在',
    409: '与当前状态冲突',
    429: '尝试过于频繁，请稍后再试',
    502: '微信接口暂时不可用',
    503: '服务暂时不可用',
  }[e.status];
  return zh ? `${zh}：${e.message}` : e.message;
}

// ---------------------------------------------------------------- session

function showSignIn(message = '') {
  $('boot').hidden = true;
  $('nav').hidden = true;
  $('who').hidden = true;
  $('view').hidden = true;
  $('view').replaceChildren();
  $('signin').hidden = false;
  $('signin-error').textContent = message;
  $('token').focus();
}

function showConsole() {
  $('boot').hidden = true;
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('operator').textContent = session.operator;
  $('view').hidden = false;
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    location.replace('#/orders');
  }
  render();
}

async function signIn(event) {
  event.preventDefault();
  const input = $('token');
  const token = input.value.trim();
  if (!token) {
    $('signin-error').textContent = '请输入管理令牌';
    input.setAttribute('aria-invalid', 'true');
    return;
  }
  const button = event.submitter ?? $('signin-form').querySelector('button');
  button.disabled = true;
  $('signin-error').textContent = '';
  try {
    session = await api(`${API}/session`, { method: 'POST', body: { token } });
    input.value = '';
    input.removeAttribute('aria-invalid');
    showConsole();
  } catch (e) {
    input.setAttribute('aria-invalid', 'true');
    $('signin-error').textContent =
      e.status === 401 ? `令牌不正确（${e.message}）` : errorText(e);
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  try {
    await api(`${API}/session`, { method: 'DELETE' });
  } catch (e) {
    // 401: the session had already ended. Anything else: the server still
    // holds it (and the cookie), so saying "signed out" would be a lie on a
    // shared machine.
    if (e.status !== 401) {
      flash = `退出登录失败，会话仍然有效 / sign-out failed: ${errorText(e)}`;
      await render();
      return;
    }
  }
  session = null;
  showSignIn('已退出登录。');
}

// ---------------------------------------------------------------- routing

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const decode = (part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part; // a hand-typed "%": shown as typed, answered 404 by the API
    }
  };
  const parts = path.split('/').filter(Boolean).map(decode);
  return { parts, params: new URLSearchParams(query) };
}

async function render() {
  if (!session) return;
  const seq = ++renderSeq;
  const { parts, params } = parseHash();
  const [section = 'orders', arg] = parts;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.route === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = $('view');
  view.dataset.state = 'loading';
  view.dataset.route = section;
  const views = {
    orders: () => (arg ? orderView(arg) : ordersView(params)),
    events: () => eventsView(params),
    reconciliations: () => (arg ? dayView(arg) : daysView()),
    charts: () => chartsView(),
  };
  const build = views[section] ?? (() => [h('p', { class: 'error' }, `没有这个页面：${section}`)]);
  let nodes;
  try {
    nodes = await build();
  } catch (e) {
    if (!session) return;
    nodes = [h('section', { class: 'card' }, h('p', { class: 'error', role: 'alert' }, errorText(e)))];
  }
  if (seq !== renderSeq) return;
  const shown = flash;
  flash = null;
  view.replaceChildren(...(shown ? [h('p', { class: 'notice card', role: 'status', id: 'flash' }, shown)] : []), ...nodes);
  // What was rendered: a test (or a script) waits for the view of the
  // current hash, not for the previous one that is still on screen.
  view.dataset.hash = location.hash;
  view.dataset.state = 'ready';
}

// ---------------------------------------------------------------- orders

function field(label, control, cls) {
  return h('div', { class: `field ${cls ?? ''}` }, h('label', { for: control.id }, label), control);
}

function select(id, options, value) {
  return h(
    'select',
    { id, name: id },
    h('option', { value: '' }, '全部'),
    Object.entries(options).map(([v, label]) => h('option', { value: v, selected: v === value }, `${label} (${v})`)),
  );
}

function ordersQuery(params) {
  const q = new URLSearchParams();
  for (const k of ['status', 'tradeType', 'api', 'minFen', 'maxFen', 'q', 'cursor']) {
    if (params.get(k)) q.set(k, params.get(k));
  }
  const from = dayStart(params.get('from') ?? '');
  const to = dayStart(params.get('to') ?? '');
  if (from !== null) q.set('from', String(from));
  // The last day is included: up to the start of the next one.
  if (to !== null) q.set('to', String(to + 86400));
  q.set('limit', String(PAGE_SIZE));
  return q;
}

function filterForm(params) {
  const fenParam = (k) => (params.get(k) ? fenToYuan(params.get(k)) : '');
  const form = h(
    'form',
    { id: 'order-filters', class: 'filters', role: 'search', novalidate: true },
    field('状态', select('status', STATUS, params.get('status'))),
    field('交易类型', select('tradeType', TRADE_TYPES, params.get('tradeType'))),
    field('API 版本', select('api', { v3: 'APIv3', v2: 'APIv2' }, params.get('api'))),
    field('起始日期（北京时间）', h('input', { id: 'from', type: 'date', value: params.get('from') ?? '' })),
    field('截止日期（含）', h('input', { id: 'to', type: 'date', value: params.get('to') ?? '' })),
    field('最低金额（元）', h('input', { id: 'min-yuan', inputmode: 'decimal', value: fenParam('minFen') })),
    field('最高金额（元）', h('input', { id: 'max-yuan', inputmode: 'decimal', value: fenParam('maxFen') })),
    field(
      '搜索商户订单号 / 微信支付单号',
      h('input', { id: 'q', type: 'search', value: params.get('q') ?? '', placeholder: 'out_trade_no 或 transaction_id' }),
      'wide',
    ),
  );
  const error = h('p', { id: 'filter-error', class: 'error', role: 'alert' });
  const actions = h(
    'div',
    { class: 'actions' },
    h('button', { type: 'submit', class: 'btn', form: 'order-filters' }, '查询'),
    h('button', { type: 'button', class: 'btn secondary', onclick: () => (location.hash = '#/orders') }, '重置'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const id of ['status', 'tradeType', 'api', 'from', 'to']) {
      const v = form.querySelector(`#${id}`).value;
      if (v) next.set(id, v);
    }
    for (const [id, key, label] of [['min-yuan', 'minFen', '最低金额'], ['max-yuan', 'maxFen', '最高金额']]) {
      const input = form.querySelector(`#${id}`);
      input.removeAttribute('aria-invalid');
      if (!input.value.trim()) continue;
      const r = yuanToFen(input.value);
      if (!r.ok) {
        input.setAttribute('aria-invalid', 'true');
        error.textContent = `${label}：${r.error}`;
        return;
      }
      next.set(key, String(r.fen));
    }
    const q = form.querySelector('#q').value.trim();
    if (q) next.set('q', q);
    error.textContent = '';
    const hash = `#/orders${next.toString() ? `?${next}` : ''}`;
    if (location.hash === hash) render();
    else location.hash = hash;
  });
  return [form, error, actions];
}

async function ordersView(params) {
  const filters = h(
    'section',
    { class: 'card', 'aria-labelledby': 'orders-title' },
    h('h2', { id: 'orders-title' }, '订单 ', h('small', {}, 'Orders')),
    filterForm(params),
  );
  let page;
  try {
    page = await api(`${API}/orders?${ordersQuery(params)}`);
  } catch (e) {
    // A refused filter keeps the form on screen, to be corrected.
    if (e.status !== 400) throw e;
    return [filters, h('section', { class: 'card' }, h('p', { class: 'error', role: 'alert' }, errorText(e)))];
  }
  const rows = page.items.map((o) =>
    h(
      'tr',
      { dataset: { outTradeNo: o.outTradeNo } },
      td(orderLink(o.outTradeNo)),
      td(statusBadge(o.status)),
      td(`${TRADE_TYPES[o.tradeType] ?? o.tradeType}`),
      td(o.api),
      td(yuan(o.amountFen), 'num'),
      td(o.refundedFen ? yuan(o.refundedFen) : '—', 'num'),
      td(text(o.transactionId), 'mono'),
      td(text(o.description), 'wrap'),
      td(when(o.createdAt)),
      td(when(o.paidAt)),
    ),
  );
  const pager = h('div', { class: 'actions' });
  if (params.get('cursor')) {
    const first = new URLSearchParams(params);
    first.delete('cursor');
    pager.append(h('a', { class: 'btn secondary', href: `#/orders?${first}` }, '回到第一页'));
  }
  if (page.nextCursor) {
    const next = new URLSearchParams(params);
    next.set('cursor', page.nextCursor);
    pager.append(h('a', { class: 'btn secondary', id: 'next-page', href: `#/orders?${next}` }, '下一页'));
  }
  return [
    filters,
    h(
      'section',
      { class: 'card', 'aria-label': '订单列表' },
      table(
        [['商户订单号'], ['状态'], ['交易类型'], ['API'], ['金额', 'num'], ['已退款', 'num'], ['微信支付单号'], ['描述'], ['创建时间'], ['支付时间']],
        rows,
        '没有符合条件的订单。',
      ),
      pager,
    ),
  ];
}

// ---------------------------------------------------------------- one order

async function orderView(no) {
  const d = await api(`${API}/orders/${encodeURIComponent(no)}`);
  const o = d.order;
  const facts = [
    ['商户订单号', h('span', { class: 'mono', id: 'order-no' }, o.outTradeNo)],
    ['状态', statusBadge(o.status)],
    ['金额', h('span', { id: 'order-amount' }, yuan(o.amountFen))],
    ['已退款', h('span', { id: 'order-refunded' }, yuan(o.refundedFen))],
    ['已申请退款（含处理中）', yuan(o.refundReservedFen)],
    ['可退金额', h('strong', { id: 'order-refundable' }, yuan(o.refundableFen))],
    ['交易类型', `${TRADE_TYPES[o.tradeType] ?? o.tradeType} (${o.tradeType})`],
    ['API 版本', o.api],
    ['微信支付单号', h('span', { class: 'mono' }, text(o.transactionId))],
    ['描述', text(o.description)],
    ['用户', text(o.userId)],
    ['创建时间', when(o.createdAt)],
    ['支付时间（微信）', when(o.paidAt)],
    ['过期时间', when(o.expiresAt)],
  ];
  return [
    h('p', {}, h('a', { href: '#/orders' }, '← 返回订单列表')),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'order-title' },
      h('h2', { id: 'order-title' }, '订单详情 ', h('small', {}, 'Order')),
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    ),
    refundCard(o),
    section('history-title', '状态历史', 'Status history', transitionsTable(d.transitions)),
    section('notifications-title', '通知', 'Notifications received', notificationsTable(d.notifications)),
    section('refunds-title', '退款', 'Refunds', refundsTable(d.refunds)),
    section('events-title', '商户事件', 'Merchant events', eventsTable(d.events, () => render())),
  ];
}

function section(id, zh, en, content) {
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, `${zh} `, h('small', {}, en)), content);
}

function transitionsTable(list) {
  const rows = list.map((t) =>
    h('tr', {}, td(when(t.at)), td(t.from ? statusBadge(t.from) : '—'), td(statusBadge(t.to)), td(text(t.source)), td(text(t.requestId), 'mono')),
  );
  return table([['时间'], ['原状态'], ['新状态'], ['来源'], ['请求 ID']], rows, '没有状态变化记录。');
}

function notificationsTable(list) {
  const rows = list.map((n) =>
    h(
      'tr',
      {},
      td(when(n.receivedAt)),
      td(text(n.kind)),
      td(n.signVerified ? h('span', { class: 'badge ok' }, '验签通过') : h('span', { class: 'badge bad' }, '验签失败')),
      td(text(n.outcome)),
      td(text(n.detail), 'wrap'),
    ),
  );
  return table([['收到时间'], ['类型'], ['签名'], ['处理结果'], ['原因 / 说明']], rows, '没有收到通知。');
}

function refundsTable(list) {
  const rows = list.map((r) =>
    h(
      'tr',
      { dataset: { outRefundNo: r.outRefundNo } },
      td(r.outRefundNo, 'mono'),
      td(yuan(r.amountFen), 'num'),
      td(h('span', { class: `badge ${r.status === 'SUCCESS' ? 'ok' : r.status === 'PROCESSING' ? 'warn' : 'bad'}` }, r.status)),
      td(text(r.reason), 'wrap'),
      td(text(r.operator)),
      td(when(r.createdAt)),
      td(when(r.succeededAt)),
      td(text(r.error), 'wrap'),
    ),
  );
  return table([['退款单号'], ['金额', 'num'], ['状态'], ['原因'], ['操作员'], ['申请时间'], ['成功时间'], ['错误']], rows, '没有退款。');
}

function eventsTable(list, after) {
  const rows = list.map((e) => {
    const retry =
      e.state === 'failed'
        ? h('button', { type: 'button', class: 'btn secondary', onclick: (ev) => retryEvent(e.id, ev.currentTarget, after) }, '重试')
        : null;
    return h(
      'tr',
      { dataset: { eventId: e.id, state: e.state } },
      td(String(e.id), 'num'),
      e.outTradeNo !== undefined ? td(orderLink(e.outTradeNo)) : null,
      td(text(e.eventType ?? e.type), 'mono'),
      td(stateBadge(e.state)),
      td(String(e.attempts), 'num'),
      td(text(e.lastError), 'wrap'),
      td(when(e.lastAttemptAt)),
      td(when(e.deliveredAt)),
      td(when(e.createdAt)),
      td(retry),
    );
  });
  const withOrder = list.some((e) => e.outTradeNo !== undefined);
  const headers = [['ID', 'num'], ...(withOrder ? [['订单']] : []), ['事件类型'], ['状态'], ['尝试次数', 'num'], ['最后错误'], ['最后尝试'], ['送达时间'], ['创建时间'], ['操作']];
  return table(headers, rows, '没有商户事件。');
}

async function retryEvent(id, button, after) {
  button.disabled = true;
  try {
    await api(`${API}/events/${encodeURIComponent(id)}/retry`, { method: 'POST' });
    flash = `事件 ${id} 已安排立即重试。`;
    after();
  } catch (e) {
    button.disabled = false;
    button.after(h('span', { class: 'error', role: 'alert' }, ` ${errorText(e)}`));
  }
}

// ---------------------------------------------------------------- refund

function refundCard(order) {
  const amount = h('input', { id: 'refund-yuan', inputmode: 'decimal', autocomplete: 'off', 'aria-describedby': 'refund-hint' });
  const reason = h('input', { id: 'refund-reason', maxlength: '80', autocomplete: 'off' });
  const error = h('p', { id: 'refund-error', class: 'error', role: 'alert' });
  const confirmBox = h('div', { id: 'refund-confirm', class: 'confirm', role: 'group', 'aria-label': '确认退款', hidden: true });
  const start = h('button', { type: 'submit', class: 'btn', id: 'refund-start' }, '退款…');
  const form = h(
    'form',
    { id: 'refund-form', novalidate: true },
    h('div', { class: 'filters' }, field('退款金额（元）', amount), field('退款原因（可选）', reason, 'wide')),
    h('p', { id: 'refund-hint', class: 'muted' }, '可退金额：', h('strong', {}, yuan(order.refundableFen)), '。金额按分精确换算，不做四舍五入。'),
    error,
    h('div', { class: 'actions' }, start),
    confirmBox,
  );
  const refundable = order.refundableFen ?? 0;
  if (refundable <= 0) {
    amount.disabled = true;
    start.disabled = true;
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.textContent = '';
    amount.removeAttribute('aria-invalid');
    const r = yuanToFen(amount.value);
    if (!r.ok) return refuse(r.error);
    if (r.fen > refundable) return refuse(`超过可退金额 ${yuan(refundable)}`);
    openConfirmation(order, r.fen, reason.value.trim(), { confirmBox, amount, reason, start, error });
    return undefined;
  });
  function refuse(message) {
    amount.setAttribute('aria-invalid', 'true');
    error.textContent = message;
    confirmBox.hidden = true;
  }
  return h('section', { class: 'card', 'aria-labelledby': 'refund-title' }, h('h2', { id: 'refund-title' }, '退款 ', h('small', {}, 'Refund')), form);
}

/**
 * The confirmation step. Its one Idempotency-Key goes with every send from
 * it: a double click, or a retry after a lost answer, refunds once.
 */
function openConfirmation(order, fen, reason, ui) {
  const key = newIdempotencyKey();
  let busy = false;
  const ok = h('button', { type: 'button', class: 'btn danger', id: 'refund-confirm-button' }, '确认退款');
  const cancel = h('button', { type: 'button', class: 'btn secondary' }, '取消');
  const status = h('p', { class: 'error', role: 'alert', id: 'refund-confirm-error' });
  ui.confirmBox.replaceChildren(
    h('p', {}, '确认向订单 ', h('span', { class: 'mono' }, order.outTradeNo), ' 退款 ', h('strong', { id: 'refund-confirm-amount' }, yuan(fen)), `（${fen} 分）？`),
    reason ? h('p', { class: 'muted' }, `原因：${reason}`) : null,
    h('div', { class: 'actions' }, ok, cancel),
    status,
  );
  ui.confirmBox.dataset.key = key;
  ui.confirmBox.hidden = false;
  for (const el of [ui.amount, ui.reason, ui.start]) el.disabled = true;
  ok.focus();

  cancel.addEventListener('click', () => {
    ui.confirmBox.hidden = true;
    ui.confirmBox.replaceChildren();
    for (const el of [ui.amount, ui.reason, ui.start]) el.disabled = false;
  });
  ok.addEventListener('click', async () => {
    if (busy) return;
    busy = true;
    ok.disabled = true;
    cancel.disabled = true;
    status.textContent = '正在提交退款…';
    try {
      const refund = await api(`${API}/orders/${encodeURIComponent(order.outTradeNo)}/refunds`, {
        method: 'POST',
        headers: { 'Idempotency-Key': key },
        body: reason ? { amountFen: fen, reason } : { amountFen: fen },
      });
      flash = `退款已提交：${refund.outRefundNo}，${yuan(refund.amountFen)}，状态 ${refund.status}。`;
      render();
    } catch (e) {
      // The same key again is safe: a refund that did go through is answered, not repeated.
      status.textContent = `${errorText(e)}。可再次点击“确认退款”重试，不会重复退款。`;
      busy = false;
      ok.disabled = false;
      cancel.disabled = false;
    }
  });
}

// ---------------------------------------------------------------- events

async function eventsView(params) {
  const current = EVENT_STATES[params.get('status')] ? params.get('status') : 'failed';
  const list = await api(`${API}/events?status=${current}&limit=200`);
  const tabs = h(
    'div',
    { class: 'tabs', role: 'tablist', 'aria-label': '事件状态' },
    Object.entries(EVENT_STATES).map(([state, label]) =>
      h(
        'button',
        {
          type: 'button',
          role: 'tab',
          class: 'btn secondary',
          'aria-selected': state === current ? 'true' : 'false',
          onclick: () => (location.hash = `#/events?status=${state}`),
        },
        `${label} `,
        h('small', {}, state),
      ),
    ),
  );
  return [
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'events-title' },
      h('h2', { id: 'events-title' }, '商户事件 ', h('small', {}, 'Merchant events')),
      tabs,
      h('div', { role: 'tabpanel' }, eventsTable(list, () => render())),
    ),
  ];
}

// ---------------------------------------------------------------- reconciliation

async function daysView() {
  const days = await api(`${API}/reconciliations`);
  const rows = days.map((d) =>
    h(
      'tr',
      { class: 'clickable', dataset: { date: d.date }, onclick: () => (location.hash = `#/reconciliations/${d.date}`) },
      td(h('a', { href: `#/reconciliations/${d.date}` }, d.date)),
      td(text(d.api)),
      td(String(d.billRows), 'num'),
      td(String(d.matched), 'num'),
      td(h('span', { class: `badge ${d.discrepancies > 0 ? 'bad' : 'ok'}` }, String(d.discrepancies)), 'num'),
      td(when(d.reconciledAt)),
    ),
  );
  const date = h('input', { id: 'run-date', type: 'date', required: true });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'actions', novalidate: true },
    h('label', { for: 'run-date' }, '对账日期（北京时间）'),
    date,
    h('button', { type: 'submit', class: 'btn secondary' }, '对账这一天'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!date.value) {
      error.textContent = '请选择日期';
      return;
    }
    try {
      await api(`${API}/reconciliations?date=${date.value}`, { method: 'POST' });
      location.hash = `#/reconciliations/${date.value}`;
    } catch (e) {
      error.textContent = errorText(e);
    }
  });
  return [
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'days-title' },
      h('h2', { id: 'days-title' }, '对账 ', h('small', {}, 'Reconciliation by day')),
      table([['日期'], ['API'], ['账单笔数', 'num'], ['一致', 'num'], ['差异', 'num'], ['对账时间']], rows, '还没有对账记录。'),
      form,
      error,
    ),
  ];
}

async function dayView(date) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new Error(`日期格式不正确：${date}`);
  const day = await api(`${API}/reconciliations?date=${date}`);
  const rows = day.discrepancies.map((x) =>
    h(
      'tr',
      { dataset: { kind: x.kind, outTradeNo: x.outTradeNo } },
      td(h('span', { class: 'badge bad' }, DISCREPANCY_KINDS[x.kind] ?? x.kind), undefined),
      td(x.kind === 'MISSING_LOCAL' ? h('span', { class: 'mono' }, x.outTradeNo) : orderLink(x.outTradeNo)),
      td(text(x.outRefundNo), 'mono'),
      td(text(x.transactionId), 'mono'),
      td(x.localFen === undefined ? '—' : yuan(x.localFen), 'num'),
      td(x.wechatFen === undefined ? '—' : yuan(x.wechatFen), 'num'),
      td(text(x.localStatus)),
      td(text(x.wechatStatus)),
    ),
  );
  const error = h('p', { class: 'error', role: 'alert' });
  const rerun = h('button', { type: 'button', class: 'btn', id: 'rerun' }, '重新对账');
  rerun.addEventListener('click', async () => {
    rerun.disabled = true;
    error.textContent = '';
    try {
      const result = await api(`${API}/reconciliations?date=${date}`, { method: 'POST' });
      flash = `已重新对账：${result.billRows} 笔，${result.matched} 笔一致，${result.discrepancies.length} 处差异。`;
      render();
    } catch (e) {
      error.textContent = errorText(e);
      rerun.disabled = false;
    }
  });
  return [
    h('p', {}, h('a', { href: '#/reconciliations' }, '← 返回对账列表')),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'day-title' },
      h('h2', { id: 'day-title' }, `${day.date} 对账结果 `, h('small', {}, 'Reconciliation')),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, '账单笔数'),
        h('dd', {}, String(day.billRows)),
        h('dt', {}, '一致'),
        h('dd', {}, String(day.matched)),
        h('dt', {}, '差异'),
        h('dd', { id: 'day-discrepancies' }, String(day.discrepancies.length)),
      ),
      h('div', { class: 'actions' }, rerun),
      error,
    ),
    section(
      'discrepancies-title',
      '差异',
      'Discrepancies',
      table([['类型'], ['商户订单号'], ['退款单号'], ['微信支付单号'], ['本地金额', 'num'], ['微信金额', 'num'], ['本地状态'], ['微信状态']], rows, '这一天没有差异。'),
    ),
  ];
}

// ---------------------------------------------------------------- charts

function chartsView() {
  const figures = CHARTS.map(([name, zh, en]) => {
    const img = h('img', { src: `${API}/charts/${name}.svg`, alt: zh, id: `chart-${name}`, width: '640', height: '320' });
    const caption = h('figcaption', {}, `${zh} `, h('small', {}, en));
    img.addEventListener('error', () => caption.append(h('span', { class: 'error' }, ' 图表加载失败')));
    return h('figure', {}, img, caption);
  });
  return [
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'charts-title' },
      h('h2', { id: 'charts-title' }, '图表 ', h('small', {}, 'Charts (Beijing time)')),
      h('div', { class: 'charts' }, figures),
    ),
  ];
}

// ---------------------------------------------------------------- start

async function boot() {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => render());
  try {
    session = await api(`${API}/session`);
    showConsole();
  } catch (e) {
    showSignIn(e.status === 401 ? '' : errorText(e));
  }
}

boot();
