// Another web site, for the browser test to attack the proxy's pages from: a plain HTTP server
// on its own port (so its own origin), serving
//
//   /frame.html    the proxy's demo in an <iframe> (clickjacking: must be refused by the
//                  demo's frame-ancestors / X-Frame-Options)
//   /mallory.html  a page that imports the proxy's /httpws.js (cross-origin, as other sites
//                  may: CORS) and tries to register on the proxy (its origin is not allowed)
//
// No CSP here: the attacker's pages do what they like; the proxy's answers must stop them.

import { createServer } from 'node:http';

/**
 * Start the site for attacks on the proxy at `proxyOrigin` (http://127.0.0.1:PORT); resolves
 * with `{origin, close()}` once it listens on a free port of 127.0.0.1.
 */
export async function startForeignSite(proxyOrigin) {
  const proxyWs = proxyOrigin.replace(/^http/, 'ws');
  const pages = {
    '/frame.html': ['text/html', `<!doctype html><title>a site framing the demo</title>
<iframe id="demo" src="${proxyOrigin}/webrtc/?name=framed" width="800" height="600"></iframe>`],
    '/mallory.html': ['text/html', `<!doctype html><title>mallory</title>
<script type="module" src="/mallory.js"></script>`],
    '/mallory.js': ['text/javascript', `
window.result = { imported: false };
try {
  const { HttpWs } = await import(${JSON.stringify(`${proxyOrigin}/httpws.js`)});
  window.result.imported = typeof HttpWs.connect === 'function';
  await HttpWs.connect(${JSON.stringify(proxyWs)}, { name: 'mallory', connectTimeout: 5000 });
  window.result.error = 'registered';
} catch (err) {
  window.result.error = err.name;
  window.result.message = err.message;
}
window.result.done = true;
`],
  };
  const server = createServer((req, res) => {
    const page = pages[new URL(req.url, 'http://x').pathname];
    if (!page) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not here\n');
      return;
    }
    res.writeHead(200, { 'content-type': `${page[0]}; charset=utf-8`, 'cache-control': 'no-store' }).end(page[1]);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
