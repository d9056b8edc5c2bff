package mpns

// WebPush is a Web Push message's body (RFC 8030): RFC 8291 ciphertext the
// service and the daemon never decrypt, passed to the running app byte for
// byte, as raw is.
//
// The kind lives here, beside MPNS's own, because this package is where
// every layer (the wire protocol, the daemon's appliers, the metrics)
// reads which kinds exist; what is Web Push about the request (TTL, Topic,
// Urgency, VAPID) is package webpush's. It has no X-WindowsPhone-Target
// and no X-NotificationClass, so no MPNS request ever selects it.
type WebPush []byte

// KindWebPush is a Web Push message.
const KindWebPush Kind = "webpush"

var webPushSpec = Spec{
	Kind: KindWebPush,
	sample: func() Message {
		return WebPush("a sample web push message; a real one is aes128gcm ciphertext")
	},
}

// Kind is KindWebPush.
func (WebPush) Kind() Kind { return KindWebPush }

// Payload is the body itself.
func (w WebPush) Payload() []byte { return w }
