package telegramtest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-telegram/bot/models"
)

// fileEntry is a file Telegram keeps: its download path and content.
type fileEntry struct {
	path string
	data []byte
}

// FailURL makes sendPhoto with this URL answer "failed to get HTTP URL
// content", as Telegram does when it cannot fetch an image.
func (s *Server) FailURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badURLs[u] = true
}

// storePhoto keeps data as a photo in two sizes, as Telegram does for a
// user's photo, and returns the sizes for the message; s.mu is held.
func (s *Server) storePhoto(data []byte) []models.PhotoSize {
	s.nextFile++
	n := s.nextFile
	id := fmt.Sprintf("AgACAgIAAxkBAAI%06d", n)
	s.files[id] = fileEntry{path: fmt.Sprintf("photos/file_%d.jpg", n), data: data}
	small := id + "_s"
	s.files[small] = fileEntry{path: fmt.Sprintf("photos/file_%d_s.jpg", n), data: data}
	return []models.PhotoSize{
		{FileID: small, FileUniqueID: "s" + strconv.Itoa(n), Width: 90, Height: 90, FileSize: len(data)},
		{FileID: id, FileUniqueID: "u" + strconv.Itoa(n), Width: 800, Height: 800, FileSize: len(data)},
	}
}

// photo resolves sendPhoto's photo parameter, which is an uploaded file
// (upload holds its bytes), a URL Telegram fetches, or a file_id it keeps.
// It returns Message.Photo and Message.PhotoUpload.
func (s *Server) photo(photo string, upload []byte) (string, []byte, error) {
	switch {
	case strings.HasPrefix(photo, "attach:"):
		if len(upload) == 0 {
			return "", nil, badRequest("file must be non-empty")
		}
		return "upload:" + strings.TrimPrefix(photo, "attach:"), upload, nil
	case strings.HasPrefix(photo, "http://") || strings.HasPrefix(photo, "https://"):
		if s.badURLs[photo] {
			return "", nil, badRequest("failed to get HTTP URL content")
		}
		return photo, nil, nil
	case photo == "":
		return "", nil, badRequest("there is no photo in the request")
	default:
		if _, ok := s.files[photo]; !ok {
			return "", nil, badRequest("wrong file identifier/HTTP URL specified")
		}
		return photo, nil, nil
	}
}

func (s *Server) getFile(p map[string]string) (any, error) {
	f, ok := s.files[p["file_id"]]
	if !ok {
		return nil, badRequest("wrong file_id or the file is temporarily unavailable")
	}
	return models.File{FileID: p["file_id"], FileUniqueID: "u" + p["file_id"], FileSize: int64(len(f.data)), FilePath: f.path}, nil
}

// serveFile serves a download, GET /file/bot<token>/<path>; rest is what
// follows "/file/bot". Telegram answers these in plain HTTP, not in its
// JSON envelope.
func (s *Server) serveFile(w http.ResponseWriter, rest string) {
	token, path, ok := strings.Cut(rest, "/")
	if !ok || token != s.Token {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	var data []byte
	found := false
	for _, f := range s.files {
		if f.path == path {
			data, found = f.data, true
			break
		}
	}
	s.mu.Unlock()
	if !found {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", http.DetectContentType(data))
	_, _ = w.Write(data)
}
