"""stronglens."""
