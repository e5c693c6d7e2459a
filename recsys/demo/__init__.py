"""The demo: its pipeline (pipeline.py, built by seed_demo) and loading it end to end
(`python manage.py load_demo`, loading.py).

1. The demo data (generated, or a real set given with `data`: dataset.py) is stored as dataset
   versions of the demo assets, uploaded by each owning team's demo engineer and profiled
   (versions.py).
2. The versions are approved by the demo stewards of the owning teams (approvals.py).
3. A full retrain of the demo pipeline is requested by the demo ops user, approved by a demo
   approver of every required team, and run by a Celery worker: one that already answers, or
   one started for the duration of the load (runs.py, worker.py).
4. Its index is approved by the search-ops lead and activated (runs.py).

Every change goes through the services, so the audit trail reads as if the demo users had
clicked through the product. Each step first looks for what an earlier load did (versions by
checksum, runs by their inputs, the index by its run), so a second load finds everything done
and changes nothing. A human "no" (a rejected version, run or activation) is never overridden:
the load stops and says so. Failures raise DemoLoadError with a message for the operator.
"""

from recsys.demo.errors import DemoLoadError
from recsys.demo.loading import DEMO_MAX_STEPS, DEMO_TIMEOUT_SECONDS, load_demo

__all__ = ["DEMO_MAX_STEPS", "DEMO_TIMEOUT_SECONDS", "DemoLoadError", "load_demo"]
