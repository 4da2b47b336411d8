package api

// IdleConns returns the number of connections with no request in progress
// and none being read, as the connection limits see them.
func (s *Server) IdleConns() int { return s.limiter.Idle() }
