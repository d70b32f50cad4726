"""Typed helpers for the daily AMI actions, mixed into :class:`~amiclient.AMIClient`.

The helpers live in :mod:`amiclient.helpers`, one module per family; this
module keeps the historical import path.
"""
from __future__ import annotations

from .helpers import ActionHelpers

__all__ = ["ActionHelpers"]
