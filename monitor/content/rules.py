"""One line on what a common spam-filter rule means and what usually fixes it.

Names are SpamAssassin's and rspamd's rule/symbol names, Microsoft's header fields as
`KEY:VALUE`, and the structural checks of `monitor.content.lint` (prefixed `MC_`). Families
(`URIBL_*`, `HTML_IMAGE_ONLY_*`, …) are matched by prefix, longest first.
"""

from __future__ import annotations

_EXACT: dict[str, str] = {
    # SpamAssassin: content and structure
    "MIME_HTML_ONLY": "Only an HTML part: add a text/plain alternative with the same words.",
    "MIME_HTML_MOSTLY": "Mostly HTML with little or no plain-text alternative.",
    "EMPTY_MESSAGE": "No readable text at all (only images or attachments).",
    "HTML_MESSAGE": "Contains HTML (informational, scores almost nothing).",
    "MPART_ALT_DIFF": "The text and HTML alternatives say different things.",
    "MPART_ALT_DIFF_COUNT": "The text and HTML alternatives have different numbers of parts.",
    "T_REMOTE_IMAGE": "Loads images from the web (informational).",
    "TO_NO_BRKTS_HTML_ONLY": "HTML-only mail whose To: is a bare address without <>.",
    "HTML_FONT_LOW_CONTRAST": "Text in a colour close to its background (hidden text).",
    "SUBJ_ALL_CAPS": "The Subject is written in capital letters.",
    "MISSING_DATE": "No Date header.",
    "MISSING_MID": "No Message-ID header.",
    "MISSING_HEADERS": "No To: header.",
    "MISSING_SUBJECT": "No Subject header.",
    "NO_RECEIVED": "No Received headers (informational: handed in directly).",
    "NO_RELAYS": "Not relayed over SMTP (informational).",
    "FREEMAIL_FROM": "Sent from a free webmail address (Gmail, Yahoo…).",
    "FREEMAIL_FORGED_REPLYTO": "Reply-To points at a free webmail address unlike From.",
    "LOTS_OF_MONEY": "Talks about large sums of money.",
    "FILL_THIS_FORM": "Asks the reader to fill in a form.",
    "URIBL_BLOCKED": "The URI blocklist refused the receiver's DNS resolver: no verdict, "
    "not a listing.",
    # Authentication as content filters see it
    "SPF_PASS": "SPF passed for the envelope sender.",
    "SPF_FAIL": "SPF failed: the sending server is not allowed by the domain's SPF record.",
    "SPF_SOFTFAIL": "SPF soft-failed (~all): the server is not in the domain's SPF record.",
    "SPF_HELO_NONE": "The HELO name has no SPF record (usually harmless).",
    "DKIM_SIGNED": "The message carries a DKIM signature.",
    "DKIM_VALID": "A DKIM signature verified.",
    "DKIM_VALID_AU": "A DKIM signature verified for the From domain (aligned).",
    "DKIM_INVALID": "A DKIM signature did not verify (body or headers changed, or bad key).",
    "DMARC_PASS": "DMARC passed.",
    "DMARC_NONE": "DMARC failed but the domain's policy is p=none.",
    "DMARC_REJECT": "DMARC failed and the domain asks receivers to reject.",
    # rspamd
    "R_SPF_ALLOW": "SPF passed.",
    "R_SPF_FAIL": "SPF failed.",
    "R_SPF_SOFTFAIL": "SPF soft-failed.",
    "R_DKIM_ALLOW": "A DKIM signature verified.",
    "R_DKIM_REJECT": "A DKIM signature did not verify.",
    "R_DKIM_NA": "No DKIM signature.",
    "DMARC_POLICY_ALLOW": "DMARC passed.",
    "DMARC_POLICY_REJECT": "DMARC failed with a reject policy.",
    "DMARC_POLICY_SOFTFAIL": "DMARC failed with a quarantine or none policy.",
    "MIME_GOOD": "Well-formed MIME structure (lowers the score).",
    "R_PARTS_DIFFER": "The text and HTML parts differ a lot.",
    "R_MISSING_CHARSET": "A text part does not declare its charset.",
    "ONCE_RECEIVED": "Only one Received header (sent straight from the client's server).",
    "FORGED_SENDER": "The envelope sender differs from From.",
    "MANY_INVISIBLE_PARTS": "Several parts a reader never sees.",
    "HAS_LIST_UNSUB": "Has a List-Unsubscribe header (lowers the score).",
    # Microsoft
    "SFV:NSPM": "Microsoft's filter judged it not spam.",
    "SFV:SPM": "Microsoft's filter judged it spam.",
    "SFV:SKN": "Marked not spam before filtering (a mail-flow rule).",
    "SFV:SKS": "Marked spam before filtering (a mail-flow rule).",
    "SFV:SKA": "Filtering skipped: the sender is on the recipient's allow list.",
    "SFV:SKB": "Marked spam: the sender is on a block list.",
    "SFV:SFE": "Filtering skipped: the sender is on the recipient's Safe Senders list.",
    "SFV:BLK": "Blocked: the sender is on the recipient's Blocked Senders list.",
    "CAT:SPM": "Classified as spam.",
    "CAT:HSPM": "Classified as high-confidence spam.",
    "CAT:BULK": "Classified as bulk mail (the BCL reached the policy's threshold).",
    "CAT:PHSH": "Classified as phishing.",
    "CAT:SPOOF": "Classified as spoofing (the From domain failed authentication).",
    # mailcanary's own structural checks (monitor.content.lint)
    "MC_NO_TEXT_PART": "No text/plain part: many filters count that against HTML mail.",
    "MC_IMAGE_ONLY_HTML": "The HTML is images with almost no words: filters read only words.",
    "MC_NO_LIST_UNSUBSCRIBE": "Bulk mail without List-Unsubscribe: Gmail and Yahoo require "
    "one-click unsubscribe (RFC 8058) from bulk senders.",
    "MC_OVERSIZED": "Larger than 10 MB: many receivers refuse or truncate it.",
    "MC_BROKEN_MIME": "The MIME structure is broken: parts may be dropped or shown raw.",
    "MC_FROM_NOT_ACCOUNT": "From is not the sending account's address or domain: DMARC "
    "alignment fails and many servers refuse it.",
    "MC_DKIM_NOT_ALIGNED": "The DKIM signature's domain (d=) is not the From domain.",
    "MC_NO_SUBJECT": "No Subject.",
}

_PREFIXES: dict[str, str] = {
    "HTML_IMAGE_ONLY_": "The HTML is images with very few words (filters cannot read images).",
    "HTML_IMAGE_RATIO_": "Little text for the area of its images.",
    "HTML_SHORT_LINK_IMG_": "Very short HTML consisting of a linked image.",
    "HTML_OBFUSCATE_": "HTML text obfuscated (entities or odd characters) to dodge filters.",
    "URIBL_": "A link's domain is on a URI blocklist.",
    "SURBL_": "A link's domain is on a URI blocklist.",
    "DBL_": "A link's domain is on Spamhaus's domain blocklist.",
    "RCVD_IN_DNSWL_": "The sending IP is on a DNS allowlist (lowers the score).",
    "RCVD_IN_": "The sending IP is on a DNS blocklist or reputation list.",
    "RBL_": "The sending IP is on a DNS blocklist.",
    "BAYES_": "The receiver's statistical filter, trained on its users' mail.",
    "ADVANCE_FEE_": "Wording typical of advance-fee fraud.",
    "FREE_": "Promises something free, a classic spam phrase.",
    "HFILTER_": "Suspicious HELO or hostname of the sending server.",
    "BCL:": "Microsoft's bulk complaint level, 0-9 (bulk at the policy's threshold, default 7).",
    "SFV:": "Microsoft's spam filter verdict.",
    "CAT:": "Microsoft's category for the message.",
    "PYZOR_": "The content matches a collaborative spam-signature network.",
    "RAZOR2_": "The content matches a collaborative spam-signature network.",
    "DCC_": "The content was seen in bulk by the DCC checksum network.",
}


def explain(rule: str) -> str | None:
    """One line for `rule`, or None when it is not one of the common ones."""
    name = rule.strip().upper()
    if name in _EXACT:
        return _EXACT[name]
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if name.startswith(prefix):
            return _PREFIXES[prefix]
    return None
