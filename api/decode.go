package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// decodeBody reads the JSON body into v, refusing unknown fields, more
// than one value and more than MaxBodyBytes; on failure it has answered.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, "the request body is larger than 64 KiB")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, "the request body is larger than 64 KiB")
			return false
		}
		writeError(w, http.StatusBadRequest, codeBadRequest, "could not read the request body")
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "the body is not a valid JSON request: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, codeBadRequest, "the body holds more than one JSON value")
		return false
	}
	return true
}
