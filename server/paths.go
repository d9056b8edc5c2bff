package server

import (
	"net/http"
	"path"
)

// cleanPaths answers 404 to a request whose path is not in clean form
// ("..", ".", "//"). http.ServeMux would answer it with a redirect to the
// cleaned path, which tells a prober how paths map and sends a sender that
// follows redirects somewhere it did not ask to post.
func cleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != cleanPath(p) {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is path.Clean as ServeMux applies it: rooted, and keeping a
// trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
