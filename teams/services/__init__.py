"""Every state change of the organization: permission check -> validation -> write -> audit.

Each function takes the acting user, runs in one transaction and writes one audit event per
changed object. Side effects (e-mail) leave only after commit. One module per area; import
from here.
"""

from teams.services.memberships import (
    accountable_held,
    membership_change_role,
    membership_grant,
    membership_revoke,
    user_by_username,
)
from teams.services.notifications import (
    notification_email_send,
    notification_mark_read,
    notification_send,
    notifications_deliver_pending,
    one_line,
)
from teams.services.responsibilities import responsibility_assign, responsibility_remove
from teams.services.teams import team_create, team_update

__all__ = [
    "accountable_held",
    "membership_change_role",
    "membership_grant",
    "membership_revoke",
    "notification_email_send",
    "notification_mark_read",
    "notification_send",
    "notifications_deliver_pending",
    "one_line",
    "responsibility_assign",
    "responsibility_remove",
    "team_create",
    "team_update",
    "user_by_username",
]
