// Starts wxpay's `stack` binary (the three services plus the WeChat sandbox)
// on free ports with a temporary SQLite file, and reads its two URLs from
// what it prints. The binary: WXPAY_STACK_BIN (what stack/tests/miniprogram.rs
// passes), else target/debug/stack (`cargo build -j2 -p stack`).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO = path.resolve(__dirname, '../../../..');
// Start-up takes well under a second; this only bounds a hung binary.
const START_TIMEOUT_MS = 60_000;

function stackBinary() {
  const bin = process.env.WXPAY_STACK_BIN || path.join(REPO, 'target/debug/stack');
  if (!fs.existsSync(bin)) {
    throw new Error(`${bin} does not exist: run \`cargo build -j2 -p stack\` first`);
  }
  return bin;
}

/** → {base, sandbox, stop()}; `env` adds to (and overrides) the defaults. */
function startStack(env = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxpay-mp-'));
  const child = spawn(stackBinary(), [], {
    // Not the whole environment: with its sandbox on, stack refuses real
    // WeChat settings, and a developer's shell may carry some.
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: os.tmpdir(),
      LISTEN_ADDR: '127.0.0.1:0',
      SANDBOX_ADDR: '127.0.0.1:0',
      DATABASE_URL: `sqlite://${dir}/stack.db`,
      WXPAY_SANDBOX: 'on',
      RUST_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));

  function stop() {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited.then(() => fs.rmSync(dir, { recursive: true, force: true }));
  }

  const urls = new Promise((resolve, reject) => {
    const found = {};
    const timer = setTimeout(
      () => reject(new Error(`stack printed no URLs within ${START_TIMEOUT_MS} ms\n${stderr}`)),
      START_TIMEOUT_MS,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`stack exited (${code}) before it was ready:\n${stderr}`));
    });
    // main.rs prints "wxpay is running: open URL/" then "WeChat sandbox:   URL  (…".
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const app = /wxpay is running: open (\S+)/.exec(line);
      if (app) found.base = app[1].replace(/\/+$/, '');
      const sandbox = /WeChat sandbox:\s+(\S+)/.exec(line);
      if (sandbox) found.sandbox = sandbox[1].replace(/\/+$/, '');
      if (found.base && found.sandbox) {
        clearTimeout(timer);
        resolve(found);
      }
    });
  });

  return urls.then(
    ({ base, sandbox }) => ({ base, sandbox, stop }),
    (err) => stop().then(() => Promise.reject(err)),
  );
}

module.exports = { startStack };
