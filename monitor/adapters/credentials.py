"""The one place an Account becomes what a login needs, for SMTP and IMAP alike.

A password account logs in with its user name and password; an auth = "xoauth2" account with
its user name and an access token from the token store in the state directory (shared per
account, see `oauth.token_source`), never with a password. Without a state directory an
xoauth2 account still gets a token source: one whose every login fails with a single clear
line, rather than a password login it has no password for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from monitor.adapters.oauth import OAuthError, TokenSource, token_source
from monitor.config.schema import Account


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(default="", repr=False)  # "" when the account has none
    oauth: TokenSource | None = None  # set: AUTH XOAUTH2 with its tokens, `password` unused

    @property
    def unusable(self) -> str | None:
        """Why no login can succeed, known before connecting; None when one may."""
        return self.oauth.reason if isinstance(self.oauth, _NoTokenStore) else None


def credentials(account: Account, state_dir: Path | None) -> Credentials:
    """How `account` logs in; `state_dir` holds the token store of xoauth2 accounts."""
    password = account.password.get_secret_value() if account.password else ""
    if account.auth != "xoauth2":
        return Credentials(account.username, password)
    found = token_source(account, state_dir) if state_dir is not None else None
    return Credentials(account.username, oauth=found or _NoTokenStore(account.name))


class _NoTokenStore:
    """The token source of an xoauth2 account when no state directory was given."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.reason = f"account {account} uses XOAUTH2, but no token store was given"

    async def access_token(self) -> str:
        raise OAuthError(self.account, "no_token_store", self.reason, transient=False)

    def forget(self, token: str) -> None:
        pass
