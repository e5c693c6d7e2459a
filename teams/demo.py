"""The demo organization: who is in it, with which role. Used by seed_demo and the login page."""

DEMO_PASSWORD = "steward-demo"  # noqa: S105 - demo accounts only, shown only in demo mode
DEMO_ROOT = (
    "search-recs",
    "Search & Recommendations",
    "Everything behind product search and recommendations.",
)
DEMO_TEAMS = [
    ("catalog-data", "Catalog data", "Owns the product catalog and its quality.", "catalog"),
    (
        "behaviour-analytics",
        "Behaviour analytics",
        "Owns click, cart and purchase events.",
        "behaviour",
    ),
    ("relevance-ml", "Relevance ML", "Owns relevance labels and the ranking models.", "relevance"),
    ("search-ops", "Search ops", "Runs the pipeline and the live search index.", "ops"),
]
DEMO_ROLES = ["lead", "steward", "engineer", "ops", "viewer"]
DEMO_ADMIN = "admin"
DEMO_HEAD = "org.head"  # lead of the organization root


def demo_users() -> list[tuple[str, str, str]]:
    """(username, team slug, role) for one user per role in each demo team."""
    return [
        (f"{prefix}.{role}", slug, role)
        for slug, _name, _description, prefix in DEMO_TEAMS
        for role in DEMO_ROLES
    ]


def demo_logins() -> list[dict]:
    rows = [
        {"username": DEMO_ADMIN, "team": "(site admin)", "role": "admin"},
        {"username": DEMO_HEAD, "team": DEMO_ROOT[0], "role": "lead"},
    ]
    rows += [{"username": u, "team": t, "role": r} for u, t, r in demo_users()]
    for row in rows:
        row["password"] = DEMO_PASSWORD
    return rows
