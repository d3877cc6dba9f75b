package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// WriteProblem answers with application/problem+json.
func WriteProblem(c echo.Context, p Problem) error {
	p.defaults()
	return writeProblemJSON(c, p.Status, p)
}

// defaults fills the members RFC 9457 lets a server leave implicit.
func (p *Problem) defaults() {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
}

// writeProblemJSON answers with a problem document v: a Problem, or a
// struct embedding one with extension members.
func writeProblemJSON(c echo.Context, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(status, "application/problem+json", body)
}
