"""Provider presets: the servers, ports and spam folder names of the big mailbox providers.

Facts come from /work/shared/notes/providers.md (provider help pages, Thunderbird's autoconfig
database, IMAP clients' issue trackers). Anything not confirmed there is listed in `unconfirmed`
so `mailcanary providers` can say so and users know which value to override if it is wrong.

The sending services (ESP relays: Amazon SES, SendGrid, Mailgun, Postmark, Brevo, SparkPost,
Mailjet) have SMTP only: an account using one watches nothing unless it adds its own imap.
Their facts and sources are in docs/notes/esp-relays.md (from the services' documentation as
known to us, not checked against the live services).
"""

from pydantic import BaseModel, ConfigDict

from monitor.core.models import Security

# Ports used when a protocol's security is chosen without a port (IANA assignments, RFC 8314).
DEFAULT_PORTS: dict[tuple[str, Security], int] = {
    ("smtp", Security.TLS): 465,
    ("smtp", Security.STARTTLS): 587,
    ("smtp", Security.NONE): 25,
    ("imap", Security.TLS): 993,
    ("imap", Security.STARTTLS): 143,
    ("imap", Security.NONE): 143,
}
# The security a well-known port implies (RFC 8314, RFC 6409); never "none".
SECURITY_BY_PORT = {465: Security.TLS, 993: Security.TLS, 587: Security.STARTTLS}
SECURITY_BY_PORT |= {143: Security.STARTTLS, 25: Security.STARTTLS}


class PresetEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    port: int
    security: Security

    def __str__(self) -> str:
        return f"{self.host}:{self.port} {self.security.value}"


class Preset(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    smtp: PresetEndpoint
    imap: PresetEndpoint | None = None  # None: a sending service with no mailbox to watch
    spam_folder_hint: str | None = None
    junk_flag: bool | None = None  # does LIST mark the spam folder \Junk? None: not known
    auth_note: str
    note: str = ""
    unconfirmed: tuple[str, ...] = ()
    username: str | None = None  # a fixed SMTP user name (SendGrid's "apikey"), else the email


def _tls(host: str, port: int) -> PresetEndpoint:
    return PresetEndpoint(host=host, port=port, security=Security.TLS)


def _starttls(host: str, port: int = 587) -> PresetEndpoint:
    return PresetEndpoint(host=host, port=port, security=Security.STARTTLS)


# Amazon SES regions with an SMTP endpoint email-smtp.<region>.amazonaws.com.
SES_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "me-south-1",
    "af-south-1",
    "il-central-1",
    # AWS GovCloud (US): SES sends there (no receiving); AWS lists both among SMTP regions.
    "us-gov-west-1",
    "us-gov-east-1",
)

_YANDEX_AUTH = "app password (mandatory with 2FA); XOAUTH2 works though not advertised"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="gmail",
            title="Gmail / Google Workspace",
            smtp=_starttls("smtp.gmail.com"),
            imap=_tls("imap.gmail.com", 993),
            spam_folder_hint="[Gmail]/Spam",
            junk_flag=True,
            auth_note="app password (needs 2-Step Verification) or XOAUTH2; "
            "'less secure apps' are gone",
            note="spam folder name follows the account language; found by its \\Junk flag; "
            "465 tls also works",
        ),
        Preset(
            name="outlook",
            title="Outlook.com / Hotmail",
            smtp=_starttls("smtp-mail.outlook.com"),
            imap=_tls("outlook.office365.com", 993),
            spam_folder_hint="Junk",
            junk_flag=True,
            auth_note="OAuth2 only: password (basic) login ended 16 Sep 2024",
            note="IMAP may be off by default; \\Junk flag sent, SPECIAL-USE not advertised",
        ),
        Preset(
            name="office365",
            title="Microsoft 365",
            smtp=_starttls("smtp.office365.com"),
            imap=_tls("outlook.office365.com", 993),
            spam_folder_hint="Junk Email",
            junk_flag=False,
            auth_note="OAuth2 (IMAP.AccessAsUser.All, SMTP.Send); SMTP basic auth off by "
            "default for existing tenants after Dec 2026 (535 5.7.139 / 550 5.7.30)",
        ),
        Preset(
            name="yahoo",
            title="Yahoo Mail",
            smtp=_tls("smtp.mail.yahoo.com", 465),
            imap=_tls("imap.mail.yahoo.com", 993),
            spam_folder_hint="Bulk Mail",
            junk_flag=True,
            auth_note="app password",
            note='selecting "Spam" fails; 587 starttls also seen',
        ),
        Preset(
            name="aol",
            title="AOL Mail",
            smtp=_tls("smtp.aol.com", 465),
            imap=_tls("imap.aol.com", 993),
            spam_folder_hint="Bulk Mail",
            junk_flag=None,
            auth_note="app password (Yahoo login system)",
            unconfirmed=("spam folder name", "\\Junk flag"),
        ),
        Preset(
            name="yandex",
            title="Yandex Mail",
            smtp=_tls("smtp.yandex.com", 465),
            imap=_tls("imap.yandex.com", 993),
            spam_folder_hint="Спам",
            junk_flag=True,
            auth_note=_YANDEX_AUTH,
            note='spam folder is modified UTF-7 "&BCEEPwQwBDw-"; hierarchy delimiter "|"; '
            "587 starttls also listed",
        ),
        Preset(
            name="yandex-tr",
            title="Yandex Mail (Turkey)",
            smtp=_tls("smtp.yandex.com.tr", 465),
            imap=_tls("imap.yandex.com.tr", 993),
            spam_folder_hint="Спам",
            junk_flag=True,
            auth_note=_YANDEX_AUTH,
            note="587 starttls also listed",
            unconfirmed=("IMAP host",),
        ),
        Preset(
            name="icloud",
            title="iCloud Mail",
            smtp=_starttls("smtp.mail.me.com"),
            imap=_tls("imap.mail.me.com", 993),
            spam_folder_hint="Junk",
            junk_flag=None,
            auth_note="app-specific password; no third-party OAuth",
            unconfirmed=("\\Junk flag",),
        ),
        Preset(
            name="zoho",
            title="Zoho Mail",
            smtp=_tls("smtp.zoho.com", 465),
            imap=_tls("imap.zoho.com", 993),
            spam_folder_hint="Spam",
            junk_flag=True,
            auth_note="app password with 2FA; IMAP must be enabled",
            note="paid plans use smtppro.zoho.com; other regions: .eu, .in, .com.au",
            unconfirmed=("spam folder name",),
        ),
        Preset(
            name="fastmail",
            title="Fastmail",
            smtp=_tls("smtp.fastmail.com", 465),
            imap=_tls("imap.fastmail.com", 993),
            spam_folder_hint="Spam",
            junk_flag=None,
            auth_note="app password, always",
            unconfirmed=("spam folder name", "\\Junk flag"),
        ),
        Preset(
            name="gmx",
            title="GMX (gmx.net)",
            smtp=_tls("mail.gmx.net", 465),
            imap=_tls("imap.gmx.net", 993),
            spam_folder_hint="Spamverdacht",
            junk_flag=None,
            auth_note="enable IMAP in settings; app password with 2FA",
            note="gmx.com accounts send via mail.gmx.com; 587 starttls also works",
            unconfirmed=("spam folder name", "\\Junk flag"),
        ),
        Preset(
            name="mailru",
            title="Mail.ru",
            smtp=_tls("smtp.mail.ru", 465),
            imap=_tls("imap.mail.ru", 993),
            spam_folder_hint="Спам",
            junk_flag=None,
            auth_note='password for "external apps"',
            note="587 starttls also works",
            unconfirmed=("spam folder name", "\\Junk flag"),
        ),
        *(
            Preset(
                name=f"ses-{region}",
                title=f"Amazon SES ({region})",
                smtp=_starttls(f"email-smtp.{region}.amazonaws.com"),
                auth_note="SES SMTP credentials (made per region from an IAM user), "
                "not the AWS access key",
                note="465 tls; 25 and 2587 starttls, 2465 tls also; new accounts start in "
                "the sandbox (verified recipients only)",
            )
            for region in SES_REGIONS
        ),
        Preset(
            name="sendgrid",
            title="SendGrid (Twilio)",
            smtp=_starttls("smtp.sendgrid.net"),
            username="apikey",
            auth_note='user "apikey" (literally), password an API key with Mail Send access',
            note="465 tls; 25 and 2525 starttls also",
        ),
        Preset(
            name="mailgun",
            title="Mailgun (US region)",
            smtp=_starttls("smtp.mailgun.org"),
            auth_note="an SMTP credential of the sending domain (e.g. postmaster@your-domain) "
            "and its own password",
            note="465 tls; 25 and 2525 starttls also",
        ),
        Preset(
            name="mailgun-eu",
            title="Mailgun (EU region)",
            smtp=_starttls("smtp.eu.mailgun.org"),
            auth_note="an SMTP credential of the sending domain and its own password",
            note="465 tls; 25 and 2525 starttls also",
        ),
        Preset(
            name="postmark",
            title="Postmark",
            smtp=_starttls("smtp.postmarkapp.com"),
            auth_note="the Server API token as both user name and password",
            note="25 and 2525 starttls also; broadcast streams use smtp-broadcasts.postmarkapp.com",
        ),
        Preset(
            name="brevo",
            title="Brevo (formerly Sendinblue)",
            smtp=_starttls("smtp-relay.brevo.com"),
            auth_note="the SMTP login shown under SMTP & API, password an SMTP key (not an "
            "API key)",
            note="465 tls and 2525 starttls also; formerly smtp-relay.sendinblue.com",
        ),
        Preset(
            name="sparkpost",
            title="SparkPost (US)",
            smtp=_starttls("smtp.sparkpostmail.com"),
            username="SMTP_Injection",
            auth_note='user "SMTP_Injection", password an API key with "Send via SMTP"',
            note="2525 starttls also; EU accounts use smtp.eu.sparkpostmail.com",
        ),
        Preset(
            name="mailjet",
            title="Mailjet",
            smtp=_starttls("in-v3.mailjet.com"),
            auth_note="the API key as user name, the secret key as password",
            note="465 tls; 25 starttls also",
        ),
    )
}


def fill_endpoint(
    kind: str,
    host: str | None,
    port: int | None,
    security: Security | None,
    preset: PresetEndpoint | None,
) -> tuple[str | None, int | None, Security | None]:
    """Explicit values win one by one; a port or security that differs from the preset's
    re-derives the other (gmail with port 465 means tls; with security "tls" it means 465)."""
    if security is None:
        by_port = SECURITY_BY_PORT.get(port) if port is not None else None
        if preset is not None and (port in (None, preset.port) or by_port is None):
            security = preset.security
        else:
            security = by_port
    if port is None and security is not None:
        same = preset is not None and preset.security == security
        port = preset.port if same else DEFAULT_PORTS[(kind, security)]
    return host or (preset.host if preset else None), port, security


PRESET_COLUMNS: tuple[str, ...] = ("name", "smtp", "imap", "spam folder", "auth", "unconfirmed")


def preset_rows() -> list[dict[str, str]]:
    """One row per preset for `mailcanary providers`, keyed by PRESET_COLUMNS."""
    rows = []
    for preset in PRESETS.values():
        spam = preset.spam_folder_hint or "-"
        if preset.junk_flag:
            spam += " (\\Junk)"
        rows.append(
            {
                "name": preset.name,
                "smtp": str(preset.smtp),
                "imap": str(preset.imap) if preset.imap else "- (sending service)",
                "spam folder": spam,
                "auth": preset.auth_note + (f"; {preset.note}" if preset.note else ""),
                "unconfirmed": ", ".join(preset.unconfirmed) or "-",
            }
        )
    return rows
