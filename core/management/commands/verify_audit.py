"""python manage.py verify_audit: OK, or the first broken link of the audit chain."""

from django.core.management.base import BaseCommand, CommandError

from core.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the hash chain of the audit trail; exits non-zero at the first broken link."

    def handle(self, *args, **options):
        report = verify_chain()
        if not report.ok:
            raise CommandError(
                f"BROKEN at audit event {report.broken_event_id}: {report.reason} "
                f"({report.checked} events before it verified)."
            )
        waiting = f" ({report.pending} more waiting to be sealed)" if report.pending else ""
        self.stdout.write(
            self.style.SUCCESS(f"OK: {report.checked} audit events verified.{waiting}")
        )
