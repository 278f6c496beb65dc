"""A retrieval quality set: IT/MSP help-desk passages and questions that do not reuse their words.

Each question is paired with the key of the one passage that answers it. The questions were
written to share no content word (four letters or more, stop words aside) with their answer:
:func:`shared_words` checks that, so the set measures meaning, not keyword matching.
``KEYWORD_QUERIES`` is a second, smaller set that does reuse distinctive terms (product names,
codes): it is only used to judge hybrid BM25 retrieval fairly (see ``evaluate.py``).
"""

from __future__ import annotations

import re

CORPUS: dict[str, str] = {
    "password-reset": "Forgotten passwords are changed through the self-service portal at id.example.com after confirming a code sent by text message.",
    "mfa": "Two-factor authentication is mandatory for every account; enrol the Authenticator app on your phone before your first sign-in from outside the office.",
    "vpn": "Remote staff connect to the internal network with the WireGuard client: import the profile emailed by the service desk and switch the tunnel on.",
    "printer-jam": "When paper gets stuck in the printer, open tray B, pull the sheet out gently and close the door; the device restarts by itself.",
    "toner": "Replacement toner cartridges are stored in the supply cabinet next to the kitchen; take one and log it on the clipboard.",
    "hardware-refund": "Hardware bought through the shop can be sent back within 30 days for a full refund if it is undamaged and in its box.",
    "onboarding": "New hires receive their laptop, badge and accounts on the first morning; managers must submit the starter form five working days ahead.",
    "offboarding": "When someone leaves, their manager files a leaver request; accounts are disabled at 17:00 on the last day and the mailbox is kept for 90 days.",
    "backup-retention": "Servers are backed up nightly; daily copies are kept for 14 days, weekly ones for 8 weeks and monthly ones for a year.",
    "file-restore": "To recover a deleted file from a network share, right-click the folder, open Previous Versions and pick the snapshot from before the deletion.",
    "phishing": "Suspicious emails should be reported with the Report Message button in Outlook; never open attachments from unknown senders.",
    "guest-wifi": "Visitors use the Guest network; the access code changes every Monday and is printed at reception.",
    "software-request": "Programs not in the company catalogue are requested through the portal; licence costs are approved by the department head.",
    "admin-rights": "Local administrator privileges are granted for 24 hours at a time through the Privilege Management tool after a justification.",
    "patching": "Windows updates install automatically on the second Wednesday of each month between 22:00 and 02:00; leave machines powered on.",
    "mail-quota": "Each mailbox holds 50 GB; once it is full, incoming messages bounce, so archive old mail to the online archive.",
    "shared-mailbox": "Access to a team mailbox such as billing@ is requested by its owner and appears in Outlook automatically within an hour.",
    "meeting-room": "Conference rooms have a Teams console on the table; tap Meet now or join the booked meeting from its touchscreen.",
    "voicemail-pin": "Voicemail PINs are reset from the phone system web page under Settings, Voicemail, Reset PIN.",
    "lost-badge": "A lost access card must be reported to Facilities at once so it can be blocked; a replacement costs 15 euros.",
    "expenses": "Travel costs are claimed in the expense app within 30 days with a photo of every receipt.",
    "monitors": "Each desk has two 27-inch screens; a third display or a docking station is ordered as a hardware request.",
    "disk-encryption": "All laptops use BitLocker disk encryption; the recovery key is stored in the device record in the management console.",
    "mobile-devices": "Company phones are enrolled in Intune; personal phones may read mail only through the Outlook app with app protection.",
    "data-classification": "Documents marked Confidential may be shared only with named colleagues and never through personal cloud storage.",
    "incident-priority": "A priority one incident means a whole site or a critical service is down; the on-call engineer must respond within 15 minutes.",
    "on-call-rota": "The on-call rota changes every Monday at 09:00; swaps are agreed between engineers and recorded in the rota sheet.",
    "ticket-sla": "Standard tickets get a first response within four business hours and are resolved within three business days.",
    "server-room": "Entry to the server room requires an escort from the infrastructure team and a signature in the visitor log.",
    "domain-renewal": "Internet domain names renew automatically each year from the registrar account; the invoice goes to finance.",
    "certificates": "TLS certificates are renewed by the ACME job thirty days before they expire; a failed renewal raises an alert.",
    "dns-changes": "Changes to public DNS records need a change ticket and are applied by the network team on Tuesdays.",
    "firewall-rules": "Opening a port on the perimeter firewall requires a request naming source, destination, port and business reason.",
    "printer-install": "To add a network printer, open Settings, Printers and choose it from the list published by the print server.",
    "password-policy": "Passwords need at least 14 characters and never expire unless a breach is suspected; reuse of the last 10 is blocked.",
    "screen-lock": "Computers lock after 5 minutes without activity; press the Windows key and L when you step away.",
    "remote-support": "Support staff may take control of your screen only after you accept the Quick Assist prompt and read them the code.",
    "asset-disposal": "Old computers are wiped with a certified tool and collected by the recycling partner; certificates of destruction are filed.",
    "parking": "Staff parking spaces 10 to 40 are first come, first served; electric vehicle chargers are bookable in the facilities app.",
    "annual-leave": "Annual leave is requested in the HR system at least two weeks ahead and approved by the line manager.",
}

QUERIES: list[tuple[str, str]] = [
    ("I can't remember my login secret, how do I get a new one?", "password-reset"),
    ("What extra check besides my passcode is compulsory when logging on?", "mfa"),
    ("How do I reach company systems while working from home?", "vpn"),
    ("A page got wedged in the photocopy machine, what now?", "printer-jam"),
    ("Where can I find more ink for the printer?", "toner"),
    ("Can I return a laptop I purchased last week and be reimbursed?", "hardware-refund"),
    ("What does a fresh joiner get when they start, and what paperwork does their supervisor owe?", "onboarding"),
    ("An employee is quitting; when is their access removed?", "offboarding"),
    ("What is the retention period for safeguarded system data?", "backup-retention"),
    ("I accidentally removed a document from the team drive; can it be brought back?", "file-restore"),
    ("I got a fishy mail asking for my bank details, who do I tell?", "phishing"),
    ("What's the wireless key for people dropping by our building?", "guest-wifi"),
    ("How do I obtain a tool that is missing from the standard list?", "software-request"),
    ("I need elevated permissions on my PC to install a driver", "admin-rights"),
    ("When do operating system fixes get applied to our computers?", "patching"),
    ("Why are emails to me being rejected, my inbox seems maxed out", "mail-quota"),
    ("How can I see the accounts receivable group's collective inbox?", "shared-mailbox"),
    ("How do I start a video call from the boardroom equipment?", "meeting-room"),
    ("I forgot the code to hear recorded calls left for me", "voicemail-pin"),
    ("I misplaced my entry pass, what should I do?", "lost-badge"),
    ("How do I get reimbursed for a taxi during a business trip?", "expenses"),
    ("Could I get one more monitor at my workplace?", "monitors"),
    ("How is information on notebooks protected if one is stolen?", "disk-encryption"),
    ("Is it allowed to check corporate inbox on a private handset?", "mobile-devices"),
    ("Where am I allowed to put sensitive files, can I use my own Dropbox?", "data-classification"),
    ("How quickly do we act when an entire branch is offline?", "incident-priority"),
    ("When does the standby duty roster rotate?", "on-call-rota"),
    ("How long until someone answers a normal support request?", "ticket-sla"),
    ("Can I go into the data centre on my own?", "server-room"),
    ("Who takes care of paying for our web address?", "domain-renewal"),
    ("What makes sure HTTPS credentials don't lapse?", "certificates"),
    ("How do I get a hostname aimed at a new external IP?", "dns-changes"),
    ("What do I have to provide to get a hole opened in the edge protection?", "firewall-rules"),
    ("How do I hook my computer up to a shared printing device?", "printer-install"),
    ("What are the length rules for a passphrase?", "password-policy"),
    ("My PC keeps securing itself when idle briefly, why?", "screen-lock"),
    ("How does the helpdesk operate my PC from afar?", "remote-support"),
    ("What happens to retired PCs when they are thrown away?", "asset-disposal"),
    ("Where can employees leave their cars, and can I charge my EV?", "parking"),
    ("How do I book vacation days?", "annual-leave"),
]

# Queries that reuse a distinctive term of their answer: the case BM25 is good at.
KEYWORD_QUERIES: list[tuple[str, str]] = [
    ("WireGuard profile", "vpn"),
    ("BitLocker recovery key", "disk-encryption"),
    ("Quick Assist code", "remote-support"),
    ("Previous Versions snapshot", "file-restore"),
    ("Privilege Management tool", "admin-rights"),
    ("ACME job", "certificates"),
    ("Intune enrolment", "mobile-devices"),
    ("Report Message button", "phishing"),
    ("tray B", "printer-jam"),
    ("starter form", "onboarding"),
]

STOP_WORDS = frozenset(
    "about after also been before being both does each from have here into just like more most much must only "
    "other over same should some such than that their them then there these they this those through very what "
    "when where which while will with would your yours".split()
)


def words(text: str) -> set[str]:
    """Lower-case content words of at least four letters."""
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 4 and w not in STOP_WORDS}


def shared_words(query: str, key: str) -> set[str]:
    """Content words a question shares with its answer (the set is built so there are none)."""
    return words(query) & words(CORPUS[key])
