"""Navigation context: the unread notification count of the signed-in user (one query)."""


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from teams.selectors import unread_notification_count

    return {"unread_notifications": unread_notification_count(user=user)}
