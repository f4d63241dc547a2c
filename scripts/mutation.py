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
LEDGER = "tests/test_ledger.py"
NUMBERS = "tests/test_numbers.py"
SETTINGS = "tests/test_settings.py"
HOOK = "tests/test_hook.py"
LINEAGE = "tests/test_lineage.py"

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
    # --- rate limiter: the pace ---------------------------------------------------------------------------
    Mutation("rate limiter: slots are 1/rate apart (not twice the rate)", f"{PKG}/rate_limit.py",
             "self._next_slot = slot + self._interval", "self._next_slot = slot + self._interval / 2",
             (f"{INVARIANTS}::test_requests_reach_greenapi_no_faster_than_the_configured_pace",)),
    Mutation("rate limiter: a call waits for its slot", f"{PKG}/rate_limit.py",
             "slot = max(now, self._next_slot)", "slot = now", (f"{CLIENT}::test_rate_limiter_spaces_calls_evenly",)),
    Mutation("rate limiter: pause holds every caller back", f"{PKG}/rate_limit.py",
             "self._next_slot = max(self._next_slot, self._clock() + seconds)", "self._next_slot = self._next_slot",
             (CLIENT,)),
    # --- the run pipeline: each number once, budget, transient -> error, stop on failure -------------------
    Mutation("pipeline: a sent, uncommitted number is not taken again", f"{PIPELINE}/run_queue.py",
             "                if number not in self._taken:", "                if True:",
             (f"{INVARIANTS}::test_a_number_in_flight_is_not_taken_again_from_the_next_queue_page",)),
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
             "            if not self.options.dry_run:\n                failure = self._send(budget, summary)",
             "            if True:\n                failure = self._send(budget, summary)",
             (f"{CHECKER}::test_dry_run_spends_and_stores_nothing",)),
    Mutation("pipeline: the state watch thread is joined at the end of the run", f"{PIPELINE}/instance_watch.py",
             "            self.join(self.client.settings.timeout + 5.0)", "            pass",
             (f"{INVARIANTS}::test_no_provider_thread_outlives_a_failing_run",)),
    Mutation("pipeline: outcomes are committed in chunks during the run", f"{PIPELINE}/storing.py",
             "return self.commit() if due or len(self._buffer) >= self.chunk_size else []",
             "return []",
             ("tests/test_reliability.py::test_sigkill_mid_run_then_rerun_checks_every_number_once[sqlite]",)),
    # --- store: freshness, upsert key, the queue ----------------------------------------------------------
    Mutation("store: a queue page lists each number once", f"{PKG}/warehouse/store.py",
             "return list(dict.fromkeys(r[1] for r in records))", "return [r[1] for r in records]",
             (f"{INVARIANTS}::test_a_number_staged_in_two_chunks_is_requested_once_though_results_were_committed_between",)),
    Mutation("store: an answer older than its window is not fresh", f"{PKG}/warehouse/store.py",
             "if cutoff is None or checked is None or checked < cutoff:", "if cutoff is None or checked is None:",
             (STORE, f"{CHECKER}::test_freshness_windows_are_respected")),
    Mutation("store: the not_exists window is in the past", f"{PKG}/warehouse/store.py",
             "None if self.not_exists_max_age is None else now - self.not_exists_max_age",
             "None if self.not_exists_max_age is None else now + self.not_exists_max_age",
             (STORE, f"{CHECKER}::test_freshness_windows_are_respected")),
    Mutation("store: rows are keyed by (phone_number, source_key)", f"{PKG}/warehouse/store.py",
             '_KEY = ("phone_number", "source_key")', '_KEY = ("phone_number",)', (STORE,)),
    Mutation("store: an answer clears the number from the queue", f"{PKG}/warehouse/store.py",
             '["detail = NULL", "queued_at = NULL"], answered)', '["detail = NULL"], answered)', (STORE,)),
    Mutation("store: a number the run has seen is a duplicate", f"{PKG}/warehouse/store.py",
             "            if normalized.digits is not None:\n                seen.add(normalized.digits)",
             "            if False:\n                seen.add(normalized.digits)", (STORE,)),
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
    Mutation("redaction: HTTP library log records are rewritten", f"{PKG}/redaction.py",
             "record.msg, record.args = cleaned, ()", "pass",
             (f"{CLIENT}::test_token_never_reaches_logs_even_at_debug",)),
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


def _run_tests(tests: tuple[str, ...]) -> tuple[int, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run([*PYTEST, *tests], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_S} s"
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
    status, summary = _run_tests(baseline_tests)
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
