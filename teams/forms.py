"""UI forms of the organization: shape and per-field validation; services decide the rules."""

from django import forms
from django.contrib.contenttypes.models import ContentType

from teams.choices import RaciKind, Role
from teams.models import Team

LEAVE_WITHOUT = "__none__"


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(
        max_length=60,
        required=False,
        help_text="Used in URLs; leave empty to derive it from the name.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class TeamEditForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    parent = forms.ModelChoiceField(queryset=Team.objects.none(), required=False)
    archived = forms.BooleanField(required=False)

    def __init__(self, *args, parent_choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        if parent_choices is None:
            del self.fields["parent"]
        else:
            self.fields["parent"].queryset = parent_choices
            self.fields["parent"].required = True


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="The person's login name.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class MemberRemoveForm(forms.Form):
    """One required choice per subject the member is accountable for: a successor or a gap."""

    def __init__(self, *args, accountable=(), candidates=(), **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "— choose —"), (LEAVE_WITHOUT, "Leave without an accountable person (gap)")]
        choices += [(str(u.pk), u.get_full_name() or u.get_username()) for u in candidates]
        self.accountable = list(accountable)
        for responsibility in self.accountable:
            self.fields[f"successor_{responsibility.pk}"] = forms.ChoiceField(
                label=f"New accountable for {responsibility.subject_label}", choices=choices
            )

    def successors(self) -> dict[int, int | None]:
        """responsibility id -> successor user id, or None for an explicit gap."""
        decided = {}
        for responsibility in self.accountable:
            value = self.cleaned_data[f"successor_{responsibility.pk}"]
            decided[responsibility.pk] = None if value == LEAVE_WITHOUT else int(value)
        return decided


class ResponsibilityAssignForm(forms.Form):
    user = forms.ModelChoiceField(queryset=None, label="Person")
    kind = forms.ChoiceField(choices=RaciKind.choices, label="RACI")
    subject = forms.ChoiceField(required=False, label="Governed subject")
    area = forms.CharField(
        max_length=120, required=False, label="…or a named area", help_text='e.g. "catalog quality"'
    )
    note = forms.CharField(max_length=240, required=False)
    replace = forms.BooleanField(required=False, label="Replace the current accountable person")

    def __init__(self, *args, people, subjects, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = people
        self.fields["user"].label_from_instance = lambda u: u.get_full_name() or u.get_username()
        self._subjects = {}
        for obj in subjects:
            key = f"{ContentType.objects.get_for_model(obj).id}:{obj.pk}"
            self._subjects[key] = obj
        self.fields["subject"].choices = [("", "—")] + [
            (key, f"{obj._meta.verbose_name}: {obj}") for key, obj in self._subjects.items()
        ]

    def clean(self):
        data = super().clean()
        has_subject, has_area = bool(data.get("subject")), bool((data.get("area") or "").strip())
        if has_subject == has_area:
            raise forms.ValidationError(
                "Choose either a governed subject or a named area (exactly one)."
            )
        data["subject_obj"] = self._subjects.get(data.get("subject")) if has_subject else None
        return data
