package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/teamflow/teamflow/httpapi"
)

// notReady is a StateSource whose Ready fails with err.
type notReady struct{ err error }

func (notReady) AppliedIndex() uint64                      { return 0 }
func (notReady) WaitApplied(context.Context, uint64) error { return nil }
func (s notReady) Ready() error                            { return s.err }

// TestReadyzReason: /readyz names why a node is not ready when Ready says
// so with an OpError (written for the caller), and nothing more for any
// other error, which may name files and is served without a credential.
func TestReadyzReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&httpapi.OpError{Code: "group_not_ready", Detail: "dedicated group 7 is not open on this node"},
			`{"code":"group_not_ready","reason":"dedicated group 7 is not open on this node","status":"unavailable"}`},
		{errors.New("fsync /data/state/000042.log: input/output error"), `{"status":"unavailable"}`},
	} {
		h := httpapi.New(httpapi.Deps{State: notReady{tc.err}}, httpapi.Config{}).Handler()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != tc.want {
			t.Errorf("%v: %d %s, want 503 %s", tc.err, rec.Code, rec.Body.String(), tc.want)
		}
	}
}
