package files

// ForceMountPoint makes s restore as into a mount point (build inside, swap entries).
func ForceMountPoint(s *Source) { s.forceInside = true }
