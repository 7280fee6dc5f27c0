"""Viewer controls of the activation-* models (nerfstudio's viewer elements)."""

from __future__ import annotations


def add_viewer_controls(model) -> None:
    """Declare the inference setting's controls on ``model`` (none yet)."""
