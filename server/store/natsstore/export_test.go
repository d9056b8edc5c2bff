package natsstore

// Decode is decode, for the fuzz test.
var Decode = decode

// Copies reports whether s's watched copies hold the channel by token,
// the device and where the device is held, however recently learned.
func Copies(s *Store, tok, deviceID string) (channel, device, held bool) {
	_, channel, _ = s.cache.byTok(tok)
	return channel, s.devCache.held(deviceKey(deviceID)), s.presence.copy.held(deviceKey(deviceID))
}
