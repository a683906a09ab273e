"""The words of alert emails: subject lines, introductions and advice for each kind of alert.

Message ids are English and marked so that ``pybabel extract`` finds them. They are translated
when an email is rendered, with the catalog of the project's locale. Subjects take
``{project}`` and ``{count}``, and the count is already formatted for the locale.
"""

from collections.abc import Callable

from config.alert_settings import AlertKind
from config.i18n import N_

PluralTranslate = Callable[[str, str, int], str]


def subject_patterns(ngettext: PluralTranslate, count: int) -> dict[AlertKind, str]:
    """Translate the subject of a first notice of each kind for ``count`` alerts.

    The literal ``ngettext`` calls let ``pybabel extract`` record each singular and plural
    as one catalog entry.
    """
    return {
        AlertKind.CERTIFICATION_MISSING: ngettext(
            "[acuse] {project}: {count} send not certified",
            "[acuse] {project}: {count} sends not certified",
            count,
        ),
        AlertKind.DELIVERY_FAILED: ngettext(
            "[acuse] {project}: {count} send not delivered",
            "[acuse] {project}: {count} sends not delivered",
            count,
        ),
        AlertKind.CERTIFICATION_REJECTED: ngettext(
            "[acuse] {project}: {count} send rejected by Lleida.net",
            "[acuse] {project}: {count} sends rejected by Lleida.net",
            count,
        ),
        AlertKind.NOT_COPIED: ngettext(
            "[acuse] {project}: {count} send without Lleida.net in copy",
            "[acuse] {project}: {count} sends without Lleida.net in copy",
            count,
        ),
        AlertKind.EVIDENCE_UNVERIFIED: ngettext(
            "[acuse] {project}: {count} send with unverified evidence",
            "[acuse] {project}: {count} sends with unverified evidence",
            count,
        ),
        AlertKind.ORPHAN_EVIDENCE: ngettext(
            "[acuse] {project}: {count} piece of evidence matches no send",
            "[acuse] {project}: {count} pieces of evidence match no send",
            count,
        ),
        AlertKind.MAILBOX_UNREACHABLE: ngettext(
            "[acuse] {project}: evidence mailbox unreachable",
            "[acuse] {project}: {count} evidence mailboxes unreachable",
            count,
        ),
        AlertKind.EVIDENCE_SILENCE: ngettext(
            "[acuse] {project}: no evidence is arriving",
            "[acuse] {project}: no evidence is arriving",
            count,
        ),
        AlertKind.QUARANTINED_MESSAGES: ngettext(
            "[acuse] {project}: {count} message quarantined",
            "[acuse] {project}: {count} messages quarantined",
            count,
        ),
        AlertKind.SEND_LOG_FAILED: ngettext(
            "[acuse] {project}: {count} send-log file failed to import",
            "[acuse] {project}: {count} send-log files failed to import",
            count,
        ),
        AlertKind.ALERT_DELIVERY_FAILING: ngettext(
            "[acuse] alert emails are not being delivered",
            "[acuse] alert emails are not being delivered",
            count,
        ),
    }


REMINDER_SUBJECT = N_("{subject} (reminder)")


def resolved_subject_pattern(ngettext: PluralTranslate, count: int) -> str:
    """Translate the subject of a resolution note about ``count`` alerts."""
    return ngettext(
        "[acuse] {project}: {count} problem solved",
        "[acuse] {project}: {count} problems solved",
        count,
    )


DIGEST_SUBJECT = N_("[acuse] {project}: daily summary of {date}")
TEST_SUBJECT = N_("[acuse] {project}: test email")

TITLES: dict[AlertKind, str] = {
    AlertKind.CERTIFICATION_MISSING: N_("Sends not certified"),
    AlertKind.DELIVERY_FAILED: N_("Sends not delivered"),
    AlertKind.CERTIFICATION_REJECTED: N_("Sends rejected by Lleida.net"),
    AlertKind.NOT_COPIED: N_("Sends without Lleida.net in copy"),
    AlertKind.EVIDENCE_UNVERIFIED: N_("Sends with unverified evidence"),
    AlertKind.ORPHAN_EVIDENCE: N_("Evidence that matches no send"),
    AlertKind.MAILBOX_UNREACHABLE: N_("Evidence mailbox unreachable"),
    AlertKind.EVIDENCE_SILENCE: N_("No evidence is arriving"),
    AlertKind.QUARANTINED_MESSAGES: N_("Quarantined messages"),
    AlertKind.SEND_LOG_FAILED: N_("Send-log files not imported"),
    AlertKind.ALERT_DELIVERY_FAILING: N_("Alert emails not delivered"),
}

INTRODUCTIONS: dict[AlertKind, str] = {
    AlertKind.CERTIFICATION_MISSING: N_(
        "These sends passed their deadline without any evidence from Lleida.net, so nothing "
        "proves that they were certified."
    ),
    AlertKind.DELIVERY_FAILED: N_(
        "Lleida.net's evidence says that the recipient's mail server refused these sends. "
        "The reason column shows the server's SMTP reply."
    ),
    AlertKind.CERTIFICATION_REJECTED: N_(
        "Lleida.net notified that it did not certify these sends. The reason column shows "
        "the reason it gave."
    ),
    AlertKind.NOT_COPIED: N_(
        "The send log says these emails went out without Lleida.net in copy, so they are not "
        "certified."
    ),
    AlertKind.EVIDENCE_UNVERIFIED: N_(
        "The only evidence for these sends failed its authenticity checks, so it does not count "
        "as a certification."
    ),
    AlertKind.ORPHAN_EVIDENCE: N_(
        "This evidence arrived from Lleida.net but matches no send in the imported send log."
    ),
    AlertKind.MAILBOX_UNREACHABLE: N_(
        "acuse cannot read the evidence mailbox, so new evidence is not being collected."
    ),
    AlertKind.EVIDENCE_SILENCE: N_(
        "Sends keep going out with Lleida.net in copy, but no evidence at all has arrived for a "
        "long time. The evidence mailbox or its forwarding may be broken."
    ),
    AlertKind.QUARANTINED_MESSAGES: N_(
        "These messages came from the provider but could not be read, so they were kept aside "
        "for review."
    ),
    AlertKind.SEND_LOG_FAILED: N_(
        "acuse could not import these send-log exports, so their sends are not being checked. "
        "The other exports are imported as usual."
    ),
    AlertKind.ALERT_DELIVERY_FAILING: N_(
        "The SMTP server has not accepted alert emails for a long time. The alerts wait in the "
        "outbox and go out as soon as the server accepts them."
    ),
}
REMINDER_INTRODUCTION = N_("Reminder: these problems are still open.")
RESOLVED_INTRODUCTION = N_("These problems are solved; no action is needed.")

ADVICE: dict[AlertKind, tuple[str, ...]] = {
    AlertKind.CERTIFICATION_MISSING: (
        N_("Look for the send in Lleida.net's Tools: the evidence may have gone elsewhere."),
        N_("Check the client's address in PACO."),
        N_("If it was not certified, resend it with Lleida.net in Cc (never in Bcc)."),
    ),
    AlertKind.DELIVERY_FAILED: (
        N_("Check the client's address with the client; the SMTP reply says why it failed."),
        N_("Resend to the corrected address with Lleida.net in Cc."),
    ),
    AlertKind.CERTIFICATION_REJECTED: (
        N_("Fix what Lleida.net reports: credit, an unauthorised sender or a size over 20 MB."),
        N_("Then resend the email with Lleida.net in Cc."),
    ),
    AlertKind.NOT_COPIED: (
        N_(
            "Resend the email with Lleida.net's certifying address in Cc; in Bcc it is not "
            "certified."
        ),
    ),
    AlertKind.EVIDENCE_UNVERIFIED: (
        N_("Do not rely on this evidence: download the certificate from Lleida.net's Tools."),
        N_("Tell the operator, who can check the evidence mailbox for forged messages."),
    ),
    AlertKind.ORPHAN_EVIDENCE: (
        N_("Find the send in PACO: the imported send log may be missing it."),
        N_("Import a newer export of the send log if it was exported before this send."),
    ),
    AlertKind.MAILBOX_UNREACHABLE: (
        N_("Check the mail server, the user name and the password file of the mailbox."),
        N_("Run 'acuse check-config --live' to test the login."),
    ),
    AlertKind.EVIDENCE_SILENCE: (
        N_(
            "Check that Lleida.net still sends evidence to this mailbox and that any forwarding "
            "rule works."
        ),
        N_("Look in Lleida.net's Tools for the certificates of recent sends."),
    ),
    AlertKind.QUARANTINED_MESSAGES: (
        N_("List them with 'acuse quarantine' and reprocess them after a fix."),
    ),
    AlertKind.SEND_LOG_FAILED: (
        N_("Fix the file as the reason says, or export the report from PACO again."),
        N_("acuse imports the file again as soon as its content changes."),
    ),
    AlertKind.ALERT_DELIVERY_FAILING: (
        N_("Check the SMTP server, the [smtp] settings and the password file."),
    ),
}
