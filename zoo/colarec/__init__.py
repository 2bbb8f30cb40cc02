"""ColaRec (CIKM 2024): content-based collaborative generation, re-implemented on the shared benchmark API."""
