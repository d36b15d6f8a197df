// What the index page shows and does, without the page: `setData` receives
// every change, so node can test it with the same code the page runs.

const session = require('./session');
const payment = require('./payment');
const { ApiError } = require('./api');

const STATUS_TEXT = {
  NOTPAY: '未支付',
  PAID: '已支付',
  CLOSED: '已关闭',
  REFUND: '已退款',
  PAYERROR: '支付失败',
};

/** One line for the person: the server's own message and code, or WeChat's errMsg. */
function describeError(err) {
  if (err instanceof ApiError) {
    if (err.status === 0) return `网络错误：${err.message}`;
    return `${err.message}（${err.code}）`;
  }
  return (err && (err.errMsg || err.message)) || String(err);
}

function orderView(order) {
  return {
    outTradeNo: order.outTradeNo,
    status: order.status,
    statusText: STATUS_TEXT[order.status] || order.status,
    amountFen: order.amountFen,
  };
}

/**
 * `wx` is the mini program's `wx` (or a stand-in), `api` from createApi,
 * `setData` the page's `this.setData` (bound).
 */
function createShop({ wx, api, setData }) {
  let current = session.storedSession(wx);
  let lastOrderNo = '';

  async function step(busy, work) {
    setData({ busy, error: '', message: '' });
    try {
      return await work();
    } catch (err) {
      setData({ error: describeError(err) });
      return undefined;
    } finally {
      setData({ busy: '' });
    }
  }

  async function ensureSession() {
    if (!current) current = await session.signIn(wx, api);
    setData({ signedIn: true, openid: current.openid });
    return current;
  }

  // Runs `work(session)`; a token the server no longer takes (1002: expired,
  // logged out, another SESSION_SECRET) gets one fresh sign-in and a retry.
  async function withSession(work) {
    const s = await ensureSession();
    try {
      return await work(s);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 1002)) throw err;
      current = null;
      session.forget(wx);
      return work(await ensureSession());
    }
  }

  return {
    /** The page's first data. */
    initial() {
      return {
        signedIn: Boolean(current),
        openid: current ? current.openid : '',
        nickName: '',
        order: null,
        busy: '',
        message: '',
        error: '',
      };
    },

    signIn() {
      return step('signIn', async () => {
        current = null;
        session.forget(wx);
        return ensureSession();
      });
    },

    saveProfile(userInfo) {
      return step('profile', async () => {
        const user = await withSession(async (s) => {
          await session.saveProfile(api, s.token, userInfo);
          return session.me(api, s.token);
        });
        setData({ nickName: user.nickname || '', message: '资料已保存' });
        return user;
      });
    },

    pay(money) {
      return step('pay', async () => {
        // Only placing the order may be retried after a fresh sign-in: once
        // the cashier has opened, retrying would mean a second order.
        const reply = await withSession((s) => payment.placeOrder(api, s.token, money));
        lastOrderNo = reply.outTradeNo;
        const outcome = await payment.requestPayment(wx, payment.paymentParams(reply));
        const order = await withSession((s) =>
          payment.orderStatus(api, s.token, reply.outTradeNo, { sync: outcome === 'paid' }),
        );
        const view = orderView(order);
        setData({
          order: view,
          message: outcome === 'paid' ? `支付完成：${view.statusText}` : '已取消支付',
        });
        return { outTradeNo: reply.outTradeNo, outcome, order };
      });
    },

    /** Shows the order's status as wxpay has it now. */
    refresh() {
      return step('refresh', async () => {
        if (!lastOrderNo) return undefined;
        const order = await withSession((s) =>
          payment.orderStatus(api, s.token, lastOrderNo, { sync: true }),
        );
        setData({ order: orderView(order) });
        return order;
      });
    },
  };
}

module.exports = { createShop, describeError, STATUS_TEXT };
