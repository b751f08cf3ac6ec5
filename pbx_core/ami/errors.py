"""What can go wrong talking AMI. Every message names the peer (and the action, where there is one),
so a log line or a CLI error says what to fix without a traceback."""

from __future__ import annotations


class AmiError(Exception):
    """Base of every AMI failure."""


class AmiConnectError(AmiError):
    """TCP connect refused, unreachable or timed out, or the peer closed during login."""


class AmiAuthError(AmiError):
    """Asterisk refused the Login (wrong user or secret, or an ACL ``deny``)."""


class AmiTimeout(AmiError):
    """No (complete) reply to an action in time."""


class AmiDisconnected(AmiError):
    """Not connected, or the connection dropped while the action waited for its reply."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error`` to an action."""

    def __init__(self, message: str, action: str = "", reply_message: str = "") -> None:
        super().__init__(message)
        self.action = action
        self.reply_message = reply_message


class AmiLimitExceeded(AmiError):
    """The PBX overran a bound on something it feeds us (an EventList that never completes, a
    banner without a line ending). The connection is dropped; the client reconnects and resyncs.
    ``limit`` names the bound for logs and metrics."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
