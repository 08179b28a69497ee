"""Magenta RealTime v1 (the 2-second chunk model): runtime pieces for v1 packages."""
