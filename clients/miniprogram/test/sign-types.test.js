// `wx.requestPayment` gets the signType the server chose, untouched: a stack
// configured for HMAC-SHA256 pays through the sandbox's cashier (which checks
// paySign with that algorithm), and an APIv3 reply (RSA) passes through as is.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startStack } = require('./support/stack');
const { createWx } = require('./support/wx');
const { createApi } = require('../lib/api');
const payment = require('../lib/payment');
const { createShop } = require('../lib/shop');

let stack;

before(async () => {
  stack = await startStack({ PAY_API_VERSION: 'v2', PAY_SIGN_TYPE: 'HMAC-SHA256' });
});

after(() => stack && stack.stop());

test('HMAC-SHA256 pay params reach wx.requestPayment as the server sent them', async () => {
  const wx = await createWx({ sandbox: stack.sandbox, user: 'u2' });
  const shop = createShop({ wx, api: createApi(wx.request, stack.base), setData: () => {} });
  const result = await shop.pay('1.23');
  assert.equal(result.outcome, 'paid');
  assert.equal(result.order.status, 'PAID');
  assert.equal(result.order.amountFen, 123);
  assert.equal(wx.payments.length, 1);
  assert.equal(wx.payments[0].signType, 'HMAC-SHA256');
  // HMAC-SHA256 signs are 64 hex digits; MD5's are 32.
  assert.match(wx.payments[0].paySign, /^[0-9A-F]{64}$/);
});

test('an RSA (APIv3) reply is passed on field for field, appId and outTradeNo left out', () => {
  const reply = {
    outTradeNo: '20260101000000abc',
    appId: 'wx5a1d0b0c0b000002',
    timeStamp: '1700000000',
    nonceStr: 'n0nce',
    package: 'prepay_id=wx123',
    signType: 'RSA',
    paySign: 'base64/RSA+signature==',
  };
  assert.deepEqual(payment.paymentParams(reply), {
    timeStamp: '1700000000',
    nonceStr: 'n0nce',
    package: 'prepay_id=wx123',
    signType: 'RSA',
    paySign: 'base64/RSA+signature==',
  });
});

test('a reply missing a pay field is not sent to WeChat', () => {
  for (const field of payment.PAY_FIELDS) {
    const reply = {
      timeStamp: '1',
      nonceStr: 'n',
      package: 'prepay_id=p',
      signType: 'MD5',
      paySign: 'S',
    };
    delete reply[field];
    assert.throws(() => payment.paymentParams(reply), new RegExp(`lack ${field}$`));
  }
});
