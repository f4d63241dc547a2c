"""The run pipeline, free of Airflow: ``gate -> stage -> budget -> dispatch -> store -> summarise``.

- ``bulk_check.py``: :class:`BulkChecker`, one run, the owner of its state and its summary;
- ``options.py``: :class:`CheckOptions`, the knobs of a run;
- ``staging.py``: inputs -> normalised numbers -> the results table's staging;
- ``budget.py``: how many queued numbers the run may send, and why;
- ``run_queue.py``: the queued numbers, none taken twice;
- ``dispatch.py``: numbers in, outcomes out (threads, the in-flight window, the stop rules);
- ``instance_watch.py``: the instance's state polled beside the dispatcher;
- ``storing.py``: outcomes committed in chunks.

docs/architecture.md follows one run through them.
"""

from airflow_provider_greenapi.errors import BulkCheckStopped
from airflow_provider_greenapi.pipeline.bulk_check import BulkChecker
from airflow_provider_greenapi.pipeline.options import CheckOptions

__all__ = ["BulkCheckStopped", "BulkChecker", "CheckOptions"]
