package mpns

import (
	"net/url"
	"path"
	"strings"
)

// ImageAllowed reports whether a tile may show the image at rawURL, given the
// base URIs its channel was bound with (BindToShellTile(Collection<Uri>)).
//
// Local images are always allowed: relative URIs, rooted paths such as
// /Assets/tile.png, and the isostore:, appdata:, ms-appx: and ms-appdata:
// schemes. An http or https image is allowed only under one of the base
// URIs: same scheme, same host and port, and a path inside the base's path,
// compared segment by segment after resolving dot segments, so that
// http://img.example.com/tiles allows /tiles/a.png but not /tilesX/a.png or
// /tiles/../private.png. Anything else is refused.
func ImageAllowed(rawURL string, allowed []string) bool {
	s := strings.TrimSpace(rawURL)
	if s == "" {
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "":
		// A scheme-relative //host/x.png names a remote image.
		return u.Host == ""
	case "isostore", "appdata", "ms-appx", "ms-appdata":
		return true
	case "http", "https":
	default:
		return false
	}
	if u.Host == "" {
		return false
	}
	for _, a := range allowed {
		base, err := url.Parse(strings.TrimSpace(a))
		if err != nil || base.Host == "" || !strings.EqualFold(base.Scheme, u.Scheme) {
			continue
		}
		if hostPort(u) == hostPort(base) && pathWithin(u.Path, base.Path) {
			return true
		}
	}
	return false
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		} else {
			port = "80"
		}
	}
	return strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")) + ":" + port
}

func pathWithin(p, base string) bool {
	base = strings.TrimSuffix(cleanPath(base), "/")
	if base == "" {
		return true
	}
	p = cleanPath(p)
	return p == base || strings.HasPrefix(p, base+"/")
}

func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	return path.Clean("/" + p)
}
