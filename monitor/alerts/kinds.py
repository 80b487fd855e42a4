"""The kinds of alert: a leaf, because the config names them and every command loads the
config, while the state machine (state.py) is needed only where alerts are decided."""

from __future__ import annotations

from enum import StrEnum


class AlertKind(StrEnum):
    SEND_FAILED = "send_failed"
    CHECK_FAILED = "check_failed"
    MISSING = "missing"
    SPAM = "spam"
    SLOW = "slow"
