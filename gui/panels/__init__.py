"""Docked panels: the inspector and its tensor views."""
