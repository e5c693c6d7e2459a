"""python manage.py load_demo [--data PATH] [--base-model PATH] [--max-steps N]

The demo data as approved dataset versions, a full retrain run by a worker after the required
approvals, and its index activated (recsys/demo/). Idempotent: a second call finds
everything done and changes nothing. Run seed_demo first."""

import contextlib
import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError

from recsys.demo import DEMO_MAX_STEPS, DEMO_TIMEOUT_SECONDS, DemoLoadError, load_demo


class Command(BaseCommand):
    help = (
        "Load the demo data, approve it, run a full retrain on a worker and activate its "
        "index. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--data",
            default="",
            metavar="PATH",
            help="A real data set folder (chorus-icecat or generic layout, see "
            "docs/demo-data.md) instead of the generated synthetic one.",
        )
        parser.add_argument(
            "--base-model",
            default="",
            metavar="PATH",
            help="Folder of the encoder to fine-tune, one of STEWARD_BASE_MODELS (default: "
            "the offline all-MiniLM-L6-v2).",
        )
        parser.add_argument(
            "--max-steps",
            type=int,
            default=DEMO_MAX_STEPS,
            metavar="N",
            help=f"Fine-tuning steps of the demo run (default {DEMO_MAX_STEPS}).",
        )
        parser.add_argument(
            "--timeout",
            type=int,
            default=DEMO_TIMEOUT_SECONDS,
            metavar="SECONDS",
            help="Give up (and cancel the run) after this long waiting for the run.",
        )

    def handle(self, *args, data, base_model, max_steps, timeout, **options):
        if max_steps < 1:
            raise CommandError("--max-steps must be at least 1.")
        started = time.monotonic()
        try:
            with _terminate_as_interrupt():
                index = load_demo(
                    data=data or None,
                    base_model=base_model,
                    max_steps=max_steps,
                    timeout=timeout,
                    say=self.stdout.write,
                )
        except DemoLoadError as exc:
            raise CommandError(f"load_demo failed: {exc}") from None
        except KeyboardInterrupt:
            raise CommandError(
                "load_demo interrupted: its run (if any) was cancelled; what was done is kept "
                "and the next call goes on from there."
            ) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready in {time.monotonic() - started:.0f}s: {index.pipeline} serves "
                f"{index} ({index.n_items:,} products)."
            )
        )


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM and SIGHUP interrupt the load like Ctrl-C, so its run is cancelled and its
    worker stopped instead of being left behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
