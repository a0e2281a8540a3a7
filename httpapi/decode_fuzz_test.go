package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bytes as the JSON body of every route
// that takes one (RELIABILITY F2): the answer is never a 5xx, and every
// error is problem+json with a code.
func FuzzDecodeRequest(f *testing.F) {
	env := newFuzzEnv(f)
	var routes [][2]string
	for _, rt := range env.API.Routes() {
		if rt.Method == http.MethodPost || rt.Method == http.MethodPatch || rt.Method == http.MethodPut {
			routes = append(routes, [2]string{rt.Method, rt.Path})
		}
	}
	for i, b := range []string{
		`{"title":"a"}`, `{"name":"x","visibility":"private"}`, `{"title":"` + strings.Repeat("é", 600) + `"}`,
		`{"due":null,"parent_id":null}`, `{"move":{"after_id":""}}`, `{"assignees":["x"],"tags":["a","a"]}`,
		`{"statuses":[{"name":"A","category":"done"}]}`, `{"work_hours":{"start":"25:00","end":"1","days":[8]}}`,
		`{"email":"a@b.c","role":"owner"}`, `{"body":"@[x](user:zzz)"}`, `[`, `{"a":1,"a":2}`, "\x00", `{"title":1e999}`,
	} {
		f.Add(uint8(i), []byte(b))
	}
	h := env.API.Handler()
	fill := (&gen{f: env}).fillReal
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := routes[int(which)%len(routes)]
		req := httptest.NewRequest(rt[0], fill(rt[1]), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+env.ws.Token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", rt[0], rt[1], body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var p struct {
				Code string `json:"code"`
			}
			if w.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Code == "" {
				t.Fatalf("%s %s: %d is not problem+json: %s", rt[0], rt[1], w.Code, w.Body)
			}
		}
	})
}
