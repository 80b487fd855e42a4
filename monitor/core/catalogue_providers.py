"""The catalogue's provider rows: codes that mean something particular at Gmail, Microsoft
(Outlook.com, Microsoft 365) and Yahoo, told apart by the provider's own wording.

Gmail ends its replies with "- gsmtp" and gives some enhanced codes its own meaning (its 5.7.27
is an SPF failure, where the registry's x.7.27 is a null MX). Microsoft's x.7.139, x.7.30 and
x.7.515 are its own codes. Yahoo tags its replies with bracketed codes such as [TSS04].
Sending services (Amazon SES, SendGrid, Mailgun, Postmark, Brevo, SparkPost) are told apart by
their reply texts (see docs/notes/esp-relays.md for the sources and how sure each one is).
Facts from the providers' published error pages; the wording is ours.
"""

from __future__ import annotations

from monitor.core.rules import Entry, entry

_GMAIL = r"gsmtp|support\.google\.com"
_YAHOO_URL = "postmaster.yahooinc.com"
_BULK = (
    "Gmail, Yahoo and Microsoft require SPF and DKIM, a DMARC record (p=none at least) with the "
    "From domain aligned, and a PTR for the sending IP from senders of bulk mail."
)

PROVIDER_ENTRIES: tuple[Entry, ...] = (
    # ------------------------------------------------------------ Gmail
    entry(
        "Gmail: the message is unauthenticated: neither SPF nor DKIM passed for the sender "
        "(or DMARC failed). " + _BULK,
        "Publish SPF including the sending server, sign with DKIM under the From domain, "
        "publish DMARC; verify with a message to a Gmail address (Show original).",
        enhanced="x.7.26",
        text=_GMAIL,
    ),
    entry(
        "Gmail: the sender's SPF check failed: the sending IP is not in the envelope "
        "domain's SPF record.",
        "Add the sending server's IP (or its provider's include:) to the domain's SPF record.",
        enhanced="x.7.27",
        text=_GMAIL,
    ),
    entry(
        "Gmail: an unusual rate of unsolicited mail comes from this IP or domain, so Gmail is "
        "rate-limiting it.",
        "Slow down, check for a compromised account or a spam run, and watch the domain's "
        "spam rate in Google Postmaster Tools (keep it below 0.3 %).",
        enhanced="x.7.28",
        text=_GMAIL,
    ),
    entry(
        "Gmail: the DKIM check failed (no signature, or it does not verify).",
        "Sign outgoing mail with DKIM and check the published public key matches the signer's.",
        enhanced="x.7.30",
        text=_GMAIL,
    ),
    entry(
        "Gmail: the sending domain has no DMARC record, which Gmail requires of bulk senders.",
        "Publish a DMARC record (`_dmarc.<domain>` TXT, p=none at least).",
        enhanced=("x.7.31", "x.7.40"),
        text=_GMAIL,
    ),
    entry(
        "Gmail: the From domain is not aligned with the SPF or DKIM domain, so DMARC fails.",
        "Sign with DKIM under the From domain (d=) or send with an envelope sender in it.",
        enhanced="x.7.32",
        text=_GMAIL,
    ),
    entry(
        "Gmail: the sending IP has no PTR record, or it does not resolve back to the IP.",
        "Have the IP's owner set a PTR whose host name resolves back to the IP.",
        enhanced=("x.7.23", "x.7.25"),
        text=_GMAIL,
    ),
    entry(
        "Gmail wants an app password: the account has 2-Step Verification on, and the normal "
        "password is refused for mail programs.",
        "Create an app password in the Google account's security settings, or use OAuth2.",
        enhanced="x.7.9",
        text=_GMAIL,
    ),
    entry(
        "Gmail refused the user name and password. Since 2022/2024 Google accepts only app "
        "passwords (with 2-Step Verification) or OAuth2 from mail programs.",
        "Turn on 2-Step Verification and create an app password for mailcanary, or use OAuth2.",
        enhanced="x.7.8",
        text=_GMAIL,
    ),
    entry(
        "Gmail held the sign-in for review and wants a login in a web browser first.",
        "Sign in to the account in a browser from this network, then use an app password.",
        enhanced="x.7.14",
        text=_GMAIL,
    ),
    entry(
        "Gmail: the recipient is receiving mail faster than Gmail lets through.",
        "Send to that mailbox less often; mailcanary retries at the next interval.",
        enhanced="x.2.1",
        text=_GMAIL,
    ),
    entry(
        "Gmail judged the message to be likely spam or refused it by policy.",
        "Check the sending domain's authentication (SPF, DKIM, DMARC) and its reputation in "
        "Google Postmaster Tools.",
        enhanced="x.7.1",
        text=_GMAIL,
    ),
    entry(
        "Gmail: a policy refusal, often TLS required, an unusual sending rate, or failed "
        "authentication checks.",
        "Read Gmail's text and its linked help page; check TLS, SPF, DKIM and DMARC.",
        enhanced="x.7.0",
        text=_GMAIL,
    ),
    # ------------------------------------------------------------ Microsoft
    entry(
        "Microsoft: SMTP AUTH with a password (basic authentication) is turned off for this "
        "mailbox or tenant.",
        "Use OAuth2, or have the tenant admin enable authenticated SMTP for this mailbox "
        "(Microsoft is retiring basic SMTP AUTH).",
        enhanced="x.7.139",
        text=r"basic authentication is disabled|SmtpClientAuthentication is disabled",
    ),
    entry(
        "Microsoft: the credentials were refused.",
        "Check the user name (the full address) and password.",
        enhanced="x.7.139",
        text=r"credentials were incorrect",
    ),
    entry(
        "Microsoft: the login was refused by the tenant's security policy (security defaults, "
        "multi-factor authentication or conditional access block password logins).",
        "Use OAuth2, or ask the tenant admin to exempt the mailbox used for probing.",
        enhanced="x.7.139",
    ),
    entry(
        "Microsoft: basic authentication is not supported for client submission.",
        "Switch the account to OAuth2 (Microsoft ended basic auth for Outlook.com in 2024).",
        enhanced="x.7.30",
    ),
    entry(
        "Microsoft: authentication unsuccessful: a wrong password, or SMTP AUTH disabled for "
        "the mailbox.",
        "Check the password; ask the admin whether authenticated SMTP is enabled for it.",
        code=535,
        enhanced="5.7.3",
    ),
    entry(
        "Microsoft: the client is not authenticated and may not send.",
        "Configure the account's password (or OAuth2) so mailcanary logs in before sending.",
        enhanced="x.7.57",
    ),
    entry(
        "Microsoft: this login may not send as the sender address.",
        "Send as the mailbox's own address, or grant the login Send As rights.",
        enhanced="x.7.60",
    ),
    entry(
        "Microsoft: the sending domain does not meet the authentication level Microsoft requires "
        "of high-volume senders (SPF, DKIM and DMARC). " + _BULK,
        "Publish SPF, sign with DKIM, publish DMARC with alignment for the From domain.",
        enhanced="x.7.515",
    ),
    entry(
        "Microsoft: traffic from this IP is not accepted (poor reputation or on its block list).",
        "Request delisting through Microsoft's sender support (the reply links to it) and "
        "find out why the IP is listed.",
        enhanced="x.7.708",
    ),
    entry(
        "Outlook.com: part of the sending network is on Microsoft's block list.",
        "Request delisting through Outlook.com's sender support form, naming the code in "
        "brackets (e.g. S3150).",
        text=r"\(S3\d{3}\)",
    ),
    entry(
        "Microsoft: a new or unfamiliar sending IP is being throttled ('server busy').",
        "Nothing to fix at once: Microsoft raises the limit as the IP builds a reputation; "
        "keep sending volumes low at first.",
        text=r"Server busy\. Please try again later from",
    ),
    # ------------------------------------------------------------ Yahoo / AOL
    entry(
        "Yahoo: temporarily deferred because of unexpected volume or complaints from its users "
        "about mail from this IP or domain ([TSS04] and similar).",
        "Slow down and retry; check the complaint rate (Yahoo's Complaint Feedback Loop) and "
        "the sending domain's authentication.",
        text=r"\[TSS\d\d\]",
    ),
    entry(
        "Yahoo: mail from this IP is permanently deferred because of its reputation; retrying "
        "will not help.",
        "Fix what damaged the reputation (spam, compromised accounts), then ask Yahoo's "
        "sender support to review the IP.",
        text=r"\[TS0\d\]",
    ),
    entry(
        "Yahoo: the sending IP is on a blocklist Yahoo uses (usually Spamhaus).",
        "Look the IP up at Spamhaus and follow its delisting steps.",
        text=r"\[BL\d\d\]",
    ),
    entry(
        "Yahoo refused the message for policy reasons, often a DMARC failure or content "
        "judged to be spam.",
        "Check SPF, DKIM and DMARC alignment for the From domain; see Yahoo's error code page.",
        text=r"not accepted for policy reasons|" + _YAHOO_URL.replace(".", r"\."),
    ),
    # ------------------------------------------------------------ sending services (ESPs)
    entry(
        "Amazon SES: the From address (or, in the sandbox, the recipient) is not a verified "
        "identity in this region. New SES accounts start in the sandbox.",
        "Verify the sending domain or address in the SES console for this region, and ask AWS "
        "for production access to send to unverified recipients.",
        text=r"Email address is not verified|identities failed the check",
    ),
    entry(
        "Amazon SES: the account's sending rate or daily quota is used up.",
        "Send less often, or ask AWS to raise the account's sending limits.",
        text=r"Throttling failure: (Maximum sending rate|Daily message quota) exceeded",
    ),
    entry(
        "Amazon SES refused the login: SES wants SMTP credentials made for the region, not "
        "an IAM access key and secret as they are.",
        "Create SMTP credentials in the SES console of the endpoint's region and use those.",
        text=r"Authentication Credentials Invalid",
    ),
    entry(
        "SendGrid: the From address is not a verified Sender Identity of the account.",
        "Verify the single sender or authenticate the From domain in SendGrid's settings.",
        text=r"verified Sender Identity",
    ),
    entry(
        "SendGrid: the account has used up its sending credits (free plans have a limit).",
        "Wait for the credits to renew or upgrade the plan.",
        text=r"Maximum credits exceeded",
    ),
    entry(
        "Mailgun: a sandbox domain sends only to authorised recipients, for testing.",
        "Add and verify your own sending domain in Mailgun, or add the recipient to the "
        "sandbox's authorised recipients.",
        text=r"Sandbox subdomains are for test purposes only|authori[sz]ed recipients",
    ),
    entry(
        "Postmark: the From address has no confirmed Sender Signature (or domain) on the "
        "server's account.",
        "Add and confirm the sender signature or verify the domain in Postmark.",
        text=r"Sender Signature",
    ),
    entry(
        "Brevo: the sending IP is not in the account's list of authorised IPs.",
        "Add this machine's public IP under Brevo's authorised IPs, or turn the check off.",
        text=r"unauthori[sz]ed IP",
    ),
    entry(
        "SparkPost: the From domain is not a configured (verified) sending domain.",
        "Add the domain under SparkPost's sending domains and publish its DKIM record.",
        text=r"Unconfigured Sending Domain",
    ),
)
