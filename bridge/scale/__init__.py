"""Scale-out of the multi-stream host (Ray Serve)."""
