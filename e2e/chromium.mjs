// The browser both flows drive (flow.mjs: the demo page; console.mjs: the
// operator console): Debian's Chromium unless CHROMIUM_PATH says otherwise.
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// These matter on a closed network: no QUIC, no background fetches, no sync.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
