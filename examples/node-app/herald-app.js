#!/usr/bin/env node
// A Herald app in Node.js.
//
// Opens the app's push channel bound to toast and tile, prints its URI and
// its Web Push keys, and prints every event as it arrives: raw
// notifications, Web Push messages (decrypted with the npm http_ece
// library, RFC 8291), foreground toasts, a new URI, the link's state,
// errors; and its live tiles whenever they change. The event stream is
// Server-Sent Events over the daemon's Unix socket: plain HTTP, so no
// websocket library is needed. When the daemon restarts, the app
// reconnects and resumes after the last event it handled (Last-Event-ID).
//
//     npm ci                        # once, in this directory: http_ece
//     node herald-app.js [APP]      # APP defaults to "node-demo"
//
// The socket is $HERALD_SOCKET, else the per-user default. The Web Push
// keys are made on first run and kept (mode 0600) in
// $XDG_STATE_HOME/herald-examples/APP-webpush-keys.json (default
// ~/.local/state/...), so that senders holding them keep working. It
// prints one line per thing that happens:
//
//     uri https://127.0.0.1:8790/throttledthirdparty/01.00/…
//     webpush-keys p256dh=<base64url> auth=<base64url>
//     connection up
//     raw <message id> <body, as text when it is UTF-8, else base64>
//     webpush <message id> <plaintext, as raw>   (or: webpush <id> undecryptable: <why>)
//     toast <text1> | <text2> | <param>
//     tile <tile id, or "primary"> <template, or "-"> <Name=Value ...>
//     error <kind> <message>
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { TextDecoder } = require('node:util');

let ece;
try {
  ece = require('http_ece');
} catch (e) {
  process.stderr.write(`herald-app.js needs the http_ece library to decrypt Web Push: run npm ci in ${__dirname}\n(${e.message})\n`);
  process.exit(2);
}

function defaultSocket() {
  if (process.env.HERALD_SOCKET) return process.env.HERALD_SOCKET;
  if (process.getuid && process.getuid() === 0) return '/run/herald/herald.sock';
  if (process.env.XDG_RUNTIME_DIR) return path.join(process.env.XDG_RUNTIME_DIR, 'herald', 'herald.sock');
  return path.join(os.homedir(), '.local', 'share', 'herald', 'herald.sock');
}

const socketPath = defaultSocket();
const app = process.argv[2] || 'node-demo';
const utf8 = new TextDecoder('utf-8', { fatal: true });
let uri = null;
let lastId = 0; // the last event handled
const tilesSeen = new Map(); // tile id -> updated_at printed

function say(...words) {
  process.stdout.write(words.join(' ') + '\n');
}

// webPushKeys returns the app's Web Push keys (RFC 8291): a P-256 key pair
// and a 16-byte authentication secret, made once and kept in a file only
// the user can read. The application server gets the public key and the
// secret with the channel URI; the private key never leaves this file.
function webPushKeys() {
  const stateDir = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  const file = path.join(stateDir, 'herald-examples', `${app}-webpush-keys.json`);
  const ecdh = crypto.createECDH('prime256v1');
  try {
    const k = JSON.parse(fs.readFileSync(file, 'utf8'));
    ecdh.setPrivateKey(Buffer.from(k.private, 'base64url'));
    return { ecdh, auth: Buffer.from(k.auth, 'base64url') };
  } catch (e) {
    if (e.code !== 'ENOENT') throw new Error(`reading ${file}: ${e.message}; remove it to make new keys`);
  }
  ecdh.generateKeys();
  const auth = crypto.randomBytes(16);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify({
    p256dh: ecdh.getPublicKey().toString('base64url'),
    auth: auth.toString('base64url'),
    private: ecdh.getPrivateKey().toString('base64url'),
  }) + '\n', { mode: 0o600 });
  return { ecdh, auth };
}

let keys;
try {
  keys = webPushKeys();
} catch (e) {
  process.stderr.write(`herald-app.js: ${e.message}\n`);
  process.exit(2);
}

// request sends one local API call and resolves with its JSON answer.
function request(method, p, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : JSON.stringify(body);
    const headers = data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {};
    const req = http.request({ socketPath, method, path: p, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode >= 400) {
          let e = {};
          try { e = JSON.parse(text); } catch (_) { /* not JSON */ }
          reject(new Error(`${method} ${p}: ${res.statusCode} ${e.code}: ${e.message}`));
          return;
        }
        resolve(text ? JSON.parse(text) : null);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data || undefined);
  });
}

function setURI(u) {
  if (u !== uri) {
    uri = u;
    say('uri', u);
    // What the app hands its application server with the URI.
    say('webpush-keys', `p256dh=${keys.ecdh.getPublicKey().toString('base64url')}`, `auth=${keys.auth.toString('base64url')}`);
  }
}

// text is a body as text when it is UTF-8, else base64.
function text(bytes) {
  try { return utf8.decode(bytes); } catch (_) { return bytes.toString('base64'); }
}

function handle(ev) {
  switch (ev.type) {
    case 'raw':
      say('raw', ev.message_id || '', text(Buffer.from(ev.body || '', 'base64')));
      break;
    case 'webpush': {
      // The body is the sender's RFC 8291 ciphertext (aes128gcm), which
      // only this app's private key and auth secret open. Anyone may
      // post to the URI, so a body that does not decrypt is reported,
      // never fatal.
      let plain;
      try {
        plain = ece.decrypt(Buffer.from(ev.body || '', 'base64'),
          { version: 'aes128gcm', privateKey: keys.ecdh, authSecret: keys.auth });
      } catch (e) {
        say('webpush', ev.message_id || '', `undecryptable: ${e.message}`);
        break;
      }
      say('webpush', ev.message_id || '', text(plain));
      break;
    }
    case 'toast':
      say('toast', `${ev.text1 || ''} | ${ev.text2 || ''} | ${ev.param || ''}`);
      break;
    case 'uri':
      setURI(ev.uri);
      break;
    case 'connection':
      say('connection', ev.connected ? 'up' : 'down');
      break;
    case 'error':
      say('error', ev.error_kind || '', ev.message || '');
      break;
  }
}

// readTiles prints the app's live tiles that changed since it last
// looked. Tiles belong to the shell (the daemon applies them whether the
// app runs or not), so the event stream carries none: an app reads its
// tiles when it wants them, as a phone app read ShellTile.ActiveTiles.
async function readTiles() {
  const tiles = await request('GET', `/v1/tiles?app=${encodeURIComponent(app)}`);
  for (const t of tiles || []) {
    if (tilesSeen.get(t.tile_id) === t.updated_at) continue;
    tilesSeen.set(t.tile_id, t.updated_at);
    const fields = Object.keys(t.fields || {}).sort().map((k) => `${k}=${t.fields[k]}`);
    say('tile', t.tile_id || 'primary', t.template || '-', ...fields);
  }
}

// listen reads the event stream until it ends. Events are handled one at a
// time, in order, each acknowledged before the next.
function listen() {
  return new Promise((resolve, reject) => {
    const headers = { Accept: 'text/event-stream' };
    if (lastId) headers['Last-Event-ID'] = String(lastId);
    const req = http.request({ socketPath, path: `/v1/apps/${app}/events?foreground=1`, headers }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`event stream: ${res.statusCode}`));
        return;
      }
      res.setEncoding('utf8');
      let buf = '';
      let chain = Promise.resolve();
      res.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const fields = {};
          for (const line of block.split('\n')) {
            const c = line.indexOf(':');
            if (c <= 0) continue; // a comment, or no field
            fields[line.slice(0, c)] = line.slice(c + 1).replace(/^ /, '');
          }
          if (fields.event === 'end') {
            say('stream-ended', fields.data || '');
            continue;
          }
          if (fields.data === undefined) continue;
          const ev = JSON.parse(fields.data);
          chain = chain.then(async () => {
            handle(ev);
            lastId = ev.id;
            await request('POST', `/v1/apps/${app}/events/ack`, { ack: ev.id });
          });
          // Handled when the stream ends; marked here so that an ack
          // failing while the daemon restarts never goes unhandled.
          chain.catch(() => {});
        }
      });
      // A stream the daemon closes ends; one whose socket is reset (the
      // daemon restarting) only closes. Either way, wait for the acks.
      const finish = () => chain.then(resolve, reject);
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function main() {
  // Tiles are read once a second, one read at a time; a daemon that is
  // restarting just means no answer this time.
  let reading = false;
  setInterval(async () => {
    if (reading) return;
    reading = true;
    try { await readTiles(); } catch (_) { /* the stream's loop reports the daemon's absence */ }
    reading = false;
  }, 1000);
  for (;;) {
    try {
      // Opening is idempotent: the same channel and URI every time. Raw
      // and Web Push need no binding; toast and tile do, or senders get
      // 200 Suppressed.
      const ch = await request('POST', `/v1/apps/${app}/channel`, { toast: true, tile: true });
      setURI(ch.uri);
      await listen();
    } catch (e) {
      process.stderr.write(`herald: ${e.message}; retrying\n`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

main();
