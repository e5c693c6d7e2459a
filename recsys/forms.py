"""UI forms of the pipeline: shape and per-field validation; services decide the rules."""

from django import forms

from recsys.choices import RunKind
from recsys.constants import RUN_PARAMETERS

OPTIONAL_INPUT_KINDS = {"behaviour_events", "queries"}


class RunRequestForm(forms.Form):
    """One choice per input asset (approved versions, newest preselected), the parameters
    with their defaults, and a reason."""

    kind = forms.ChoiceField(choices=RunKind.choices, initial=RunKind.FULL_RETRAIN)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why this run is needed; the approvers read it.",
    )

    def __init__(self, *args, inputs: dict, defaults: dict, **kwargs):
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
