// Runs in the preview iframe: everything an app does at its origin's root, results kept for the test.
window.results = {};
(async () => {
  const r = window.results;
  const redirected = await fetch('/old');
  r.redirect = { url: new URL(redirected.url).pathname, text: await redirected.text() };
  r.data = await (await fetch('/api/data')).json();
  r.asset = Boolean(document.querySelector('script[src="/static/app.js"]'));
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  ws.onmessage = (event) => { r.ws = event.data; };
  ws.onerror = () => { r.wsError = true; };
  window.appSocket = ws;
})().catch((error) => { window.results.error = String(error); });
