"""Numbers and names of the organization that are used in more than one place."""

MAX_TEAM_DEPTH = 12
GROUP_TEAM_ROLE = "team:{slug}:{role}"  # team slugs are immutable
GROUP_ORG = "org:{root_slug}"  # everyone with a membership in the tree
ORG_CHART_PAGE_SIZE = 500
LIST_PAGE_SIZE = 50
AREA_MAX_LENGTH = 120
