package memcache

import "time"

// SetStallAge sets how long a write must have been blocked before the
// stall watchdog may cut its connection (tests shorten it).
func SetStallAge(s *Server, d time.Duration) { s.stallAge = d }
