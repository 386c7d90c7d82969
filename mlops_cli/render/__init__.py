"""Renderers: a stored package turned into the layout a server loads."""
