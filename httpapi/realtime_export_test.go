package httpapi

// PauseRealtimeHub holds the hub's goroutine until resume is called, so a
// test can fill the hub's queue and see what Publish does then.
func (s *Server) PauseRealtimeHub() (resume func()) {
	paused, release := make(chan struct{}), make(chan struct{})
	go s.rt.do(func() {
		close(paused)
		<-release
	})
	<-paused
	return func() { close(release) }
}
