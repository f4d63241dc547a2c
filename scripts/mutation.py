"""Mutation testing of the provider's critical invariants: break one invariant at a time, run only the tests
said to guard it, and report whether they notice.

Each mutation is (file, exact source snippet, replacement, invariant, tests). The snippet must occur exactly
once in the file: a snippet that is missing (the code moved, say into the ``warehouse/`` package) or
ambiguous is reported STALE and fails the run, so a definition never silently stops testing anything;
re-target it by editing ``file`` and ``snippet``.

Files are mutated in place and always restored (content and modification time) in a ``finally``, also on
Ctrl-C or SIGTERM; the run refuses to start when a target file has uncommitted changes, and checks with git
after the run that every target file is back as committed. Tests run with ``-x`` and without bytecode
writes, so a mutant never leaves a .pyc behind.

    python scripts/mutation.py            # every mutation (make mutation)
    python scripts/mutation.py -k ledger  # only those whose invariant or file contains "ledger"
    python scripts/mutation.py --list

Run it in the checkout the virtualenv installs (``make install``: an editable install): tests that start
``airflow`` as a subprocess import the package from there, so in another worktree their mutants survive unseen.

Exit status: 0 when every mutation is killed; 1 when one survives, is stale, or the baseline fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = "airflow_provider_greenapi"
TIMEOUT_S = 300  # a mutant that makes the tests hang counts as killed (by timeout)
BASELINE_TIMEOUT_S = 3600  # the baseline runs every chosen mutation's tests in one pytest (66 selections in all)
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not postgres"]


@dataclass(frozen=True)
class Mutation:
    invariant: str
    file: str
    snippet: str
    replacement: str
    tests: tuple[str, ...]


CHECKER = "tests/test_pipeline.py"
PIPELINE = f"{PKG}/pipeline"
INVARIANTS = "tests/test_invariants.py"
CLIENT = "tests/test_client.py"
ERRORS = "tests/test_errors.py"
STORE = "tests/test_store.py"
QUEUE = "tests/test_queue.py"
CHANGES = "tests/test_changes.py"
RESULTS_TABLE_TESTS = (STORE, QUEUE, CHANGES)  # the tests of warehouse/store.py and the modules it is made of
LEDGER = "tests/test_ledger.py"
HISTORY = "tests/test_usage_history.py"
NUMBERS = "tests/test_numbers.py"
SETTINGS = "tests/test_settings.py"
HOOK = "tests/test_hook.py"
LINEAGE = "tests/test_lineage.py"
USAGE_CLI = "tests/test_usage_cli.py"
QUOTA_VIEW = "tests/test_quota_view.py"
WH_ERRORS = "tests/test_warehouse_errors.py"
POISON = "tests/test_poison_inputs.py"
INCREMENTAL = "tests/test_incremental_runs.py"
OVERLAP = "tests/test_overlapping_runs.py"
EXACT = "tests/test_exact_keys.py"

MUTATIONS: tuple[Mutation, ...] = (
    # --- errors: what is retried, what stops a run --------------------------------------------------------
    Mutation("errors: transient failures are retryable", f"{PKG}/errors.py",
             "    retryable = True\n    stops_run = False", "    retryable = False\n    stops_run = False",
             (ERRORS, CLIENT)),
    Mutation("errors: an invalid number does not stop the run", f"{PKG}/errors.py",
             "never retried.\"\"\"\n\n    stops_run = False", "never retried.\"\"\"\n\n    stops_run = True",
             (ERRORS,)),
    Mutation("errors: 466 is the quota error", f"{PKG}/errors.py",
             "    if status_code == 466:", "    if status_code == 467:", (ERRORS,)),
    Mutation("errors: 'bad phone number' is an invalid number, never retried", f"{PKG}/errors.py",
             '("bad phone number", GreenApiInvalidNumberError),', '("bad phone number", GreenApiTransientError),',
             (ERRORS,)),
    Mutation("errors: 'not authorized' stops the run", f"{PKG}/errors.py",
             '("instance is starting or not authorized", GreenApiInstanceNotAuthorizedError),',
             '("instance is starting or not authorized", GreenApiTransientError),', (ERRORS,)),
    Mutation("errors: a 500 is transient", f"{PKG}/errors.py",
             '500: (GreenApiTransientError, "server error"),', '500: (GreenApiResponseError, "server error"),',
             (ERRORS,)),
    Mutation("errors: an unknown 5xx is transient", f"{PKG}/errors.py",
             "    if 500 <= status_code < 600:", "    if 600 <= status_code < 700:", (ERRORS,)),
    # --- client: token redaction, retries, Retry-After ----------------------------------------------------
    Mutation("client: an error body is scrubbed of the token", f"{PKG}/client.py",
             "method, response.status_code, redact(text), parsed,", "method, response.status_code, text, parsed,",
             (f"{INVARIANTS}::test_a_token_echoed_in_an_error_body_reaches_no_exception_log_or_stored_detail",)),
    Mutation("client: the token is registered for redaction", f"{PKG}/client.py",
             "        register_secret(api_token)\n", "        pass\n", (CLIENT,)),
    Mutation("client: a TLS certificate error is not retried", f"{PKG}/client.py",
             "if isinstance(current, ssl.SSLCertVerificationError):", "if False:",
             (f"{CLIENT}::test_a_tls_failure_fails_at_once_and_says_what_to_do",)),
    Mutation("client: a TLS protocol error is not retried", f"{PKG}/client.py",
             "current.reason in _LASTING_TLS_REASONS", "current.reason in ()",
             (f"{CLIENT}::test_a_tls_failure_fails_at_once_and_says_what_to_do",)),
    Mutation("client: retryable errors are retried", f"{PKG}/client.py",
             "if not error.retryable or attempt >= retries:", "if not error.retryable or attempt >= 0:",
             (CLIENT,)),
    Mutation("client: final errors are never retried", f"{PKG}/client.py",
             "if not error.retryable or attempt >= retries:", "if attempt >= retries:", (CLIENT,)),
    Mutation("client: Retry-After sets the wait", f"{PKG}/client.py",
             "delay = min(error.retry_after, self.settings.retry_backoff_max)", "delay = 0.0", (CLIENT,)),
    Mutation("client: Retry-After pauses the shared pacer", f"{PKG}/client.py",
             "self._limiters[error.method].pause(delay)", "self._limiters[error.method].pause(0.0)", (CLIENT,)),
    # --- settings: the form and the code accept the same values --------------------------------------------
    *(Mutation(f"settings: {invariant}", f"{PKG}/settings.py", snippet, replacement, (SETTINGS, HOOK))
      for invariant, snippet, replacement in (
          ("a value beyond its upper bound is refused", "        if not low <= value <= high:",
           "        if not low <= value:"),
          ("the form's bounds are the code's", 'schema["maximum"] = self.maximum',
           'schema["maximum"] = self.maximum * 2'),
          ("an extra left empty takes the default", '        if value is None or value == "":',
           "        if value is None:"),
          ("the task's argument overrides the connection", '"the task\'s", (overrides or {}).get(item.name)',
           '"the task\'s", None'),
          ("every client setting is read from the connection", "            for item in fields(owner))",
           "            for item in fields(owner)[:-2])"),
      )),
    Mutation("settings: a bad value is described, not repeated (it may be the token)", f"{PKG}/settings.py",
             'must be a number (got {value_shape(value)})") from None', 'must be a number (got {value!r})") from None',
             (f"{HOOK}::test_a_bad_connection_gets_a_clear_error",)),
    Mutation("settings: an unknown extra is refused", f"{PKG}/settings.py",
             "    if not unknown:\n        return\n", "    if True:\n        return\n",
             (f"{HOOK}::test_an_unknown_extra_is_refused_with_the_close_match",)),
    # --- rate limiter: the pace ---------------------------------------------------------------------------
    Mutation("rate limiter: slots are 1/rate apart (not twice the rate)", f"{PKG}/rate_limit.py",
             "self._next_slot = slot + self._interval", "self._next_slot = slot + self._interval / 2",
             (f"{INVARIANTS}::test_requests_reach_greenapi_no_faster_than_the_configured_pace",)),
    Mutation("rate limiter: a call waits for its slot", f"{PKG}/rate_limit.py",
             "slot = max(now, self._next_slot)", "slot = now", (f"{CLIENT}::test_rate_limiter_spaces_calls_evenly",)),
    Mutation("rate limiter: pause holds every caller back", f"{PKG}/rate_limit.py",
             "self._next_slot = max(self._next_slot, self._clock() + seconds)", "self._next_slot = self._next_slot",
             (CLIENT,)),
    Mutation("in-flight window: a request's wait is sized with the same headroom as the average",
             f"{PKG}/in_flight.py", "wanted = self.pace * max(self.latency, waited) * HEADROOM",
             "wanted = max(self.pace * self.latency * HEADROOM, self.pace * waited)",
             ("tests/test_pace.py::test_slow_answers_get_the_full_pace_from_the_first_second",)),
    # --- bulk writes (engine modules): the same rows as a row-by-row upsert, whatever the path -------------
    Mutation("engine: a set-based write keeps the last row of a key given twice", f"{PKG}/warehouse/engine.py",
             "            kept[index] = row", "            pass",
             ("tests/test_bulk_writes.py::test_a_bulk_write_of_inserts_and_updates_mixed_leaves_what_row_by_row_"
              "writes_would",)),
    Mutation("duckdb: without pyarrow the write falls back to multi-row INSERTs", f"{PKG}/warehouse/duckdb.py",
             "    except ImportError:\n        return None\n    arrays = []",
             "    except ImportError:\n        raise\n    arrays = []",
             ("tests/test_bulk_writes.py::test_duckdb_without_pyarrow_falls_back_to_multi_row_inserts",)),
    # --- the run pipeline: each number once, budget, transient -> error, stop on failure -------------------
    Mutation("pipeline: a sent, uncommitted number is not taken again", f"{PIPELINE}/run_queue.py",
             "                if number not in self._taken:", "                if True:",
             (f"{INVARIANTS}::test_a_number_in_flight_is_not_taken_again_from_the_next_queue_page",
              f"{INVARIANTS}::test_a_number_in_flight_is_not_taken_again_from_a_later_page_of_a_budgeted_queue")),
    Mutation("pipeline: the budget caps the numbers sent", f"{PIPELINE}/dispatch.py",
             "self.sent < self._limit and len(self._in_flight) < window",
             "self.sent <= self._limit and len(self._in_flight) < window",
             (f"{CHECKER}::test_a_budget_splits_the_list_across_runs",)),
    Mutation("pipeline: a transient failure is stored as error, never not_exists", f"{PIPELINE}/dispatch.py",
             "return CheckOutcome(number, CheckStatus.ERROR, self.clock(), detail=str(error))",
             "return CheckOutcome(number, CheckStatus.NOT_EXISTS, self.clock(), detail=str(error))",
             (f"{CHECKER}::test_transient_faults_never_become_not_exists",)),
    Mutation("pipeline: an error that stops the run stops it", f"{PIPELINE}/dispatch.py",
             "            if error.stops_run:\n                return _Stop(error)",
             "            if False:\n                return _Stop(error)",
             (f"{CHECKER}::test_quota_466_mid_run_keeps_what_was_checked",)),
    Mutation("pipeline: nothing more is sent after a failure", f"{PIPELINE}/dispatch.py",
             "while self.failure is None and self.sent < self._limit",
             "while self.sent < self._limit",
             (f"{CHECKER}::test_quota_466_mid_run_keeps_what_was_checked",
              f"{CHECKER}::test_yellow_card_mid_run_stops_bulk_checks")),
    Mutation("pipeline: the state watch stops the run", f"{PIPELINE}/dispatch.py",
             "if self.failure is None and watch.failure is not None:", "if False:",
             (f"{CHECKER}::test_yellow_card_mid_run_stops_bulk_checks",)),
    Mutation("pipeline: an outage stops the run after max_consecutive_errors", f"{PIPELINE}/dispatch.py",
             "if self._consecutive_errors >= self.max_consecutive_errors and self.failure is None:",
             "if False:",
             ("tests/test_reliability.py::test_an_outage_longer_than_the_retries_is_stored_as_error_never_as_not_exists",)),
    Mutation("pipeline: the health gate spends nothing on an unusable instance", f"{PIPELINE}/bulk_check.py",
             "        if not state.is_usable:", "        if False:",
             (f"{CHECKER}::test_health_gate_spends_nothing_on_an_unusable_instance",)),
    Mutation("client: every call is counted in the ledger before it is sent", f"{PKG}/client.py",
             "            self.ledger.reserve_call(method, pace=self.check_pace)", "            pass",
             (f"{CHECKER}::test_a_messy_list_is_checked_once_per_number",)),
    Mutation("pipeline: a dry run sends nothing", f"{PIPELINE}/bulk_check.py",
             "return DispatchEnd() if self.options.dry_run else self._dispatch(budget, summary)",
             "return self._dispatch(budget, summary)",
             (f"{CHECKER}::test_dry_run_spends_and_stores_nothing",)),
    Mutation("pipeline: the state watch thread is joined at the end of the run", f"{PIPELINE}/instance_watch.py",
             "            self.join(self.client.settings.timeout + 5.0)", "            pass",
             (f"{INVARIANTS}::test_no_provider_thread_outlives_a_failing_run",)),
    Mutation("pipeline: outcomes are committed in chunks during the run", f"{PIPELINE}/storing.py",
             "return self.commit() if due or len(self._buffer) >= self.chunk_size else []",
             "return []",
             ("tests/test_reliability.py::test_sigkill_mid_run_then_rerun_checks_every_number_once[sqlite]",)),
    # --- store: freshness, upsert key, the queue ----------------------------------------------------------
    Mutation("queue: a queue page lists each number once", f"{PKG}/warehouse/queue.py",
             "return list(dict.fromkeys(r[1] for r in records))", "return [r[1] for r in records]",
             (f"{INVARIANTS}::test_a_number_staged_in_two_chunks_is_requested_once_though_results_were_committed_between",)),
    Mutation("results_table: an answer older than its window is not fresh", f"{PKG}/warehouse/results_table.py",
             "if cutoff is None or checked is None or checked < cutoff:", "if cutoff is None or checked is None:",
             (*RESULTS_TABLE_TESTS, f"{CHECKER}::test_freshness_windows_are_respected")),
    Mutation("results: the not_exists window is in the past", f"{PKG}/results.py",
             "None if self.not_exists_max_age is None else now - self.not_exists_max_age",
             "None if self.not_exists_max_age is None else now + self.not_exists_max_age",
             (*RESULTS_TABLE_TESTS, f"{CHECKER}::test_freshness_windows_are_respected")),
    Mutation("store: rows are keyed by (phone_number, source_key)", f"{PKG}/warehouse/store.py",
             '_KEY = ("phone_number", "source_key")', '_KEY = ("phone_number",)', RESULTS_TABLE_TESTS),
    Mutation("queue: an answer clears the number from the queue", f"{PKG}/warehouse/queue.py",
             '["detail = NULL", "queued_at = NULL"], answered)', '["detail = NULL"], answered)', (QUEUE,)),
    Mutation("store: a number the run has seen is a duplicate", f"{PKG}/warehouse/store.py",
             "            if normalized.digits is not None:\n                seen.add(normalized.digits)",
             "            if False:\n                seen.add(normalized.digits)", (STORE,)),
    Mutation("queue: the queue is paged in number order (a number under many keys taken once)",
             f"{PKG}/warehouse/queue.py", "last = numbers[-1]  # its rows on the next page",
             "last = numbers[0]  # its rows on the next page",
             (f"{QUEUE}::test_queue_is_distinct_and_in_number_order_whatever_the_page_size",)),
    Mutation("changes: an input stored as it is needs the same reading settings", f"{PKG}/warehouse/changes.py",
             "f\"WHERE normalized_by = {self._p} AND {matching}\"", "f\"WHERE {self._p} IS NOT NULL AND {matching}\"",
             (f"{CHANGES}::test_an_input_stored_as_it_is_is_unchanged_until_its_text_or_the_reading_changes",)),
    Mutation("queue: a carried-over run takes pending numbers whatever its input", f"{PKG}/warehouse/queue.py",
             'parts = ["queued_at IS NOT NULL", "checked_at IS NULL", f"status NOT IN ({p}, {p})"]',
             'parts = ["1 = 0", "checked_at IS NULL AND 1 = 0", f"status NOT IN ({p}, {p}) AND 1 = 0"]',
             (f"{INCREMENTAL}::test_pending_numbers_of_a_capped_run_are_checked_by_the_next_run_whatever_its_input",)),
    Mutation("queue: a stale answer is carried over", f"{PKG}/warehouse/queue.py",
             'parts.append(f"(status = {p} AND checked_at < {p})")', 'parts.append(f"(status = {p} AND 1 = {p})")',
             (f"{INCREMENTAL}::test_an_incremental_source_still_refreshes_stale_answers",)),
    Mutation("changes: a source's database leaves out only the rows stored as they are", f"{PKG}/warehouse/changes.py",
             "AND r.input_value = \"\n            f\"COALESCE(", "AND r.input_value <> \"\n            f\"COALESCE(",
             (f"{INCREMENTAL}::test_a_sql_source_rerun_reads_only_what_changed",)),
    Mutation("connections: a source's copy stages the rows it cannot hold", f"{PKG}/warehouse/connections.py",
             "if len(rows) < len(batch):  # staged as they are", "if False:  # staged as they are",
             (f"{INCREMENTAL}::test_a_rerun_from_another_database_compares_a_copy_and_stages_what_the_copy_cannot_hold",)),
    Mutation("changes: a source's copy leaves a negative integer to staging", f"{PKG}/warehouse/changes.py",
             "if type(value) is int and value < 0:\n        return None\n    comparable",
             "if type(value) is int and value < -(10 ** 30):\n        return None\n    comparable",
             (f"{CHANGES}::test_a_source_copy_holds_text_and_integers_under_a_storable_key_and_leaves_the_rest_to_staging",)),
    Mutation("changes: prune_missing keeps the keys the source still has", f"{PKG}/warehouse/changes.py",
             "gone = [key for key in page if key not in seen_keys]", "gone = list(page)",
             (f"{INCREMENTAL}::test_prune_missing_deletes_the_results_of_keys_the_source_lost",)),
    Mutation("pipeline: a run takes the instance's turn before it stages", f"{PIPELINE}/bulk_check.py",
             "if recorder is not None and (blocked := self._wait_for_turn(recorder)) is not None:",
             "if False:", (f"{OVERLAP}::test_two_processes_at_once_check_each_number_once_at_the_instances_pace",)),
    Mutation("pipeline: a SQLite run's heartbeat goes through the results' connection while it stages",
             f"{PIPELINE}/bulk_check.py", "if recorder is not None and self.store.engine.shares_source_connection():",
             "if False:",
             (f"{OVERLAP}::test_a_long_staging_from_a_sqlite_source_in_the_same_file_keeps_its_heartbeat",)),
    Mutation("store: a NUL byte is stored as invalid (stored text is escaped)", f"{PKG}/warehouse/storable.py",
             "return text if _UNSTORABLE.search(text) is None else _UNSTORABLE.sub(_escape, text)", "return text",
             (f"{POISON}::test_poison_values_from_a_list_are_stored_invalid_and_the_run_goes_on[duckdb]",)),
    Mutation("store: a source key that cannot be stored is reported invalid", f"{PKG}/warehouse/store.py",
             "    if problem is None:\n        return item", "    if True:\n        return item",
             (f"{POISON}::test_a_source_key_that_cannot_be_stored_is_reported_invalid_under_an_escaped_key[sqlite]",)),
    Mutation("sqlite: source text that is not UTF-8 is read escaped, not a failed fetch", f"{PKG}/warehouse/sqlite.py",
             "connection.text_factory = _LENIENT_TEXT", "pass",
             (f"{POISON}::test_poison_rows_of_a_sql_source_are_stored_invalid_and_the_run_goes_on[sqlite]",)),
    # --- MySQL / MariaDB: text compares exactly whatever the database's default collation --------------------
    Mutation("mysql: keys compare exactly on MariaDB (a binary collation that does not pad)",
             f"{PKG}/warehouse/mysql.py", '_EXACT_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")',
             '_EXACT_COLLATIONS = ("utf8mb4_bin", "utf8mb4_bin")',
             (f"{EXACT}::test_keys_compare_exactly_in_a_default_collation_mariadb_database",)),
    Mutation("mysql: an older case-insensitive table is converted in place", f"{PKG}/warehouse/mysql.py",
             "        if loose:", "        if False:",
             (f"{EXACT}::test_an_older_case_insensitive_table_is_converted_in_place",)),
    # --- ledger: count before send, the quota cap ---------------------------------------------------------
    Mutation("ledger: the monthly quota caps the count", f"{PKG}/warehouse/ledger.py",
             'cap = f" AND calls + {p} <= {p}"', 'cap = f" AND calls + {p} <= {p} + 1"', (LEDGER,)),
    Mutation("ledger: a refused reservation is refused", f"{PKG}/warehouse/ledger.py",
             "        return bool(cursor.rowcount == 1)", "        return True", (LEDGER,)),
    Mutation("ledger: calls counted and not sent are given back at close", f"{PKG}/warehouse/ledger.py",
             "            if month is not None and unsent:", "            if False:", (LEDGER,)),
    Mutation("ledger: calls are counted ahead only when commits are the bottleneck", f"{PKG}/warehouse/ledger.py",
             "or pace * slowest_commit_seconds < self.threshold:", "or pace * slowest_commit_seconds < 0:",
             (LEDGER,)),
    Mutation("ledger: a 466 raises the count to what GREEN-API reports", f"{PKG}/warehouse/ledger.py",
             "calls = CASE WHEN calls < {p} THEN {p} ELSE calls END", "calls = calls", (LEDGER,)),
    # --- warehouse errors a retry cannot fix fail at once, with what to do; statement_timeout -------------
    Mutation("warehouse errors: an index name is fitted to the engine's identifier limit",
             f"{PKG}/warehouse/engine.py", "        if limit is None or len(name) <= limit:\n            return name",
             "        if True:\n            return name",
             (f"{WH_ERRORS}::test_index_names_fit_every_engine_and_keep_the_short_names_of_existing_tables",
              f"{WH_ERRORS}::test_tables_named_at_the_length_limit_work_and_keep_their_indexes[mysql]")),
    Mutation("warehouse errors: the results, usage and history tables must differ", f"{PKG}/warehouse/engine.py",
             "        if other != argument:", "        if False:",
             (f"{WH_ERRORS}::test_a_usage_table_named_like_another_table_is_refused_at_parse_time",
              f"{WH_ERRORS}::test_a_rendered_results_table_named_like_the_ledger_fails_at_once_and_creates_nothing")),
    Mutation("warehouse errors: a SQLite file in a missing folder is refused", f"{PKG}/warehouse/sqlite.py",
             "    if not os.path.isdir(folder):", "    if False:",
             (f"{WH_ERRORS}::test_a_sqlite_file_in_a_missing_folder_fails_at_once_naming_the_folder",)),
    Mutation("warehouse errors: a DuckDB connection with a password is refused", f"{PKG}/warehouse/duckdb.py",
             "    if connection is not None and connection.password and connection.host:", "    if False:",
             (f"{WH_ERRORS}::test_a_duckdb_connection_with_a_password_fails_at_once_without_repeating_it",)),
    Mutation("warehouse errors: a source query that fails for good is a ConfigurationError", f"{PKG}/sources.py",
             "            if retry_can_fix(error):\n                raise  #",
             "            if True:\n                raise  #",
             (f"{WH_ERRORS}::test_a_source_query_naming_a_missing_column_fails_at_once_and_creates_nothing[sqlite]",)),
    Mutation("warehouse errors: MySQL's unknown column is lasting", f"{PKG}/errors.py",
             '"unknown database", "unknown column",', '"unknown database",',
             (f"{WH_ERRORS}::test_a_source_query_naming_a_missing_column_fails_at_once_and_creates_nothing[mysql]",)),
    Mutation("warehouse errors: the source is read before the results table is created", f"{PIPELINE}/bulk_check.py",
             "        inputs = start_reading(inputs)", "        pass",
             (f"{WH_ERRORS}::test_a_source_query_naming_a_missing_column_fails_at_once_and_creates_nothing[sqlite]",)),
    Mutation("warehouse errors: statement_timeout is set on MariaDB", f"{PKG}/warehouse/mysql.py",
             'cursor.execute("SET SESSION max_statement_time = %s", (float(seconds),))', "pass",
             (f"{WH_ERRORS}::test_a_table_locked_by_another_session_fails_the_task_within_its_statement_timeout[mysql]",)),
    Mutation("warehouse errors: a cancelled statement is reported as a timeout", f"{PKG}/operators/check_whatsapp.py",
             "warehouse.statement_timeout is not None and warehouse.timed_out(error):",
             "warehouse.statement_timeout is not None and False:",
             (f"{WH_ERRORS}::test_a_table_locked_by_another_session_fails_the_task_within_its_statement_timeout[mysql]",)),
    Mutation("ledger: counting ahead holds at most a second of sends", f"{PKG}/warehouse/ledger.py",
             "return min(self.most(pace), max(1,", "return min(self.max_calls, max(1,",
             (f"{LEDGER}::test_reserve_ahead_counts_twice_what_one_commit_lasts_when_it_would_hold_the_pace_back",)),
    # --- usage history: what the CLI and the view show ----------------------------------------------------
    Mutation("usage history: the ledger books each counted call on the run's row", f"{PKG}/warehouse/ledger.py",
             "            self._book(cursor, counted)\n", "            self._book(cursor, 0)\n", (HISTORY,)),
    Mutation("usage history: calls given back come off the run's row", f"{PKG}/warehouse/ledger.py",
             "            self._book(cursor, -calls)\n", "            self._book(cursor, 0)\n", (HISTORY,)),
    Mutation("usage history: a booking that fails never fails the ledger's count", f"{PKG}/warehouse/ledger.py",
             "            if self._booking is None:\n                raise\n", "            raise\n", (HISTORY,)),
    Mutation("usage history: a running row not heard from reads interrupted", f"{PKG}/warehouse/usage_history.py",
             "            if state in _LIVE and (updated_at is None or updated_at < stale):",
             "            if False:", (HISTORY,)),
    Mutation("usage history: the next run writes interrupted on the instance's stale rows",
             f"{PKG}/warehouse/usage_history.py", "        history.mark_interrupted(instance_id, clock())\n",
             "        pass\n", (HISTORY,)),
    # --- numbers: a quirk rule, masking -------------------------------------------------------------------
    Mutation("numbers: Russian trunk 8 becomes 7", f"{PKG}/numbers/quirks.py",
             'return "7" + digits[1:] if len(digits) == 11 and digits[0] == "8" else None',
             'return "8" + digits[1:] if len(digits) == 11 and digits[0] == "8" else None', (NUMBERS,)),
    Mutation("numbers: Brazil's ninth digit is added where WhatsApp keeps it", f"{PKG}/numbers/quirks.py",
             'return area + "9" + nsn[2:]', "return area + nsn[2:]", (NUMBERS,)),
    Mutation("numbers: a trunk prefix written after the country code is removed", f"{PKG}/numbers/reading.py",
             "    if not _national_prefix_may_start(_trunk_prefix_pattern(country_code), nsn):\n        return nsn",
             "    if True:\n        return nsn", (NUMBERS,)),
    Mutation("numbers: a national prefix is stripped only where what remains has a possible length",
             f"{PKG}/numbers/reading.py",
             "    return nsn if _length_status(country_code, len(stripped)) in _SHORTER_THAN_POSSIBLE else stripped",
             "    return stripped", (NUMBERS,)),
    Mutation("numbers: a masked number shows only its last 4 digits", f"{PKG}/numbers/masking.py",
             'return "*" * (len(digits) - _MASK_KEEP) + digits[-_MASK_KEEP:]', "return digits", (NUMBERS,)),
    # --- quota plan: the runs that share the month ---------------------------------------------------------------
    Mutation("quota plan: a data-interval schedule counts the run of the interval under way",
             f"{PKG}/operators/runs_left.py",
             "    if earlier is not None and after < earlier.run_after < first.run_after:",
             "    if False:", ("tests/test_quota_plan.py",)),
    # --- lineage: the tables a source query reads, named as the database's own operators name them ----------
    Mutation("lineage: every table a query reads is an input (joins, sub-queries)", f"{PKG}/warehouse/lineage.py",
             "return naming.datasets(parsed.in_tables)", "return naming.datasets(parsed.in_tables[:1])",
             (LINEAGE,)),
    Mutation("lineage: the tables inside a CTE are inputs (the parser gets no default schema)",
             f"{PKG}/warehouse/lineage.py", "SQLParser(dialect=naming.dialect)",
             "SQLParser(dialect=naming.dialect, default_schema=naming.default_schema)", (LINEAGE,)),
    Mutation("lineage: a table named without a schema gets the connection's default", f"{PKG}/warehouse/lineage.py",
             "t.schema or self.default_schema", "t.schema", (LINEAGE,)),
    Mutation("lineage: names follow the hook's OpenLineage database info", f"{PKG}/warehouse/lineage.py",
             "info = hook.get_openlineage_database_info(conn)", "info = None", (LINEAGE,)),
    # --- redaction ----------------------------------------------------------------------------------------
    Mutation("redaction: registered secrets are masked", f"{PKG}/redaction.py",
             "text = text.replace(secret, _MASK)", "text = text", (CLIENT,)),
    Mutation("redaction: every form of the token is registered (stripped, as sent)", f"{PKG}/redaction.py",
             "    stripped = secret.strip()\n", "    stripped = secret\n",
             (f"{CLIENT}::test_a_token_is_masked_in_every_form_it_is_sent",)),
    Mutation("redaction: HTTP library log records are rewritten", f"{PKG}/redaction.py",
             "record.msg, record.args = cleaned, ()", "pass",
             (f"{CLIENT}::test_token_never_reaches_logs_even_at_debug",)),
    # --- the month in Airflow: the CLI and the UI view ----------------------------------------------------
    Mutation("usage report: the CLI reads connections from Airflow's metadata database", f"{PKG}/cli.py",
             'os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "server"', "pass",
             (f"{USAGE_CLI}::test_connections_stored_in_airflows_database_as_the_readme_adds_them",)),
    Mutation("usage report: an instance's quota is the one set on any of its connections", f"{PKG}/usage_report.py",
             "result.quotas[instance_id] = next(iter(set_on.values()), None)",
             "result.quotas[instance_id] = list(by_conn.values())[-1]",
             (f"{QUOTA_VIEW}::test_an_instances_quota_is_the_one_set_on_any_of_its_connections",)),
    Mutation("usage report: connections that disagree on the quota are a conflict", f"{PKG}/usage_report.py",
             "if len(set(set_on.values())) > 1:", "if False:",
             (f"{QUOTA_VIEW}::test_an_instances_quota_is_the_one_set_on_any_of_its_connections",)),
    Mutation("usage report: an unreadable GREEN-API connection is one line, the rest is shown",
             f"{PKG}/usage_report.py", "            continue\n        found.setdefault",
             "            raise\n        found.setdefault",
             (f"{QUOTA_VIEW}::test_an_instances_quota_is_the_one_set_on_any_of_its_connections",)),
    Mutation("usage report: a connection's error line repeats none of its values", f"{PKG}/usage_report.py",
             'message = message.replace(value[:end], "***")', "pass",
             (f"{QUOTA_VIEW}::test_an_error_line_blanks_a_connections_values_also_when_the_message_shortens_them",)),
    Mutation("usage report: the view shows each unreadable connection's line", f"{PKG}/plugins/quota_view.py",
             "for line in connection_errors or []", "for line in []",
             (f"{QUOTA_VIEW}::test_the_page_shows_a_conflict_and_each_unreadable_connection",)),
    Mutation("usage report: the CLI shows DAG and run ids whole", f"{PKG}/usage_report.py",
             "{run.dag_id or '':<{dag_w}}", "{(run.dag_id or '')[:24]:<{dag_w}}",
             (f"{USAGE_CLI}::test_long_dag_and_run_ids_are_shown_whole",)),
)


@dataclass
class Result:
    mutation: Mutation
    verdict: str  # KILLED, SURVIVED, STALE, ERROR
    note: str = ""
    seconds: float = 0.0


def _git_dirty(paths: list[str]) -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def _run_tests(tests: tuple[str, ...], timeout: float = TIMEOUT_S) -> tuple[int, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run([*PYTEST, *tests], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:g} s"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, (lines[-1] if lines else done.stderr.strip()[-300:])


def _apply(mutation: Mutation) -> Result:
    path = ROOT / mutation.file
    if not path.exists():
        return Result(mutation, "STALE", f"{mutation.file} does not exist")
    original = path.read_bytes()
    stat = path.stat()
    text = original.decode()
    found = text.count(mutation.snippet)
    if found != 1:
        return Result(mutation, "STALE", f"snippet found {found} times in {mutation.file}: {mutation.snippet!r}")
    started = time.monotonic()
    try:
        path.write_text(text.replace(mutation.snippet, mutation.replacement))
        status, summary = _run_tests(mutation.tests)
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the committed .pyc stays valid
    seconds = time.monotonic() - started
    if status == 0:
        return Result(mutation, "SURVIVED", summary, seconds)
    if status in (1, -1):
        return Result(mutation, "KILLED", summary, seconds)
    if status == 5:
        return Result(mutation, "ERROR", f"no test collected from {mutation.tests}", seconds)
    return Result(mutation, "KILLED", f"pytest exit {status} (collection or import error): {summary}", seconds)


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="select", help="only mutations whose invariant or file contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.select or args.select in m.invariant or args.select in m.file]
    if args.list:
        for m in chosen:
            print(f"{m.invariant}  [{m.file}]  -> {' '.join(m.tests)}")
        return 0
    targets = sorted({m.file for m in chosen if (ROOT / m.file).exists()})
    dirty = _git_dirty(targets)
    if dirty:
        print("Refusing to mutate files with uncommitted changes (commit or stash them):", *dirty, sep="\n  ")
        return 1
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    baseline_tests = tuple(sorted({t for m in chosen for t in m.tests}))
    print(f"Baseline: the {len(baseline_tests)} test selections on unmutated code ...", flush=True)
    status, summary = _run_tests(baseline_tests, BASELINE_TIMEOUT_S)
    if status != 0:
        print(f"Baseline FAILED ({summary}): fix the tests before mutating.")
        return 1
    results: list[Result] = []
    started = time.monotonic()
    try:
        for number, mutation in enumerate(chosen, 1):
            result = _apply(mutation)
            results.append(result)
            print(f"[{number:2}/{len(chosen)}] {result.verdict:8} {result.seconds:5.1f}s  {mutation.invariant}"
                  f"  ({result.note})", flush=True)
    finally:
        still_dirty = _git_dirty(targets)
        if still_dirty:
            print("ERROR: target files differ from git after the run:", *still_dirty, sep="\n  ")
    killed = sum(r.verdict == "KILLED" for r in results)
    bad = [r for r in results if r.verdict != "KILLED"]
    total = len(results)
    print(f"\nMutation score: {killed}/{total} killed ({100.0 * killed / total if total else 0:.0f}%) "
          f"in {time.monotonic() - started:.0f} s")
    for r in bad:
        print(f"  {r.verdict}: {r.mutation.invariant} [{r.mutation.file}]: {r.note}")
    return 0 if not bad and not still_dirty else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
