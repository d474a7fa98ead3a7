// An independent remotecommand client (exec/attach) over SPDY/3.1 with the npm package
// spdy-transport, driving the upgrade and the streams the way kubelet's client-go does:
// POST with Upgrade: SPDY/3.1 and X-Stream-Protocol-Version, then error, stdin, stdout, stderr
// and resize streams named by their `streamType` header.
//
// node spdy_remotecommand.js URL [--protocols a,b] [--stdin TEXT | --stdin-bytes N] [--stdout]
//                                [--stderr] [--tty] [--resize WxH] [--hold-ms N] [--die-after-ms N]
// Prints one JSON line: {httpStatus, protocol, stdoutBytes, stdoutSha256, stdout, stderr, error}.

const http = require(process.argv[2].startsWith('https:') ? 'https' : 'http');
const crypto = require('crypto');
const transport = require('spdy-transport');

const args = process.argv.slice(2);
const url = new URL(args[0]);
const opt = (name) => { const i = args.indexOf(name); return i < 0 ? undefined : args[i + 1]; };
const has = (name) => args.includes(name);
const protocols = (opt('--protocols') || 'v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io').split(',');

const out = { httpStatus: 0, protocol: null, stdoutBytes: 0, stdout: '', stderr: '', error: '' };
const hash = crypto.createHash('sha256');
let done = false;
function finish() {
  if (done) return;
  done = true;
  out.stdoutSha256 = hash.digest('hex');
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

const headers = { Connection: 'Upgrade', Upgrade: 'SPDY/3.1' };
const req = http.request({
  host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
  headers: Object.assign(headers, { 'X-Stream-Protocol-Version': protocols }),
});
req.on('response', (res) => {
  out.httpStatus = res.statusCode;
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => { out.error = body; out.accepted = res.headers['x-accepted-stream-protocol-versions']; finish(); });
});
req.on('error', (e) => { out.error = 'request: ' + e.message; finish(); });
req.on('upgrade', (res, socket) => {
  out.httpStatus = res.statusCode;
  out.protocol = res.headers['x-stream-protocol-version'];
  const conn = transport.connection.create(socket, { protocol: 'spdy', isServer: false });
  conn.start(3.1);
  conn.on('error', (e) => { out.error += 'connection: ' + e.message; });
  const open = (type) => {
    const s = conn.request({ method: 'POST', path: '/', headers: { streamtype: type } }, () => {});
    s.on('error', (e) => { out.error += type + ': ' + e.message; });
    return s;
  };
  const errorStream = open('error');
  let errorText = '';
  errorStream.on('data', (d) => { errorText += d; });
  let pending = 1;
  const settle = () => { if (--pending === 0) { out.error = errorText; conn.end(); setTimeout(finish, 50); } };
  errorStream.on('end', settle);
  errorStream.resume();
  if (opt('--stdin') !== undefined || opt('--stdin-bytes') !== undefined) {
    const stdin = open('stdin');
    const hold = parseInt(opt('--hold-ms') || '0', 10);
    setTimeout(() => {
      if (opt('--stdin-bytes') !== undefined) {
        stdin.write(Buffer.alloc(parseInt(opt('--stdin-bytes'), 10), 'z'));
      } else {
        stdin.write(opt('--stdin'));
      }
      if (!has('--keep-stdin')) stdin.end();
    }, hold);
  }
  if (has('--stdout')) {
    pending++;
    const s = open('stdout');
    s.on('data', (d) => { out.stdoutBytes += d.length; hash.update(d); if (out.stdout.length < 4096) out.stdout += d; });
    s.on('end', settle);
  }
  if (has('--stderr')) {
    pending++;
    const s = open('stderr');
    s.on('data', (d) => { out.stderr += d; });
    s.on('end', settle);
  }
  if (has('--tty')) {
    const resize = open('resize');
    const size = (opt('--resize') || '80x24').split('x').map(Number);
    resize.write(JSON.stringify({ Width: size[0], Height: size[1] }));
  }
  const die = opt('--die-after-ms');
  if (die !== undefined) {
    setTimeout(() => { socket.destroy(); process.stdout.write(JSON.stringify({ killed: true }) + '\n'); process.exit(0); }, parseInt(die, 10));
  }
});
req.end();
setTimeout(() => { out.error += ' (client timeout)'; finish(); }, parseInt(opt('--timeout-ms') || '30000', 10));
