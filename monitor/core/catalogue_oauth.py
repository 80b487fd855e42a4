"""The catalogue's rows for OAuth2 (XOAUTH2) accounts: refused token refreshes and bearer
tokens the mail server would not take. See `monitor.core.rules` for matching; the
adapters word these failures ("OAuth token refresh refused by HOST: invalid_grant: …")."""

from __future__ import annotations

from monitor.core.rules import Entry, entry

_LOGIN = "run `mailcanary oauth login NAME` (NAME: this account) to sign in again."

OAUTH_ENTRIES: tuple[Entry, ...] = (
    entry(
        "The identity provider refused to renew the account's OAuth access: the refresh token "
        "was revoked, consent was withdrawn, the password changed, or it expired unused.",
        f"Sign in again: {_LOGIN}",
        kind="auth_failed",
        text=r"token refresh refused.*invalid_grant",
    ),
    entry(
        "The identity provider does not accept this client (wrong client_id or client secret, "
        "or the app registration was removed or not consented for the tenant).",
        "Check oauth.client_id, the client secret and the app registration at the provider; "
        f"then {_LOGIN}",
        kind="auth_failed",
        text=r"token refresh refused.*(invalid_client|unauthorized_client)",
    ),
    entry(
        'The account uses auth = "xoauth2" but no refresh token is stored for it yet.',
        f"Sign in once: {_LOGIN} (or import one with --refresh-token).",
        kind="auth_failed",
        text=r"has no OAuth refresh token",
    ),
    entry(
        "The identity provider could not be reached or failed while renewing the access token.",
        "Usually passing; mailcanary tries again at the next probe. If it persists, check "
        "this machine's access to the provider's token endpoint.",
        kind="auth_failed",
        text=r"token refresh (at .* failed|refused.*(temporarily_unavailable|server_error))",
    ),
    entry(
        "The mail server refused the OAuth access token even though the provider issued it: "
        "the token lacks the mail scopes, or IMAP/SMTP access is off for the mailbox.",
        "Check the scopes granted (Microsoft: IMAP.AccessAsUser.All and SMTP.Send; Google: "
        f"https://mail.google.com/) and that the mailbox allows IMAP and SMTP AUTH; then {_LOGIN}",
        kind="auth_failed",
        text=r"XOAUTH2 login refused",
    ),
)
