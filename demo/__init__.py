"""The demo: a realistic synthetic production stream through the real pipeline, offline."""
