package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
)

// decodeJSON reads the request body into v: JSON only (415), at most
// MaxBodyBytes (413), one well-formed value of the right types (400).
func (a *API) decodeJSON(c *gin.Context, v any) error {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	body := http.MaxBytesReader(c.Writer, c.Request.Body, a.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		return jsonError(err, a.cfg.MaxBodyBytes)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return jsonError(err, a.cfg.MaxBodyBytes)
		}
		return errorf(http.StatusBadRequest, "the body must hold one JSON object and nothing after it")
	}
	return nil
}

func jsonError(err error, limit int64) error {
	var (
		tooBig    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		netErr    net.Error
	)
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		// Not the error's text: it names this server's and the client's addresses.
		return errorf(http.StatusRequestTimeout, "the request body did not arrive in time")
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed JSON: the body ends too early")
	case errors.As(err, &syntaxErr):
		return errorf(http.StatusBadRequest, "malformed JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return errorf(http.StatusBadRequest, "the body must be a JSON object")
		}
		return errorf(http.StatusBadRequest, "field %q must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	return errorf(http.StatusBadRequest, "malformed JSON: %s", err.Error())
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	}
	return "a JSON " + goKind
}
