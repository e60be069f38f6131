package hasql

// SessionPooledForTest reports whether the physical session behind s works through a
// transaction pooler (hasql.pooler=transaction, or a pooler recognised). For tests only.
func SessionPooledForTest(s *Session) bool {
	ph := s.phys()
	return ph != nil && ph.pooled
}
