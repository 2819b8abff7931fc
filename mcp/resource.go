package mcp

import (
	"encoding/json"
	"net/http"
	"strings"
)

// WellKnownProtectedResource is where OAuth 2.0 Protected Resource Metadata
// (RFC 9728) is served; the MCP authorization specification has clients
// read it after a 401.
const WellKnownProtectedResource = "/.well-known/oauth-protected-resource"

// DocumentationURL describes the MCP server and its authentication.
const DocumentationURL = "https://github.com/tendops/tend/blob/main/docs/mcp.md"

// ProtectedResourceMetadata is RFC 9728's metadata document for tend's MCP
// endpoint. tend runs no authorization server: callers present a bearer
// token the Kubernetes API server issued (a service-account token, or a
// user's token), which the server checks with TokenReview. So the document
// names no authorization server, and a client that follows the
// specification does not start an interactive OAuth login: it must be
// configured with a token.
type ProtectedResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name"`
	ResourceDocumentation  string   `json:"resource_documentation"`
}

// Mount serves the MCP endpoint at path on mux (e.g. "/mcp"), with its
// protected resource metadata at the well-known paths: RFC 9728's
// (/.well-known/oauth-protected-resource followed by path) and the bare
// one, which clients also try.
func (s *Server) Mount(mux *http.ServeMux, path string) {
	mux.Handle(path, s.Handler())
	meta := s.protectedResource(path)
	mux.Handle("GET "+WellKnownProtectedResource+strings.TrimSuffix(path, "/"), meta)
	if strings.Trim(path, "/") != "" {
		mux.Handle("GET "+WellKnownProtectedResource, meta)
	}
}

// protectedResource serves the metadata of the endpoint at path.
func (s *Server) protectedResource(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := ProtectedResourceMetadata{
			Resource:               s.resourceURL(r, path),
			BearerMethodsSupported: []string{"header"},
			ResourceName:           "tend MCP server (bearer tokens issued by the Kubernetes API server, checked with TokenReview)",
			ResourceDocumentation:  DocumentationURL,
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_ = json.NewEncoder(w).Encode(m)
	})
}

// resourceURL is the endpoint's URL: Options.ResourceURL when set, else
// the one the request reached.
func (s *Server) resourceURL(r *http.Request, path string) string {
	if s.opts.ResourceURL != "" {
		return s.opts.ResourceURL
	}
	return origin(r) + path
}

// metadataURL is where the metadata of the endpoint a request reached is
// served, for the WWW-Authenticate challenge.
func (s *Server) metadataURL(r *http.Request) string {
	if s.opts.ResourceURL != "" {
		if i := strings.Index(s.opts.ResourceURL, "://"); i >= 0 {
			if j := strings.IndexByte(s.opts.ResourceURL[i+3:], '/'); j >= 0 {
				base, path := s.opts.ResourceURL[:i+3+j], s.opts.ResourceURL[i+3+j:]
				return base + WellKnownProtectedResource + strings.TrimSuffix(path, "/")
			}
			return s.opts.ResourceURL + WellKnownProtectedResource
		}
	}
	return origin(r) + WellKnownProtectedResource + strings.TrimSuffix(r.URL.Path, "/")
}

func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
