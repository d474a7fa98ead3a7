// An independent port-forward client over SPDY/3.1 (npm spdy-transport), as client-go's
// portforward does it: the upgrade with X-Stream-Protocol-Version: portforward.k8s.io, then per
// connection an error and a data stream carrying `port` and `requestID`.
//
// node spdy_portforward.js URL --port P[,P2...] [--requests N] [--request TEXT]
// Sends TEXT (default an HTTP GET) on each data stream, half-closes, collects the reply.
// Prints one JSON line: {httpStatus, protocol, results: [{port, requestId, data, error}]}.

const http = require('http');
const transport = require('spdy-transport');

const args = process.argv.slice(2);
const url = new URL(args[0]);
const opt = (name) => { const i = args.indexOf(name); return i < 0 ? undefined : args[i + 1]; };
const ports = (opt('--port') || '80').split(',');
const count = parseInt(opt('--requests') || '1', 10);
const text = opt('--request') || 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n';

const out = { httpStatus: 0, protocol: null, results: [] };
const req = http.request({
  host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
  headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'portforward.k8s.io' },
});
req.on('response', (res) => { out.httpStatus = res.statusCode; console.log(JSON.stringify(out)); process.exit(0); });
req.on('upgrade', (res, socket) => {
  out.httpStatus = res.statusCode;
  out.protocol = res.headers['x-stream-protocol-version'];
  const conn = transport.connection.create(socket, { protocol: 'spdy', isServer: false });
  conn.start(3.1);
  let left = count * ports.length;
  let id = 0;
  const done = () => { if (--left === 0) { console.log(JSON.stringify(out)); conn.end(); process.exit(0); } };
  for (let i = 0; i < count; i++) {
    for (const port of ports) {
      const requestId = String(id++);
      const r = { port: Number(port), requestId, data: '', error: '' };
      out.results.push(r);
      const open = (type) => conn.request({ method: 'POST', path: '/', headers: { streamtype: type, port, requestid: requestId } }, () => {});
      const error = open('error');
      error.on('data', (d) => { r.error += d; });
      error.resume();
      error.end();
      const data = open('data');
      let ended = false;
      const finish = () => { if (!ended) { ended = true; done(); } };
      data.on('data', (d) => { r.data += d; });
      data.on('end', finish);
      data.on('error', (e) => { r.error += ' data: ' + e.message; finish(); });
      data.write(text);
      data.end();
    }
  }
});
req.on('error', (e) => { out.error = e.message; console.log(JSON.stringify(out)); process.exit(0); });
req.end();
setTimeout(() => { out.timeout = true; console.log(JSON.stringify(out)); process.exit(0); }, 20000);
