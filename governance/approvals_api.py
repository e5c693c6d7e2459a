"""A plain summary of an approval request, shared by the APIs of the apps above governance."""


def approval_summary(request) -> dict:
    if request is None:
        return {"approval": None}
    return {
        "approval": {
            "id": request.pk,
            "state": request.state,
            "requirements": [
                {
                    "team": r.team.slug,
                    "approvals": r.approvals,
                    "quorum": r.quorum,
                    "approver_roles": r.roles,
                }
                for r in request.requirements.all()
            ],
        }
    }
