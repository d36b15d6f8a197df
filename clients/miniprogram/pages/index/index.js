// The one page: its handlers only forward to lib/shop.js.
const config = require('../../config');
const { createApi } = require('../../lib/api');
const { createShop } = require('../../lib/shop');

Page({
  data: {},

  onLoad() {
    this.shop = createShop({
      wx,
      api: createApi(wx.request, config.baseUrl),
      setData: (d) => this.setData(d),
    });
    this.setData({ ...this.shop.initial(), money: '0.01', nickInput: '' });
  },

  onSignIn() {
    this.shop.signIn();
  },

  // <input type="nickname">: WeChat offers the person's nickname to pick.
  onNickname(e) {
    this.setData({ nickInput: e.detail.value });
  },

  onSaveProfile() {
    this.shop.saveProfile({ nickName: this.data.nickInput });
  },

  onMoney(e) {
    this.setData({ money: e.detail.value });
  },

  // The amount goes to the server as typed: wxpay checks it (at most two
  // decimals, within its limits) and the page shows its answer.
  onPay() {
    this.shop.pay(this.data.money);
  },

  onRefresh() {
    this.shop.refresh();
  },
});
