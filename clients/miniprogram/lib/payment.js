// Paying: `/api/mp/v2Pay` creates the order and returns what
// `wx.requestPayment` needs; after WeChat's cashier closes, the order's status
// comes from wxpay (the payment result WeChat gives the mini program is only a
// hint: the server's record, fed by WeChat's notification, is the truth).

const { call } = require('./wxp');

// Exactly what `wx.requestPayment` takes. `signType` is whatever the server
// chose (MD5 or HMAC-SHA256 on APIv2, RSA on APIv3): passed on untouched,
// because `paySign` was computed for it.
const PAY_FIELDS = ['timeStamp', 'nonceStr', 'package', 'signType', 'paySign'];

/** `/api/mp/v2Pay?money=M` (`M` in yuan, as typed; the server checks it). */
function placeOrder(api, token, money) {
  return api.get('/api/mp/v2Pay', { token, query: { money } });
}

/** The server's reply reduced to `wx.requestPayment`'s parameters. */
function paymentParams(reply) {
  const params = {};
  for (const field of PAY_FIELDS) {
    const value = reply && reply[field];
    if (typeof value !== 'string' || value === '') {
      throw new Error(`the server's payment parameters lack ${field}`);
    }
    params[field] = value;
  }
  return params;
}

/**
 * Opens WeChat's cashier: → 'paid' when the person paid, 'cancelled' when they
 * closed it; rejects with WeChat's errMsg otherwise.
 */
async function requestPayment(wx, params) {
  try {
    await call(wx, 'requestPayment', params);
    return 'paid';
  } catch (err) {
    const errMsg = (err && err.errMsg) || String(err);
    if (errMsg === 'requestPayment:fail cancel') return 'cancelled';
    throw new Error(errMsg);
  }
}

/**
 * The order as wxpay has it. `sync` asks wxpay to check with WeChat first, for
 * the moment right after the cashier says paid and before WeChat's
 * notification may have arrived.
 */
function orderStatus(api, token, outTradeNo, { sync = false } = {}) {
  return api.get(`/api/pay/orders/${encodeURIComponent(outTradeNo)}`, {
    token,
    query: sync ? { sync: 'true' } : undefined,
  });
}

module.exports = { placeOrder, paymentParams, requestPayment, orderStatus, PAY_FIELDS };
