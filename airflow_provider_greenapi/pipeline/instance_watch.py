"""The instance's state during a run: WhatsApp may flag the account (``yellowCard``) while checkWhatsapp still
answers, and then bulk checks must stop at once. The health gate before the run is the run's own first step
(bulk_check.py); this is the watch that runs beside the dispatcher."""

from __future__ import annotations

import logging
import threading

from airflow_provider_greenapi.client import GreenApiClient
from airflow_provider_greenapi.errors import GreenApiError
from airflow_provider_greenapi.models import InstanceState

log = logging.getLogger(__name__)


class InstanceWatch(threading.Thread):
    """Polls getStateInstance (free of quota) every ``interval`` seconds; ``failure`` is set, and polling ends,
    once the instance is no longer authorized or the answer says no further call can succeed."""

    def __init__(self, client: GreenApiClient, interval: float) -> None:
        super().__init__(name="greenapi-state-watch", daemon=True)
        self.client = client
        self.interval = interval
        self.failure: BaseException | None = None
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.failure = self._poll()
            if self.failure is not None:
                return

    def stop(self) -> None:
        """Stop polling and wait for the thread to end: it never outlives its run. A poll under way ends
        within the client's timeout (it is never retried)."""
        self._stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(self.client.settings.timeout + 5.0)

    def _poll(self) -> BaseException | None:
        try:
            state = self.client.get_state_instance(max_retries=0)  # the next poll is the retry
        except GreenApiError as error:
            if error.stops_run:
                return error
            log.warning("Could not read the instance state (%s); going on.", error)
            return None
        if state is InstanceState.AUTHORIZED:
            return None
        return GreenApiError(f"the instance turned {state.value!r} during the run. {state.advice}")
