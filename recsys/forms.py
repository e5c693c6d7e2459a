"""UI forms of the pipeline: shape and per-field validation; services decide the rules."""

from django import forms

from recsys.choices import RunKind, RunState
from recsys.constants import RUN_PARAMETERS, VERSION_PARAMETERS

OPTIONAL_INPUT_KINDS = {"behaviour_events", "queries"}
VERSION_HELP = {
    "model_version": "Build index only: the model to index the catalog with (empty: newest).",
    "index_version": "Evaluate only: the index version to measure (required there).",
}


class RunRequestForm(forms.Form):
    """The run kind, one choice per input asset (approved versions, newest preselected), the
    parameters with their defaults (the model or index version a single-step run works on:
    a choice among the pipeline's), and a reason."""

    kind = forms.ChoiceField(
        choices=RunKind.choices,
        initial=RunKind.FULL_RETRAIN,
        help_text="Build index needs a catalog (+ labels to evaluate it); evaluate needs the "
        "catalog the index was built from and labels; the others a catalog and labels.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why this run is needed; the approvers read it.",
    )

    def __init__(self, *args, inputs: dict, defaults: dict, pipeline=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_fields = []
        for asset, versions in inputs.items():
            name = f"input_{asset.slug}"
            choices = [
                (str(v.pk), f"v{v.number} · {v.row_count or '?'} rows · {v.status}")
                for v in versions
            ]
            optional = asset.kind in OPTIONAL_INPUT_KINDS
            if optional:
                choices = [("", "— not used —"), *choices]
            self.fields[name] = forms.ChoiceField(
                label=asset.name,
                choices=choices,
                required=not optional,
                initial=choices[1 if optional and len(choices) > 1 else 0][0] if choices else "",
                help_text="" if versions else "No approved version yet.",
            )
            self.input_fields.append(name)
        for param, (kind, default, low, high) in RUN_PARAMETERS.items():
            if param in VERSION_PARAMETERS:
                self.fields[f"param_{param}"] = _version_field(param, pipeline)
                continue
            value = defaults.get(param, default)
            field = {int: forms.IntegerField, float: forms.FloatField}.get(kind, forms.CharField)
            extra = {"min_value": low, "max_value": high} if low is not None else {}
            self.fields[f"param_{param}"] = field(
                label=param.replace("_", " "), required=False, initial=value, **extra
            )

    def input_ids(self) -> list[int]:
        return [int(self.cleaned_data[n]) for n in self.input_fields if self.cleaned_data.get(n)]

    def parameters(self) -> dict:
        return {
            name[6:]: value
            for name, value in self.cleaned_data.items()
            if name.startswith("param_") and value not in (None, "")
        }


def _version_field(param: str, pipeline) -> forms.Field:
    """A choice among the pipeline's model or index versions built by succeeded runs (the
    view resolved `pipeline` through the permission-checked selector); a plain id without it."""
    label = param.replace("_", " ")
    if pipeline is None:
        return forms.IntegerField(
            label=label, required=False, min_value=1, help_text=VERSION_HELP[param]
        )
    from recsys.models import IndexVersion, ModelVersion

    if param == "model_version":
        versions = ModelVersion.objects.filter(run__pipeline=pipeline)
        empty = "— newest —"
    else:
        versions = IndexVersion.objects.filter(pipeline=pipeline)
        empty = "— choose one to evaluate —"
    versions = versions.filter(run__state=RunState.SUCCEEDED).order_by("-created_at", "-id")
    choices = [("", empty)] + [(str(v.pk), _version_label(v)) for v in versions[:50]]
    return forms.ChoiceField(
        label=label, required=False, choices=choices, help_text=VERSION_HELP[param]
    )


def _version_label(version) -> str:
    when = f"{version.created_at:%Y-%m-%d %H:%M}"
    if hasattr(version, "model_version_id"):  # an index version
        return (
            f"Index v{version.pk} · {version.status} · model v{version.model_version_id} · {when}"
        )
    return f"Model v{version.pk} · run #{version.run_id} · {when}"
