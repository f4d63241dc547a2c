"""Where the numbers come from: a list (literal or XCom) or the rows of a SQL query, read in chunks."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from airflow_provider_greenapi.errors import ConfigurationError, retry_can_fix
from airflow_provider_greenapi.numbers.values import safe_str

InputRow = tuple[object, str]  # (the raw phone number, the source key or "")
# A source query's parameters, as DB-API takes them: a sequence for positional placeholders, a mapping for named ones
QueryParameters = Sequence[Any] | Mapping[str, Any] | None


def execute(cursor: Any, sql: str, parameters: QueryParameters = None) -> None:
    """``cursor.execute`` with the query's ``parameters`` when there are any (a driver may refuse None)."""
    if parameters is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, parameters)


def numbers_from_value(value: object) -> Iterator[InputRow]:
    """Inputs from a list/tuple of numbers, or a mapping of source key -> number (to join results back)."""
    if isinstance(value, Mapping):
        for key, number in value.items():
            yield number, key_text(key)
        return
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"phone_numbers must be a list of phone numbers (or a dict of key -> number), got "
            f"{type(value).__name__}: wrap a single number in a list, or return a list from the upstream task."
        )
    for number in value:
        yield number, ""


def numbers_from_query(
    open_cursor: Callable[[], Any], sql: str, phone_column: str | None = None, key_column: str | None = None,
    chunk_size: int = 1000, parameters: QueryParameters = None,
) -> Generator[InputRow, None, None]:
    """Inputs from the rows of ``sql``, fetched ``chunk_size`` rows at a time (:func:`batches_from_query`)."""
    batches = batches_from_query(open_cursor, sql, phone_column, key_column, chunk_size, parameters)
    try:
        for batch in batches:
            yield from batch
    finally:
        batches.close()


def batches_from_query(
    open_cursor: Callable[[], Any], sql: str, phone_column: str | None = None, key_column: str | None = None,
    chunk_size: int = 1000, parameters: QueryParameters = None,
) -> Generator[list[InputRow], None, None]:
    """Inputs from the rows of ``sql``, a list per fetch of ``chunk_size`` rows. The query runs when the
    first batch is asked for, and its cursor is closed when the rows are exhausted (an open read would hold
    a SQLite file's lock). The phone number is ``phone_column`` (default: the first column); the source key
    is ``key_column`` when given. Other columns are ignored; NULL numbers arrive as None (reported invalid).
    ``parameters`` are bound to the query's placeholders by the driver (:func:`execute`)."""
    cursor = open_cursor()
    try:
        try:
            execute(cursor, sql, parameters)
        except Exception as error:
            if retry_can_fix(error):
                raise  # the source is down or busy: Airflow's retries apply
            raise ConfigurationError(
                f"The source query failed: {_problem(error)}. Correct the query "
                f"({_parameters(phone_column, key_column)}); nothing was checked or stored."
            ) from error
        yield from _batches(cursor, phone_column, key_column, chunk_size)
    finally:
        cursor.close()


class ChangedRows:
    """The rows of a source query found new or changed in a database (the results table's
    ``changed_rows_sql``): the source's own, or the results' one holding a copy of the source.
    :attr:`unchanged` counts the others, which never reach staging: known once the rows are read. ``sql`` is
    the source query when it runs in the results' database (a prune there too), else None; ``total`` may be
    set while the rows are read (a copy counts them as it makes itself)."""

    def __init__(self, rows: Iterator[InputRow], total: int | None, sql: str | None, key_column: str,
                 compared_in: str = "The source's database", parameters: QueryParameters = None) -> None:
        self._rows = rows
        self.total = total
        self._read = 0
        self.sql, self.key_column, self.parameters = sql, key_column, parameters
        self.compared_in = compared_in  # where the rows were compared, for the run's log

    def __iter__(self) -> Iterator[InputRow]:
        for row in self._rows:
            self._read += 1
            yield row

    @property
    def unchanged(self) -> int:
        return max((self.total or 0) - self._read, 0)

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()


def count_rows(cursor: Any, sql: str, parameters: QueryParameters = None) -> int | None:
    """How many rows ``sql`` returns, asked of its database; None when the database cannot count it so (the
    query is then read as it is)."""
    try:
        execute(cursor, f"SELECT COUNT(*) FROM ({sql.strip().rstrip(';').strip()}) src", parameters)
        return int(cursor.fetchone()[0])
    except Exception:
        return None


def start_reading(inputs: Iterable[InputRow]) -> Iterator[InputRow]:
    """``inputs`` with their first row read now, so that a source that cannot work (a query naming a missing
    column or table, a value that is not a list) fails before the results table is created; the rows are unchanged."""
    iterator = iter(inputs)
    return itertools.chain(list(itertools.islice(iterator, 1)), iterator)


def _problem(error: BaseException) -> str:
    """The driver's message on one line, without the lines that only point into the query (``LINE 1: ...``
    and its caret): the problem and the driver's hint (a candidate column, say) stay."""
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line for line in lines if line and not line.startswith("LINE ") and set(line) - {"^", " "}]
    return " ".join(kept).rstrip(".!")


def _parameters(phone_column: str | None, key_column: str | None) -> str:
    return f"phone_column={phone_column!r} (None: the first column), key_column={key_column!r}"


def _batches(cursor: Any, phone_column: str | None, key_column: str | None,
             chunk_size: int) -> Iterator[list[InputRow]]:
    names = [str(d[0]).lower() for d in cursor.description or ()]

    def position(column: str, role: str) -> int:
        try:
            return names.index(column.lower())
        except ValueError:
            raise ConfigurationError(
                f"The source query has no column {column!r} for the {role} (its columns: {', '.join(names)}; "
                f"{_parameters(phone_column, key_column)}): name one of its columns, or add the column to the "
                "query. Nothing was checked or stored."
            ) from None

    phone_at = position(phone_column, "phone number") if phone_column else 0
    key_at = position(key_column, "source key") if key_column else None
    while rows := cursor.fetchmany(chunk_size):
        if key_at is None:
            yield [(row[phone_at], "") for row in rows]
        else:
            yield [(row[phone_at], key if type(key := row[key_at]) is str else key_text(key)) for row in rows]


def key_text(value: object) -> str:
    """A source key as text: bytes are decoded (undecodable ones escaped, then reported by the store), NULL is
    the empty key."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return safe_str(value)
