#!/usr/bin/env node
// A Herald app in Node.js, no dependencies.
//
// Opens the app's push channel, prints its URI, and prints each raw
// notification and foreground toast as it arrives. The event stream is
// Server-Sent Events over the daemon's Unix socket: plain HTTP, so no
// websocket library is needed. When the daemon restarts, the app
// reconnects and resumes after the last event it handled (Last-Event-ID).
//
//     node herald-app.js [APP]      # APP defaults to "node-demo"
//
// The socket is $HERALD_SOCKET, else the per-user default. It prints one
// line per thing that happens:
//
//     uri http://127.0.0.1:8790/throttledthirdparty/01.00/…
//     connection up
//     raw <message id> <body, as text when it is UTF-8, else base64>
//     toast <text1> | <text2> | <param>
'use strict';

const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { TextDecoder } = require('node:util');

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

function say(...words) {
  process.stdout.write(words.join(' ') + '\n');
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
  }
}

function handle(ev) {
  switch (ev.type) {
    case 'raw': {
      const bytes = Buffer.from(ev.body || '', 'base64');
      let text;
      try { text = utf8.decode(bytes); } catch (_) { text = ev.body || ''; }
      say('raw', ev.message_id || '', text);
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
  for (;;) {
    try {
      // Opening is idempotent: the same channel and URI every time.
      const ch = await request('POST', `/v1/apps/${app}/channel`, { toast: true });
      setURI(ch.uri);
      await listen();
    } catch (e) {
      process.stderr.write(`herald: ${e.message}; retrying\n`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

main();
