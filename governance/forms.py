"""UI forms of governance: shape and per-field validation; services decide the rules."""

import json

from django import forms

from governance.choices import Classification, Verdict

FORMAT_CHOICES = [
    ("", "Detect from the file name"),
    ("csv", "CSV"),
    ("tsv", "TSV"),
    ("jsonl", "JSON lines"),
    ("json", "JSON array"),
    ("parquet", "Parquet"),
    ("chorus-products", "Chorus/Icecat products (zip of JSON arrays)"),
    ("chorus-judgments", "Chorus judgments (query,product_id,grade)"),
]


def _json_object(raw: str | None, example: str) -> dict:
    """A JSON object typed into a text area ({} when empty), or a form error saying why."""
    raw = (raw or "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Not valid JSON: {exc.msg} (position {exc.pos}).") from None
    if not isinstance(value, dict):
        raise forms.ValidationError(f"Give an object such as {example}.")
    return value


class VersionUploadForm(forms.Form):
    file = forms.FileField()
    format = forms.ChoiceField(choices=FORMAT_CHOICES, required=False)
    note = forms.CharField(
        max_length=500,
        required=False,
        label="What changed",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    submit = forms.BooleanField(
        required=False, initial=True, label="Submit for approval once profiled"
    )

    def __init__(self, *args, **kwargs):
        from governance.services.versions import max_upload_bytes
        from governance.uploads import size_text, upload_too_large

        super().__init__(*args, **kwargs)
        limit = max_upload_bytes()
        field = self.fields["file"]
        field.help_text = (
            "CSV, TSV, JSON lines, JSON array or Parquet; may be zipped or gzipped. "
            f"At most {size_text(limit)}."
        )
        # upload.js refuses a larger file before sending it (the server refuses it anyway).
        field.widget.attrs.update(
            {"data-max-bytes": limit, "data-too-large": upload_too_large(limit).message}
        )


class DecisionForm(forms.Form):
    verdict = forms.ChoiceField(choices=Verdict.choices, widget=forms.HiddenInput)
    comment = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required when rejecting.",
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=300, widget=forms.Textarea(attrs={"rows": 2}))


class NoteForm(forms.Form):
    note = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))


def _optional_rate(label):
    return forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label=label,
        help_text="Between 0 and 1; empty: not checked.",
    )


class AssetSlaForm(forms.Form):
    freshness_hours = forms.IntegerField(
        required=False, min_value=1, help_text="Max hours since the newest approved version."
    )
    min_rows = forms.IntegerField(required=False, min_value=0)
    max_null_rate = _optional_rate("Max null rate (any column)")
    column_max_null_rates = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='Per-column overrides as JSON, e.g. {"description": 0.5}.',
    )
    max_duplicate_rate = _optional_rate("Max duplicate rate on the key")
    enforce_schema = forms.BooleanField(required=False, initial=True)
    approval_latency_hours = forms.IntegerField(required=False, min_value=1)

    def clean_column_max_null_rates(self):
        return _json_object(self.cleaned_data.get("column_max_null_rates"), '{"column": 0.1}')


class AssetEditForm(forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    classification = forms.ChoiceField(choices=Classification.choices)
    retention_days = forms.IntegerField(required=False, min_value=1)
    schema_contract = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text='JSON: {"columns": {"id": "string", "price": "float"}, "key": "id"}. '
        "Types: string, integer, float, boolean, datetime.",
    )

    def clean_schema_contract(self):
        return _json_object(
            self.cleaned_data.get("schema_contract"), '{"columns": {...}, "key": "id"}'
        )


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    verb = forms.CharField(required=False, help_text="Prefix, e.g. approval.")
    target = forms.CharField(required=False, label="Object")
    since = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )


class ApprovalPolicyForm(forms.Form):
    kind = forms.CharField(widget=forms.HiddenInput)
    approver_roles = forms.MultipleChoiceField(
        choices=[
            ("lead", "Lead"),
            ("steward", "Data steward"),
            ("engineer", "ML engineer"),
            ("ops", "Ops"),
        ],
        widget=forms.CheckboxSelectMultiple,
    )
    quorum = forms.IntegerField(min_value=1, max_value=20)
    expiry_hours = forms.IntegerField(
        min_value=1, required=False, help_text="Empty: requests never expire."
    )
