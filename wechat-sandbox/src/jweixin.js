/*
 * wechat-sandbox's stand-in for WeChat's JS-SDK (jweixin-1.6.0.js), for pages
 * opened outside WeChat. Same API and the same callbacks (success, fail,
 * cancel, complete with an errMsg "name:ok" / "name:cancel" / "name:fail…"):
 * wx.config, wx.ready, wx.error, wx.checkJsApi, wx.updateAppMessageShareData,
 * wx.updateTimelineShareData, wx.chooseWXPay.
 *
 * wx.config asks the sandbox to check the signature against its current
 * jsapi_ticket and the page's own URL, as WeChat does; wx.chooseWXPay asks it
 * to check paySign with the merchant key, then shows the sandbox's cashier in
 * an overlay where a person confirms (确认支付) or cancels (取消).
 */
(function (global) {
  'use strict';

  var SANDBOX = __SANDBOX_BASE__;
  var SANDBOX_ORIGIN = new URL(SANDBOX).origin;
  var SUPPORTED = [
    'checkJsApi',
    'updateAppMessageShareData',
    'updateTimelineShareData',
    'chooseWXPay'
  ];

  // idle → verifying → ready | failed, like WeChat's own state.
  var state = {
    phase: 'idle',
    appId: '',
    jsApiList: [],
    debug: false,
    error: null,
    onReady: [],
    onError: [],
    // API calls made while wx.config is still being verified.
    pending: []
  };

  function later(fn) {
    setTimeout(fn, 0);
  }

  function post(path, body) {
    return fetch(SANDBOX + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit'
    }).then(function (res) {
      return res.json().then(function (json) {
        if (!res.ok) {
          throw new Error(json && json.error ? json.error : 'HTTP ' + res.status);
        }
        return json;
      });
    });
  }

  function debugShow(res) {
    if (state.debug) {
      global.alert(JSON.stringify(res));
    }
  }

  // Calls success / cancel / fail by the errMsg's suffix, then complete.
  function report(name, res, opts) {
    opts = opts || {};
    debugShow(res);
    var msg = res.errMsg || '';
    var kind = msg === name + ':ok' ? 'success' : msg === name + ':cancel' ? 'cancel' : 'fail';
    if (typeof opts[kind] === 'function') {
      opts[kind](res);
    }
    if (typeof opts.complete === 'function') {
      opts.complete(res);
    }
  }

  function pageUrl() {
    return global.location.href.split('#')[0];
  }

  function settle(ok, errMsg) {
    state.phase = ok ? 'ready' : 'failed';
    var res = { errMsg: errMsg };
    if (!ok) {
      state.error = res;
    }
    debugShow(res);
    var queue = ok ? state.onReady : state.onError;
    state.onReady = [];
    state.onError = [];
    queue.forEach(function (fn) {
      fn(ok ? undefined : res);
    });
    var pending = state.pending;
    state.pending = [];
    pending.forEach(function (run) {
      run();
    });
  }

  // Runs an API once wx.config has settled; refuses it when config failed or
  // the API was not listed in jsApiList, as WeChat does.
  function guarded(name, opts, run) {
    var go = function () {
      if (state.phase !== 'ready' || state.jsApiList.indexOf(name) < 0) {
        report(name, { errMsg: name + ':permission denied' }, opts);
        return;
      }
      run();
    };
    if (state.phase === 'verifying') {
      state.pending.push(go);
    } else {
      later(go);
    }
  }

  var wx = {};

  wx.config = function (cfg) {
    cfg = cfg || {};
    state.phase = 'verifying';
    state.appId = String(cfg.appId || '');
    state.jsApiList = Array.isArray(cfg.jsApiList) ? cfg.jsApiList.slice() : [];
    state.debug = !!cfg.debug;
    state.error = null;
    post('/sandbox/jssdk/verify', {
      appId: state.appId,
      timestamp: cfg.timestamp,
      nonceStr: String(cfg.nonceStr || ''),
      signature: String(cfg.signature || ''),
      url: pageUrl()
    }).then(
      function (res) {
        settle(res.errMsg === 'config:ok', res.errMsg);
      },
      function (e) {
        settle(false, 'config:fail, ' + e.message);
      }
    );
  };

  wx.ready = function (fn) {
    if (typeof fn !== 'function') return;
    if (state.phase === 'ready') {
      later(fn);
    } else {
      state.onReady.push(fn);
    }
  };

  wx.error = function (fn) {
    if (typeof fn !== 'function') return;
    if (state.phase === 'failed') {
      var err = state.error;
      later(function () {
        fn(err);
      });
    } else {
      state.onError.push(fn);
    }
  };

  // Works before and without wx.config, as WeChat's does.
  wx.checkJsApi = function (opts) {
    opts = opts || {};
    var list = Array.isArray(opts.jsApiList) ? opts.jsApiList : [];
    var result = {};
    list.forEach(function (name) {
      result[name] = SUPPORTED.indexOf(name) >= 0;
    });
    later(function () {
      report('checkJsApi', { checkResult: result, errMsg: 'checkJsApi:ok' }, opts);
    });
  };

  // WeChat only shares links on the page's JS safe domain.
  function sameOrigin(link) {
    try {
      return new URL(link, global.location.href).origin === global.location.origin;
    } catch (e) {
      return false;
    }
  }

  function share(name) {
    return function (opts) {
      opts = opts || {};
      guarded(name, opts, function () {
        var link = opts.link || global.location.href;
        if (!sameOrigin(link)) {
          report(name, { errMsg: name + ':fail, the link is not in the safe domain' }, opts);
          return;
        }
        wx.sandboxShared[name] = {
          title: String(opts.title || ''),
          desc: String(opts.desc || ''),
          link: link,
          imgUrl: String(opts.imgUrl || '')
        };
        report(name, { errMsg: name + ':ok' }, opts);
      });
    };
  }

  wx.updateAppMessageShareData = share('updateAppMessageShareData');
  wx.updateTimelineShareData = share('updateTimelineShareData');

  // The sandbox's cashier in an overlay; `done(errMsg)` once the person
  // confirms or cancels in it.
  function openCashier(url, done) {
    // Focus goes into the cashier and comes back where it was.
    var opener = document.activeElement;
    var overlay = document.createElement('div');
    overlay.setAttribute('role', 'dialog');
    overlay.setAttribute('aria-modal', 'true');
    overlay.setAttribute('aria-label', '微信支付');
    overlay.setAttribute('data-wechat-sandbox', 'cashier');
    overlay.style.cssText =
      'position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.55);' +
      'display:flex;align-items:flex-end;justify-content:center';
    var frame = document.createElement('iframe');
    frame.title = '微信支付收银台';
    frame.src = url;
    frame.style.cssText =
      'width:100%;max-width:28rem;height:min(30rem,92vh);border:0;' +
      'border-radius:.75rem .75rem 0 0;background:#ededed';
    overlay.appendChild(frame);
    function onMessage(e) {
      var data = e.data;
      if (e.origin !== SANDBOX_ORIGIN || e.source !== frame.contentWindow) return;
      if (!data || data.source !== 'wechat-sandbox' || data.kind !== 'chooseWXPay') return;
      global.removeEventListener('message', onMessage);
      // Let the person read the cashier's answer before it goes away.
      setTimeout(function () {
        overlay.remove();
        if (opener && typeof opener.focus === 'function') opener.focus();
        done(String(data.errMsg));
      }, 600);
    }
    global.addEventListener('message', onMessage);
    document.body.appendChild(overlay);
    frame.focus();
  }

  wx.chooseWXPay = function (opts) {
    opts = opts || {};
    guarded('chooseWXPay', opts, function () {
      post('/sandbox/jssdk/pay', {
        appId: state.appId,
        // WeChat's JS-SDK spells it `timestamp`; the signed field is `timeStamp`.
        timeStamp: String(opts.timestamp == null ? '' : opts.timestamp),
        nonceStr: String(opts.nonceStr || ''),
        package: String(opts.package || ''),
        signType: String(opts.signType || ''),
        paySign: String(opts.paySign || '')
      }).then(
        function (res) {
          if (res.errMsg !== 'chooseWXPay:ok' || !res.cashierUrl) {
            report('chooseWXPay', { errMsg: res.errMsg }, opts);
            return;
          }
          openCashier(res.cashierUrl, function (errMsg) {
            report('chooseWXPay', { errMsg: errMsg }, opts);
          });
        },
        function (e) {
          report('chooseWXPay', { errMsg: 'chooseWXPay:fail, ' + e.message }, opts);
        }
      );
    });
  };

  // Not in WeChat's API: what the share calls set, and where the sandbox is.
  wx.sandboxShared = {};
  wx.sandboxBase = SANDBOX;

  global.wx = global.jWeixin = wx;
})(window);
