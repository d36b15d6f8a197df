// wxpay's HTTP API through `wx.request`, unwrapping the envelope
// `{code, data, message}` (API.md §3). Success gives `data`; anything else
// rejects with an ApiError carrying the HTTP status, wxpay's code and message,
// so the page can show exactly what the server said.

class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.name = 'ApiError';
    // 0 when no HTTP answer arrived (network error, timeout).
    this.status = status;
    // wxpay's code (1001 bad parameter, 1002 no session, …); -1 without one.
    this.code = code;
    this.requestId = requestId || '';
  }
}

function queryString(query) {
  const pairs = Object.keys(query || {})
    .filter((k) => query[k] !== undefined && query[k] !== null)
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(String(query[k]))}`);
  return pairs.length ? `?${pairs.join('&')}` : '';
}

function headerOf(header, name) {
  const key = Object.keys(header || {}).find((k) => k.toLowerCase() === name);
  return key ? header[key] : '';
}

// What a `wx.request` success (any HTTP status) means for the caller.
function unwrap(res) {
  const body = res.data;
  const requestId = headerOf(res.header, 'x-request-id');
  if (body && typeof body === 'object' && typeof body.code === 'number') {
    if (res.statusCode === 200 && body.code === 0) return body.data;
    return Promise.reject(new ApiError(res.statusCode, body.code, body.message || '', requestId));
  }
  // Not wxpay's envelope: a proxy's error page, or the wrong baseUrl.
  return Promise.reject(
    new ApiError(res.statusCode, -1, `HTTP ${res.statusCode}: not a wxpay answer`, requestId),
  );
}

/**
 * `request` is `wx.request`; `baseUrl` as in config.js. Paths and queries are
 * encoded here rather than through `wx.request`'s `data`, so GET and POST
 * build URLs the same way everywhere.
 */
function createApi(request, baseUrl) {
  const base = String(baseUrl).replace(/\/+$/, '');

  function send(method, path, { query, body, token } = {}) {
    const header = {};
    if (token) header.Authorization = `Bearer ${token}`;
    if (body !== undefined) header['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      request({
        url: base + path + queryString(query),
        method,
        data: body,
        header,
        dataType: 'json',
        success: resolve,
        fail: (err) => reject(new ApiError(0, -1, (err && err.errMsg) || 'request:fail', '')),
      });
    }).then(unwrap);
  }

  return {
    get: (path, options) => send('GET', path, options),
    post: (path, options) => send('POST', path, options),
  };
}

module.exports = { createApi, ApiError };
