"""Rows POSTed to the HTTP API: row-by-row validation, one-transaction storage, and the source
that reads them back (policy ``data.production.kind: api``).

Who calls it: ``reoptd.api`` validates and stores a batch (``check_predictions``/``check_labels``
then ``store_predictions``/``store_labels``); the loop reads windows through ``IngestSource``.
A batch is all or nothing: any bad row rejects it whole, with one ``Problem`` per bad cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from reoptd.clock import utc
from reoptd.errors import DuplicateIds, ModelNotFound, ReoptdError
from reoptd.policy import Policy
from reoptd.store import IngestedLabel, IngestedPrediction

if TYPE_CHECKING:
    from reoptd.store import Store


@dataclass(frozen=True)
class Problem:
    """Why one row of a batch was refused: ``row`` is its 0-based position in the batch."""

    row: int
    column: str | None
    error: str


class BatchRejected(ReoptdError):
    """A batch holds bad rows (``problems``); nothing of it was stored."""

    def __init__(self, model: str, problems: list[Problem], *, conflict: bool = False) -> None:
        self.model = model
        self.problems = problems
        self.conflict = conflict  # the rows are well-formed but their ids were ingested before
        shown = "; ".join(f"row {p.row}: {p.column}: {p.error}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{model}: batch rejected, nothing stored: {shown}{more}")


#: a validated production row, as the store takes it
Prediction = IngestedPrediction
#: a validated label, as the store takes it
Label = IngestedLabel


def _number(value: Any, text: bool) -> float:
    """A finite float from a JSON number, or from a string when the batch came as CSV text."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a number, got {_show(value)}")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer beyond a float's range
            raise ValueError(f"number out of range: {_show(value)}") from None
    elif isinstance(value, str) and text:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {_show(value)}") from None
    else:
        raise ValueError(f"expected a number, got {_show(value)}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_show(value)}")
    return number


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _present(row: Mapping[str, Any], column: str) -> Any:
    if column not in row:
        raise KeyError(column)
    value = row[column]
    if value is None or (isinstance(value, str) and value.strip() == ""):
        raise ValueError("empty value")
    return value


def _row_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a string or an integer id, got {_show(value)}")
    text = str(value)
    if len(text) > 200:
        raise ValueError("id longer than 200 characters")
    return text


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 date-time string, got {_show(value)}")
    try:  # strict ISO 8601: pandas would also take words such as "now"
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {_show(value)}") from None
    try:
        stamp = utc(parsed)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
        raise ValueError(f"date-time out of range once converted to UTC: {_show(value)}") from None
    if not _EARLIEST <= stamp <= _LATEST:  # windows are read as pandas timestamps
        raise ValueError(
            f"date-time out of range: {_show(value)} (from {_EARLIEST:%Y-%m-%d}"
            f" to {_LATEST:%Y-%m-%d} UTC)"
        )
    return stamp


#: the range of event times a window can hold (pandas' nanosecond timestamps)
_EARLIEST = pd.Timestamp.min.ceil("s").to_pydatetime().replace(tzinfo=UTC)
_LATEST = pd.Timestamp.max.floor("s").to_pydatetime().replace(tzinfo=UTC)


def _cell(problems: list[Problem], index: int, column: str, parse: Any, row: Mapping) -> Any:
    try:
        return parse(_present(row, column))
    except KeyError:
        problems.append(Problem(index, column, "missing column"))
    except ValueError as exc:
        problems.append(Problem(index, column, str(exc)))
    return None


def _rows(rows: Sequence[Any]) -> list[Problem]:
    return [
        Problem(i, None, f"a row must be an object of column: value, got {_show(row)}")
        for i, row in enumerate(rows)
        if not isinstance(row, Mapping)
    ]


def _ids(problems: list[Problem], ids: list[tuple[int, str | None]]) -> None:
    seen: dict[str, int] = {}
    for index, row_id in ids:
        if row_id is None:
            continue
        if row_id in seen:
            problems.append(Problem(index, None, f"id {row_id!r} repeats row {seen[row_id]}"))
        else:
            seen[row_id] = index


def _id_column(policy: Policy) -> str:
    if policy.id is None:
        raise ReoptdError(
            f"model {policy.model!r}: its policy has no `id` column, which ingestion needs"
        )
    return policy.id


def check_predictions(
    policy: Policy, rows: Sequence[Any], *, text: bool = False
) -> list[Prediction]:
    """Every row validated against the policy, or ``BatchRejected`` naming each bad cell.

    ``text`` says the values came from CSV, where numbers arrive as strings.
    """
    problems = _rows(rows)
    if problems:
        raise BatchRejected(policy.model, problems)
    id_column = _id_column(policy)
    out: list[Prediction] = []
    ids: list[tuple[int, str | None]] = []
    for index, row in enumerate(rows):
        before = len(problems)
        row_id = _cell(problems, index, id_column, _row_id, row)
        ts = _cell(problems, index, policy.timestamp, _timestamp, row)
        features: dict[str, Any] = {}
        for column in policy.features.numerical:
            features[column] = _cell(problems, index, column, lambda v: _number(v, text), row)
        for column in policy.features.categorical:
            features[column] = _cell(problems, index, column, _category, row)
        ids.append((index, row_id))
        if len(problems) == before:
            out.append(Prediction(row_id, ts, features))
    _ids(problems, ids)
    if problems:
        raise BatchRejected(policy.model, sorted(problems, key=lambda p: p.row))
    return out


def _category(value: Any) -> str:
    if isinstance(value, str | int | bool) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    raise ValueError(f"expected a category (string or number), got {_show(value)}")


def label_kind(value: Any) -> str:
    """What kind of label ``value`` is: ``number``, ``string`` or ``boolean``."""
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def stored_label_kind(store: Store, policy: Policy, now: datetime) -> str | None:
    """The kind of the labels stored for the rows of the model's current window (None if it
    has none): a batch of another kind is refused, since one string "1" beside numeric labels
    breaks every retrain on the window."""
    try:
        found = store.ingested(policy.model, now - policy.monitor.window, now)
    except ModelNotFound:
        return None
    return next((label_kind(r.label) for r in found if r.label is not None), None)


def check_labels(
    policy: Policy, rows: Sequence[Any], *, text: bool = False, known: str | None = None
) -> list[Label]:
    """Rows of (id, target) validated against the policy's task, or ``BatchRejected``.

    A classification's labels are all of one kind (numbers, strings or booleans): ``known``
    (the kind stored before, see ``stored_label_kind``) or else the batch's first label's; a
    label of another kind is refused naming its row and column.
    """
    problems = _rows(rows)
    if problems:
        raise BatchRejected(policy.model, problems)
    id_column = _id_column(policy)
    if policy.task == "regression":

        def parse(value: Any) -> Any:
            return _number(value, text)
    else:

        def parse(value: Any) -> Any:
            if isinstance(value, str) and text:  # CSV: "1" and "1.0" are the class 1.0
                try:
                    return _number(value, text)
                except ValueError:
                    return value
            if isinstance(value, str | bool):
                return value
            return _number(value, text)

    out: list[Label] = []
    placed: list[tuple[int, Label]] = []  # (row, label) of the well-formed rows
    ids: list[tuple[int, str | None]] = []
    for index, row in enumerate(rows):
        before = len(problems)
        row_id = _cell(problems, index, id_column, _row_id, row)
        label = _cell(problems, index, policy.target, parse, row)
        ids.append((index, row_id))
        if len(problems) == before:
            out.append(Label(row_id, label))
            placed.append((index, out[-1]))
    _ids(problems, ids)
    if policy.task == "classification":
        _same_kind(problems, policy, placed, known)
    if problems:
        raise BatchRejected(policy.model, sorted(problems, key=lambda p: p.row))
    return out


def _same_kind(
    problems: list[Problem],
    policy: Policy,
    labels: list[tuple[int, Label]],
    known: str | None,
) -> None:
    """A problem for each label whose kind differs from ``known`` or the batch's first label's."""
    if not labels:
        return
    expected = known or label_kind(labels[0][1].label)
    where = "the labels stored before" if known else "the batch's first label"
    for row, label in labels:
        kind = label_kind(label.label)
        if kind != expected:
            problems.append(
                Problem(
                    row,
                    policy.target,
                    f"label {_show(label.label)} is a {kind}, but {where}"
                    f" {'are' if known else 'is a'} {expected}{'s' if known else ''}:"
                    " a model's labels must all be of one kind",
                )
            )


def _ensure(store: Store, policy: Policy, at: datetime) -> None:
    try:
        store.model(policy.model)
    except ModelNotFound:  # rows may arrive before the daemon's first cycle
        store.ensure_model(policy, at)


def _refused(
    policy: Policy, rows: Sequence[Prediction | Label], exc: DuplicateIds
) -> BatchRejected:
    """The store's refusal as the API's: one problem per row whose id was stored before."""
    if exc.concurrent:
        problems = [Problem(0, policy.id, "an id of this batch was ingested meanwhile")]
    else:
        known = set(exc.ids)
        problems = [
            Problem(i, policy.id, f"id {r.row_id!r} was ingested before")
            for i, r in enumerate(rows)
            if r.row_id in known
        ]
    return BatchRejected(policy.model, problems, conflict=True)


def store_predictions(store: Store, policy: Policy, rows: list[Prediction], at: datetime) -> int:
    """Store a validated batch in one transaction; ids seen before reject it whole."""
    _ensure(store, policy, at)
    try:
        return store.add_predictions(policy.model, rows, at=at)
    except DuplicateIds as exc:
        raise _refused(policy, rows, exc) from None


def store_labels(store: Store, policy: Policy, rows: list[Label], at: datetime) -> int:
    _ensure(store, policy, at)
    try:
        return store.add_labels(policy.model, rows, at=at)
    except DuplicateIds as exc:
        raise _refused(policy, rows, exc) from None


def count_rows(store: Store, model: str) -> tuple[int, int]:
    """How many predictions and labels are stored for ``model`` (0, 0 if it is unknown)."""
    try:
        return store.count_ingested(model)
    except ModelNotFound:
        return 0, 0


class IngestSource:
    """The window's ingested predictions, each with its label joined on the policy's ``id``
    (NaN where none has arrived yet)."""

    def __init__(self, store: Store, policy: Policy) -> None:
        self.store = store
        self.policy = policy
        self.name = f"api ingest {policy.model}"

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        policy = self.policy
        id_column = _id_column(policy)
        columns = [id_column, policy.timestamp, *policy.features.all, policy.target]
        try:
            found = self.store.ingested(policy.model, start, end)
        except ModelNotFound:
            found = []
        records: list[dict[str, Any]] = [
            {
                id_column: row.row_id,
                policy.timestamp: row.ts,
                **row.features,
                policy.target: row.label,
            }
            for row in found
        ]
        frame = pd.DataFrame.from_records(records, columns=columns)
        frame[policy.timestamp] = pd.to_datetime(frame[policy.timestamp], utc=True)
        for column in policy.features.numerical:
            frame[column] = frame[column].astype(float)
        for column in policy.features.categorical:
            frame[column] = frame[column].astype(object)
        if policy.task == "regression" or all(
            isinstance(v, int | float) for v in frame[policy.target].dropna()
        ):
            frame[policy.target] = pd.to_numeric(frame[policy.target]).astype(float)
        return frame.reset_index(drop=True)
