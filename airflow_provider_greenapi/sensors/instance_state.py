"""GreenApiInstanceStateSensor: wait until a GREEN-API instance is authorized (or another wanted state)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_greenapi._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)
from airflow_provider_greenapi.errors import GreenApiError, InstanceStateError
from airflow_provider_greenapi.hooks.greenapi import GreenApiHook
from airflow_provider_greenapi.models import InstanceState
from airflow_provider_greenapi.triggers.instance_state import (
    DEFAULT_FAIL_STATES,
    DEFAULT_TARGET_STATES,
    FAILURE,
    SUCCESS,
    WAIT_ERRORS,
    GreenApiInstanceStateTrigger,
    build_client,
    check_state_sets,
    judge_state,
    normalize_states,
)


class GreenApiInstanceStateError(InstanceStateError, AirflowFailException):
    """The instance reached a fail state (``blocked`` by default), or an error that polling cannot cure
    (wrong token, unknown instance, unusable connection); ``state`` is the fail state, else None.

    The Airflow side of :class:`~airflow_provider_greenapi.errors.InstanceStateError`: as an
    ``AirflowFailException`` it fails the task without retries (Airflow skips them for that class only), and
    it is still caught by ``except InstanceStateError`` / ``RunStopped`` / ``GreenApiProviderError``.
    """


class GreenApiInstanceStateSensor(BaseSensorOperator):
    """Wait until a GREEN-API instance reaches one of ``target_states`` (default ``authorized``).

    Each poke is one getStateInstance call (free of quota; the client keeps under its 1 request/s limit).
    A state in ``fail_states`` (default ``blocked``) fails the task at once with the state's advice; so do
    errors that waiting cannot cure (401 wrong token, 403 unknown instance, a broken connection). Transient
    errors (429, 5xx, timeouts, dropped connections) are logged and the next poke tries again. The reached
    state is returned as the XCom. With ``deferrable=True`` the wait runs in the triggerer
    (:class:`~airflow_provider_greenapi.triggers.instance_state.GreenApiInstanceStateTrigger`).

    :param greenapi_conn_id: the GREEN-API Airflow connection (templated).
    :param target_states: the state, or states, that end the wait successfully.
    :param fail_states: states that fail the task at once; must not overlap ``target_states``.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poke_interval: seconds (or a timedelta) between two calls; default 30.

    Every other ``BaseSensorOperator`` argument (``timeout``, ``mode``, ``soft_fail``...) applies.
    """

    template_fields: Sequence[str] = ("greenapi_conn_id",)
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        greenapi_conn_id: str = GreenApiHook.default_conn_name,
        target_states: str | InstanceState | Iterable[str | InstanceState] = DEFAULT_TARGET_STATES,
        fail_states: str | InstanceState | Iterable[str | InstanceState] | None = DEFAULT_FAIL_STATES,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.greenapi_conn_id = greenapi_conn_id
        self.target_states = normalize_states(target_states, f"{self.task_id}: target_states")
        self.fail_states = normalize_states(fail_states, f"{self.task_id}: fail_states")
        try:
            check_state_sets(self.target_states, self.fail_states)
        except ValueError as error:
            raise ValueError(f"{self.task_id}: {error}") from None
        self.deferrable = deferrable

    def poke(self, context: Context) -> bool | PokeReturnValue:
        try:
            client = build_client(self.greenapi_conn_id)
        except ValueError as error:  # GreenApiConnectionError: the connection itself is unusable
            raise GreenApiInstanceStateError(str(error)) from None
        with client:
            try:
                state = client.get_state_instance()
            except WAIT_ERRORS as error:
                self.log.warning("GREEN-API instance %s: %s Trying again at the next poke.",
                                 client.id_instance, error)
                return False
            except GreenApiError as error:
                raise GreenApiInstanceStateError(
                    f"GREEN-API instance {client.id_instance}: {error}"
                ) from None
        verdict = judge_state(state, client.id_instance, self.target_states, self.fail_states)
        if verdict.status == SUCCESS:
            self.log.info("%s", verdict.message)
            return PokeReturnValue(is_done=True, xcom_value=state.value)
        if verdict.status == FAILURE:
            raise GreenApiInstanceStateError(verdict.message, state.value)
        self.log.info("%s", verdict.message)
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One check in the worker first: an instance that is already ready (the usual case) or blocked
        # needs no trip through the triggerer.
        done = self._first_poke(context)
        if done:
            return done.xcom_value if isinstance(done, PokeReturnValue) else None
        self.defer(
            trigger=GreenApiInstanceStateTrigger(
                greenapi_conn_id=self.greenapi_conn_id,
                target_states=self.target_states,
                fail_states=self.fail_states,
                poke_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def _first_poke(self, context: Context) -> bool | PokeReturnValue:
        """``poke()`` with the sensor's soft_fail / never_fail / silent_fail rules, as BaseSensorOperator."""
        try:
            return self.poke(context)
        except AirflowSkipException:
            raise
        except AirflowFailException as error:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping ({'soft_fail' if self.soft_fail else 'never_fail'} "
                                           f"is set): {error}") from error
            raise
        except Exception as error:
            if self.silent_fail:
                self.log.exception("Sensor poke failed; deferring anyway (silent_fail is set).")
                return False
            if self.never_fail:
                raise AirflowSkipException(f"Skipping (never_fail is set): {error}") from error
            raise

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resumed from the trigger: the reached state on success, otherwise a clear failure."""
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowException(f"GREEN-API instance state trigger sent an unexpected event: {event!r}")
        message = str(event.get("message") or "no message")
        if event["status"] == SUCCESS:
            self.log.info("%s", message)
            return str(event.get("state"))
        # FAILURE (a fail state such as blocked) or ERROR (401, 403, a broken connection).
        raise GreenApiInstanceStateError(message, event.get("state") if event["status"] == FAILURE else None)
