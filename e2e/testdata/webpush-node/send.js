// Sends one Web Push message with the npm web-push library, as an
// application server (Mastodon, a Matrix gateway) would: VAPID-signed,
// aes128gcm-encrypted. Arguments come as one JSON object on stdin:
// {endpoint, p256dh, auth, vapidPublic, vapidPrivate, payload, ttl, topic}.
// Prints {"status":..., "headers":{...}} or {"error":..., "status":...}.
const webpush = require('web-push');

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', async () => {
  const a = JSON.parse(input);
  const options = {
    TTL: a.ttl,
    contentEncoding: 'aes128gcm',
    vapidDetails: { subject: 'mailto:ops@example.org', publicKey: a.vapidPublic, privateKey: a.vapidPrivate },
  };
  if (a.topic) options.topic = a.topic;
  try {
    const res = await webpush.sendNotification(
      { endpoint: a.endpoint, keys: { p256dh: a.p256dh, auth: a.auth } }, a.payload, options);
    console.log(JSON.stringify({ status: res.statusCode, headers: res.headers }));
  } catch (e) {
    console.log(JSON.stringify({ error: String(e.message || e), status: e.statusCode || 0, body: e.body || '' }));
  }
});
