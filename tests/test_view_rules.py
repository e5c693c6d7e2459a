"""Two rules of the interface layer, checked on the source (STYLE §3.3, principle 8):

- templates read booleans the view computed (e.g. `actions.cancel`) and never compare a
  `state` or `status` value: what a user may do is a predicate (core.actions), not a template
  condition;
- views and API views read through selectors and write through services: none queries a
  model directly (`<Model>.objects`).
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

VIEW_MODULES = [
    "teams/views.py",
    "teams/api/views.py",
    "governance/views.py",
    "governance/api/views.py",
    "recsys/views.py",
    "recsys/console_views.py",
    "recsys/api/views.py",
    "recsys/api/search_views.py",
]

_TAG = re.compile(r"{%-?\s*(?:if|elif)\b(.*?)-?%}", re.S)
_NAME = r"[\w.]*(?:state|status)\b"
_COMPARISON = re.compile(
    rf"{_NAME}\s*(?:==|!=|\bnot\s+in\b|\bin\b)|(?:==|!=|\bin\b)\s*{_NAME}", re.I
)


def state_comparisons(text: str) -> list[str]:
    """The `{% if %}`/`{% elif %}` conditions of a template that compare a state or status."""
    return [m.group(1).strip() for m in _TAG.finditer(text) if _COMPARISON.search(m.group(1))]


def model_queries(source: str) -> list[str]:
    """`<Model>.objects` (or `._default_manager`) uses in a module, as "line: expression"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("objects", "_default_manager"):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scans_see_what_they_look_for():
    assert state_comparisons('{% if run.state == "failed" %}x{% endif %}')
    assert state_comparisons("{% if 'pending' != req.state %}")
    assert state_comparisons('{% elif version.profile_status == "failed" %}')
    assert state_comparisons("{% if index.status in states %}")
    assert state_comparisons('{% if a and r.state not in "done" %}')
    assert not state_comparisons("{% if actions.cancel %}{% include 'x' with value=run.state %}")
    assert not state_comparisons('{% if d.verdict == "approve" %}')
    assert model_queries("x = Team.objects.filter(pk=1)") == ["1: Team.objects"]
    assert model_queries("x = get_user_model()._default_manager.all()")
    assert not model_queries("x = selectors.teams_for_user(user=u)")


def test_templates_compare_no_state_or_status():
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "templates").rglob("*.html"))
        if (found := state_comparisons(path.read_text()))
    }
    assert not offenders, (
        "Templates read booleans the view computed (an action predicate's verdict, or a "
        f"model property), never compare states: {offenders}"
    )


def test_views_query_no_model_directly():
    offenders = {
        module: found
        for module in VIEW_MODULES
        if (found := model_queries((ROOT / module).read_text()))
    }
    assert not offenders, f"Views read through selectors, not <Model>.objects: {offenders}"


def imports_of(source: str) -> set[str]:
    """The modules a module imports (`from a import b` counts as `a` and `a.b`)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_views_read_search_answers_through_the_selectors_not_serving():
    """Loading engines is recsys.serving's job; views ask the search selectors
    (recsys.search) for answers and never reach the engines themselves."""
    assert "recsys.serving" in imports_of("from recsys import serving")
    offenders = [
        module
        for module in VIEW_MODULES
        if "recsys.serving" in imports_of((ROOT / module).read_text())
    ]
    assert not offenders, f"Views call recsys.search, not recsys.serving: {offenders}"
