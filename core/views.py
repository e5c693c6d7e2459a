"""The two view shapes of the UI, so that no view restates a lookup, a refusal or a
"call the service, catch the error, show a message, redirect" block.

- ObjectView: a page or action on one object, looked up through a permission-restricted
  selector (which raises NotFoundError, a 404, when the user may not see it).
- ServiceActionView: one service call on that object. POST only, its result or refusal
  flashed before a redirect; or, with a `template_name`, a form page whose refusals become
  form errors (400).

A service's PermissionDeniedError is a Django PermissionDenied, so a refusal raised before
the service (a `check()`) answers 403 with its message and needs no conversion.
"""

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, render
from django.views import View

from core.errors import ApplicationError


class ObjectView(LoginRequiredMixin):
    """Sets `self.object` from `get_object()` (a selector call) before any handler runs;
    anonymous users are sent to log in first."""

    def get_object(self):
        raise NotImplementedError

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.object = self.get_object()
        return super().dispatch(request, *args, **kwargs)


class ServiceActionView(ObjectView, View):
    """One service call on `self.object`: subclasses define `perform(form)` (call the service,
    return its result), `success_message(result)` and `next_url(result)`.

    `form_class` (built by `build_form`, which a view may override) shapes the input;
    `perform` gets the valid form, or None when the view has none. Without a `template_name`
    the view answers POST only: an invalid form flashes `invalid_message`, a refusal flashes
    its message, and both go back to `next_url(None)`. With one, GET shows the form and an
    invalid form or a refusal shows it again with the error (400). `check()` runs first on
    every method: raise there to refuse the page itself."""

    form_class = None
    template_name = None
    invalid_message = ""

    def check(self) -> None:
        """Nothing to refuse before the form by default."""

    def build_form(self, data=None):
        return self.form_class(data)

    def perform(self, form):
        raise NotImplementedError

    def success_message(self, result) -> str:
        raise NotImplementedError

    def next_url(self, result) -> str:
        raise NotImplementedError

    def get_context_data(self, **kwargs) -> dict:
        return kwargs

    def error_field(self, exc: ApplicationError, form) -> str | None:
        """The form field a refusal belongs to (None: the whole form)."""
        return exc.field if exc.field in form.fields else None

    def get(self, request, *args, **kwargs):
        if self.template_name is None:
            return self.http_method_not_allowed(request, *args, **kwargs)
        self.check()
        return self.render_form(self.build_form())

    def post(self, request, *args, **kwargs):
        self.check()
        form = self.build_form(request.POST) if self.form_class is not None else None
        if form is not None and not form.is_valid():
            return self._refused(form, self.invalid_message)
        try:
            result = self.perform(form)
        except ApplicationError as exc:
            if form is not None and self.template_name is not None:
                form.add_error(self.error_field(exc, form), exc.message)
            return self._refused(form, exc.message)
        messages.success(request, self.success_message(result))
        return redirect(self.next_url(result))

    def _refused(self, form, message: str):
        if self.template_name is not None:
            return self.render_form(form, status=400)
        messages.error(self.request, message)
        return redirect(self.next_url(None))

    def render_form(self, form, status: int = 200):
        return render(
            self.request,
            self.template_name,
            self.get_context_data(form=form),
            status=status,
        )
