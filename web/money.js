// Yuan as typed → integer fen, with string arithmetic only: binary floats
// cannot hold 0.1 exactly, and money must never be rounded by accident.

// 99,999,999.99 yuan: far above any order pay-service accepts, far below 2^53 fen.
const MAX_YUAN_DIGITS = 8;

const FULL_WIDTH = /[０-９．]/g;

function halfWidth(s) {
  return s.replace(FULL_WIDTH, (c) => (c === '．' ? '.' : String.fromCharCode(c.charCodeAt(0) - 0xfee0)));
}

/**
 * Parses an amount in yuan ("0.01", "12", "3.5", "￥1.20", full-width digits).
 * Returns {ok: true, fen} or {ok: false, error} with a message for the person.
 */
export function yuanToFen(input) {
  const s = halfWidth(String(input ?? '').trim()).replace(/^[¥￥]\s*/, '');
  if (s === '') return { ok: false, error: '请输入金额' };
  const m = /^(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m) return { ok: false, error: '金额格式不正确，请输入数字，例如 0.01' };
  const [, whole, frac = ''] = m;
  if (frac.length > 2) return { ok: false, error: '金额最多两位小数（精确到分）' };
  const yuan = whole.replace(/^0+(?=\d)/, '');
  if (yuan.length > MAX_YUAN_DIGITS) return { ok: false, error: '金额过大' };
  const fen = Number.parseInt(yuan + frac.padEnd(2, '0'), 10);
  if (fen === 0) return { ok: false, error: '金额必须大于 0' };
  return { ok: true, fen };
}

/** 1 → "0.01", 1234 → "12.34". */
export function fenToYuan(fen) {
  const f = Math.trunc(Number(fen));
  const sign = f < 0 ? '-' : '';
  const abs = Math.abs(f);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}
