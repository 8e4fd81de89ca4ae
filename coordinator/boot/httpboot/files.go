package httpboot

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
)

// maxImageName bounds image cache names.
const maxImageName = 255

// serveAgentFile serves one configured file (the agent kernel or
// initramfs); an unset path is 404.
func (h *Handler) serveAgentFile(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if path == "" {
			http.NotFound(w, r)
			return
		}
		h.serveFile(w, r, func() (*os.File, error) { return os.Open(path) })
	}
}

// serveCacheImage serves /images/cache/{name} from ImageDir. Names are
// flat and plain; os.OpenInRoot also refuses symbolic links that lead
// out of ImageDir.
func (h *Handler) serveCacheImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name") // unescaped: "..%2Fx" arrives as "../x"
	if !validImageName(name) {
		http.Error(w, "invalid image name", http.StatusBadRequest)
		return
	}
	if h.cfg.ImageDir == "" {
		http.NotFound(w, r)
		return
	}
	h.serveFile(w, r, func() (*os.File, error) { return os.OpenInRoot(h.cfg.ImageDir, name) })
}

// serveFile serves a regular file with http.ServeContent, which does
// Range, If-Range, HEAD, Content-Length and Last-Modified. Directories
// are 404: there is no listing.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, open func() (*os.File, error)) {
	f, err := open()
	if err != nil {
		h.fileError(w, r, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		h.fileError(w, r, err)
		return
	}
	if !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	// Set, so ServeContent neither sniffs nor guesses from the name.
	w.Header().Set("Content-Type", "application/octet-stream")
	// A strong validator from size and modification time (as nginx does),
	// so a resumed download with If-Range restarts if the file changed.
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size()))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func (h *Handler) fileError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	// Permissions, links out of the image directory: the operator's
	// business, not the client's.
	h.log.Warn("cannot serve file", "path", r.URL.Path, "client", r.RemoteAddr, "err", err)
	http.Error(w, "cannot serve this file", http.StatusForbidden)
}

// validImageName accepts flat names the image cache produces: letters,
// digits, '.', '_', '-' and '+', starting with a letter or digit (no
// hidden or temporary files, no "." or "..").
func validImageName(name string) bool {
	if name == "" || len(name) > maxImageName || !isAlnum(name[0]) {
		return false
	}
	for _, c := range []byte(name) {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' && c != '+' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
