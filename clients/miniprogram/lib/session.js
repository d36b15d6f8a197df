// Sign-in (`wx.login` → `/api/mp/getSession`), the session kept in local
// storage, and the profile (`/api/mp/login`, `/api/auth/me`).

const { call } = require('./wxp');

const STORAGE_KEY = 'wxpay.session';
// Sign in again this long before the token expires, rather than mid-payment.
const RENEW_AHEAD_MS = 60 * 1000;

/** `wx.login` then `/api/mp/getSession`: → {openid, token, expiresAt}. */
async function signIn(wx, api) {
  const { code } = await call(wx, 'login', {});
  const s = await api.get('/api/mp/getSession', { query: { code } });
  const session = {
    openid: s.openid,
    token: s.token,
    expiresAt: Date.now() + s.expiresIn * 1000,
  };
  wx.setStorageSync(STORAGE_KEY, session);
  return session;
}

/** The stored session while it is still good, else null. */
function storedSession(wx) {
  const s = wx.getStorageSync(STORAGE_KEY);
  if (!s || !s.token || !(s.expiresAt - RENEW_AHEAD_MS > Date.now())) return null;
  return s;
}

function forget(wx) {
  wx.removeStorageSync(STORAGE_KEY);
}

/**
 * Saves what the person chose to share, in WeChat's `userInfo` spelling
 * (`nickName`, `avatarUrl`, `gender`, …): → {userId}. `avatarUrl` must be an
 * http(s) URL; a `chooseAvatar` temp file has to be uploaded somewhere first.
 */
function saveProfile(api, token, userInfo) {
  return api.post('/api/mp/login', { token, body: { userInfo } });
}

/** The signed-in user as wxpay stores it. */
function me(api, token) {
  return api.get('/api/auth/me', { token });
}

module.exports = { signIn, storedSession, forget, saveProfile, me, STORAGE_KEY };
