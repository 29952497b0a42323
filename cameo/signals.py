from django.dispatch import Signal

# Sent (after commit) when a cameo's consent is narrowed or the cameo is erased, with `cameo_id`
# and the new `consent_version`: jobs that relied on an older version must stop.
cameo_revoked = Signal()
