package api

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes every route; TestOpenAPIMatchesRoutes keeps it
// and routes() the same.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI is GET /api/v1/openapi.json (no credentials needed: it holds
// no data).
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}
