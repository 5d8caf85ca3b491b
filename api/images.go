package api

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bilibridge/bilibridge/send"
)

// uploadImage is POST /api/v1/images: the body is an image (JPEG, PNG or
// GIF, at most 10 MiB) that the browser inbox pastes; the answer's
// image_url, valid for a day, goes in a POST /api/v1/messages.
func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Uploads == nil || s.cfg.UploadsURL == "" {
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, "image uploads are off on this bridge")
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct != "image/jpeg" && ct != "image/png" && ct != "image/gif" {
		writeError(w, http.StatusUnsupportedMediaType, codeBadRequest, "the body must be a JPEG, PNG or GIF image with its Content-Type")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, send.MaxImageBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, "the image is larger than 10 MiB")
			return
		}
		writeError(w, http.StatusBadRequest, codeBadRequest, "could not read the image")
		return
	}
	if got := http.DetectContentType(body); got != ct {
		writeError(w, http.StatusUnsupportedMediaType, codeBadRequest, fmt.Sprintf("the body is %s, not %s", got, ct))
		return
	}
	id := make([]byte, 18)
	_, _ = rand.Read(id)
	name := base64.RawURLEncoding.EncodeToString(id)
	if _, err := s.cfg.Uploads.Put(r.Context(), jetstream.ObjectMeta{Name: name, Headers: map[string][]string{"Content-Type": {ct}}}, bytes.NewReader(body)); err != nil {
		s.fail(w, r, fmt.Errorf("storing the image: %w", err))
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"image_url": strings.TrimSuffix(s.cfg.UploadsURL, "/") + "/" + name})
}

// image is GET /api/v1/images/{id}: an uploaded image, for the sender to
// fetch. It needs no credentials: the id is 144 random bits, and the
// image leaves with the reply anyway.
func (s *Server) image(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Uploads == nil {
		http.NotFound(w, r)
		return
	}
	obj, err := s.cfg.Uploads.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, codeNotFound, "no such image (they are kept for a day)")
		return
	}
	defer obj.Close()
	info, err := obj.Info()
	if err != nil {
		writeError(w, http.StatusNotFound, codeNotFound, "no such image")
		return
	}
	ct := "application/octet-stream"
	if v := info.Headers.Get("Content-Type"); v != "" {
		ct = v
	}
	w.Header().Set("Content-Type", ct)
	_, _ = io.Copy(w, obj)
}
