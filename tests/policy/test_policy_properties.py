"""Property-based tests of policy files: every valid policy loads and round-trips; every policy
broken in one place is a ``PolicyError`` whose problems name the file and the field."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reoptd.errors import PolicyError
from reoptd.models.sklearn import resolve_estimator
from reoptd.policy import METRICS, Policy, parse_duration, parse_fraction, parse_policy
from reoptd.policy._schema import TRIGGER_KINDS

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# -- valid policies --------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(lambda n: n != "ts")
MODELS = st.from_regex(r"[A-Za-z0-9_.-]{1,24}", fullmatch=True)
FILE_NAMES = st.from_regex(r"(policies/)?[a-z][a-z0-9_-]{0,12}\.ya?ml", fullmatch=True)
#: the estimators valid policies name, with the parameters each takes (a policy may name no other)
ESTIMATOR_PARAMS = {
    path: sorted(resolve_estimator(path)._get_param_names())  # type: ignore[attr-defined]
    for path in (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.RandomForestRegressor",
        "sklearn.linear_model.LogisticRegression",
    )
}
ESTIMATORS = st.sampled_from(sorted(ESTIMATOR_PARAMS))
# Evidently's methods by column type (the policy refuses one of the wrong type)
NUM_METHODS = st.sampled_from(["wasserstein", "psi", "ks", "jensenshannon"])
CAT_METHODS = st.sampled_from(["psi", "jensenshannon", "chisquare", "TVD"])
ANY_METHODS = st.sampled_from(["psi", "jensenshannon", "kl_div", "hellinger"])  # both types

#: the largest count of each unit that stays well under the 100-year limit
_LIMIT = {"s": 10**8, "m": 10**6, "h": 10**5, "d": 36_000, "w": 5_000}

DURATIONS: st.SearchStrategy[str | int | float] = st.one_of(
    st.sampled_from(list(_LIMIT)).flatmap(
        lambda u: st.integers(0, _LIMIT[u]).map(lambda n: f"{n}{u}")
    ),
    st.sampled_from(["m", "h", "d", "w"]).flatmap(
        lambda u: st.integers(0, _LIMIT[u] - 1).map(lambda n: f"{n}.5{u}")
    ),
    st.integers(1, 999).map(lambda n: f"{n}ms"),
    st.integers(1, 999_999).map(lambda n: f"{n}us"),
    st.integers(0, 10**8),  # seconds
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
FRACTIONS: st.SearchStrategy[str | float] = st.one_of(
    st.integers(0, 100).map(lambda n: f"{n}%"),
    st.integers(0, 999).map(lambda n: f"{n / 10}%"),
    st.floats(min_value=0, max_value=1, allow_nan=False),
)
SIZES: st.SearchStrategy[str | int] = st.one_of(
    st.integers(0, 10**12),
    st.tuples(
        st.integers(1, 999), st.sampled_from(["B", "kB", "KB", "MB", "GB", "KiB", "MiB", "GiB"])
    ).map(lambda t: f"{t[0]}{t[1]}"),
    st.integers(1, 99).map(lambda n: f"{n / 10}GiB"),
)
LATENCIES: st.SearchStrategy[str | int] = st.one_of(
    st.integers(1, 999).map(lambda n: f"{n}ms"),
    st.integers(1, 999_999).map(lambda n: f"{n}us"),
    st.integers(1, 10).map(lambda n: f"{n}s"),
)
FLOATS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
# monitor.every: checks run at most once a second
CHECK_EVERY: st.SearchStrategy[str | int | float] = st.one_of(
    st.sampled_from(["s", "m", "h", "d"]).flatmap(
        lambda u: st.integers(1, 1000).map(lambda n: f"{n}{u}")
    ),
    st.integers(1, 10**6),
    st.floats(min_value=1, max_value=1e6, allow_nan=False),
)
POSITIVE = st.floats(min_value=1e-6, max_value=1e3)
STREAK = st.integers(1, 20)


def _field(low: int, high: int | None = None) -> st.SearchStrategy[str]:
    top = low if high is None else high
    return st.one_of(
        st.just("*"),
        st.integers(low, top).map(str),
        st.integers(1, 10).map(lambda k: f"*/{k}"),
        st.tuples(st.integers(low, top), st.integers(low, top)).map(lambda t: f"{min(t)}-{max(t)}"),
    )


CRONS = st.tuples(
    _field(0, 59),
    _field(0, 23),
    _field(1, 28),
    _field(1, 12),
    st.one_of(st.just("*"), st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])),
).map(" ".join)


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


@st.composite
def triggers(draw: st.DrawFn, features: list[str], metrics: list[str]) -> dict[str, Any]:
    """One trigger of a random kind, with parameters in their valid ranges."""
    kind = draw(st.sampled_from(TRIGGER_KINDS))
    streak = {"for": STREAK}
    if kind == "drift_share":
        value: Any = draw(st.fixed_dictionaries({"above": FRACTIONS}, optional=streak))
    elif kind == "drift_features":
        watched = st.lists(st.sampled_from(features), min_size=1, max_size=3, unique=True)
        value = draw(st.fixed_dictionaries({"features": watched}, optional=streak))
    elif kind == "prediction_drift":
        value = draw(_optional(**streak))
    elif kind == "metric":
        bound = draw(st.sampled_from(["below", "above", "drop"]))
        value = draw(
            st.fixed_dictionaries(
                {bound: POSITIVE if bound == "drop" else FLOATS},
                optional={
                    "name": st.sampled_from(metrics),
                    "min_labels": st.integers(1, 10**6),
                    **streak,
                },
            )
        )
    elif kind == "estimated_metric":
        # a floor only makes sense for higher-is-better metrics (the schema refuses the rest)
        rising = [m for m in metrics if m in ("accuracy", "f1", "roc_auc", "r2")]
        value = draw(
            st.fixed_dictionaries(
                {"below": FLOATS, "name": st.sampled_from(rising)}, optional=streak
            )
        )
    elif kind == "multivariate_drift":
        auc = st.floats(0.51, 1.0, allow_nan=False)
        value = draw(st.fixed_dictionaries({"above": auc}, optional=streak))
    elif kind == "new_rows":
        value = {"at_least": draw(st.integers(1, 10**9))}
    elif kind == "max_age":
        value = draw(DURATIONS)
    else:
        value = draw(CRONS)
    return {kind: value}


@st.composite
def pipelines(draw: st.DrawFn) -> list[Any]:
    budget = {"budget": DURATIONS}

    def step(name: str) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.just(name),
            st.just({name: None}),
            _optional(**budget).map(lambda options: {name: options}),
        )

    steps = draw(st.sampled_from([["retrain"], ["retrain", "validate"]]))
    return [draw(step(s)) for s in steps]


@st.composite
def valid_policies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid policy as the dict a YAML file would load to."""
    task = draw(st.sampled_from(["classification", "regression"]))
    metrics = sorted(METRICS[task])
    names = draw(st.lists(NAMES, min_size=3, max_size=8, unique=True))
    target, timestamp, *rest = names
    features = rest[: draw(st.integers(1, min(6, len(rest))))]
    split = draw(st.integers(0, len(features)))
    numerical, categorical = features[:split], features[split:]
    data: dict[str, Any] = {"version": 1, "model": draw(MODELS), "task": task, "target": target}
    if draw(st.booleans()):
        data["timestamp"] = timestamp  # else the default `ts`, never a feature here
    block: dict[str, Any] = {}
    if numerical or draw(st.booleans()):
        block["numerical"] = numerical
    if categorical or draw(st.booleans()):
        block["categorical"] = categorical
    data["features"] = block
    data["data"] = {
        "production": draw(
            st.one_of(
                st.fixed_dictionaries(
                    {"kind": st.just("demo")}, optional={"seed": st.integers(0, 2**31)}
                ),
                st.fixed_dictionaries(
                    {
                        "kind": st.just("files"),
                        "path": st.sampled_from(["data/*.parquet", "in/**/*.csv"]),
                    },
                    optional={"format": st.sampled_from(["auto", "parquet", "csv"])},
                ),
            )
        )
    }
    if draw(st.booleans()):
        column = _optional(method=ANY_METHODS, threshold=FLOATS)
        drift = _optional(
            method=NUM_METHODS,
            threshold=FLOATS,
            cat_method=CAT_METHODS,
            cat_threshold=FLOATS,
            per_column=st.dictionaries(st.sampled_from(features), column, max_size=3),
            drift_share=FRACTIONS,
        )
        data["monitor"] = draw(
            _optional(
                every=CHECK_EVERY,
                window=DURATIONS,
                min_rows=st.integers(1, 10**6),
                reference_rows=st.integers(10, 10**6),
                drift=drift,
            )
        )
    rules = draw(st.lists(triggers(features, metrics), max_size=5))
    form = draw(st.sampled_from(["list", "absent", "combine", "any", "all"]))
    if form == "list":
        data["triggers"] = rules
    elif form == "combine":
        data["triggers"] = rules
        data["combine"] = draw(st.sampled_from(["any", "all"]))
    elif form in ("any", "all"):
        data["triggers"] = {form: rules}
    if draw(st.booleans()):
        data["guards"] = draw(
            _optional(
                cooldown=DURATIONS,
                max_runs_per_day=st.integers(1, 1000),
                max_compute_per_day=DURATIONS,
            )
        )
    if draw(st.booleans()):
        data["pipeline"] = draw(pipelines())
    # the names an estimator takes (a policy may name no other); any values (checked at fit)
    estimator = draw(ESTIMATORS)
    params = st.dictionaries(
        st.sampled_from(ESTIMATOR_PARAMS[estimator]),
        st.one_of(st.integers(-1000, 1000), FLOATS, st.booleans(), st.none(), NAMES),
    )
    data["train"] = draw(
        st.fixed_dictionaries(
            {"estimator": st.just(estimator)},
            optional={
                "family": st.just("sklearn"),
                "params": params,
                "window": DURATIONS,
                "min_rows": st.integers(10, 10**6),
            },
        )
    )
    if draw(st.booleans()):
        rollback = st.fixed_dictionaries(
            {"drop": POSITIVE},
            optional={"within": DURATIONS, "min_labels": st.integers(1, 10**6)},
        )
        data["promote"] = draw(
            _optional(
                metric=st.sampled_from(metrics),
                min_improvement=st.floats(min_value=0, max_value=10),
                holdout=FRACTIONS,
                mode=st.sampled_from(["auto", "manual", "shadow"]),
                shadow_checks=st.integers(1, 50),
                max_latency=LATENCIES,
                max_size=SIZES,
                rollback=rollback,
            )
        )
    if _uses_value(data):  # the business value needs its cost matrix
        data.setdefault("promote", {})["costs"] = {"tp": 1.0, "fn": -1.0}
    return data


def _uses_value(data: dict[str, Any]) -> bool:
    """Whether a drawn policy names the metric `value` (promote.metric or a metric trigger)."""
    named = [data.get("promote", {}).get("metric")]
    rules = data.get("triggers") or []
    if isinstance(rules, dict):
        rules = next(iter(rules.values()))
    for rule in rules:
        if isinstance(rule, dict) and isinstance(rule.get("metric"), dict):
            named.append(rule["metric"].get("name"))
    return "value" in named


def rules_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The trigger list of a policy dict, in either of its written forms."""
    written = data.get("triggers", [])
    if isinstance(written, dict):
        ((_, written),) = written.items()
    return written


@SETTINGS
@given(valid_policies(), FILE_NAMES)
def test_valid_policies_load_and_round_trip(data: dict[str, Any], name: str) -> None:
    text = yaml.safe_dump(data, sort_keys=False)
    policy = parse_policy(text, name)

    assert policy.source == Path(name)
    assert policy.model == data["model"]
    assert policy.task == data["task"]
    assert policy.target == data["target"]
    assert policy.timestamp == data.get("timestamp", "ts")
    assert policy.features.all == [
        *data["features"].get("numerical", []),
        *data["features"].get("categorical", []),
    ]
    assert [t.kind for t in policy.triggers] == [next(iter(t)) for t in rules_of(data)]
    written = data.get("triggers")
    combine = next(iter(written)) if isinstance(written, dict) else data.get("combine", "any")
    assert policy.combine == combine
    assert policy.metric in METRICS[policy.task]
    assert policy.steps in (["retrain"], ["retrain", "validate"])
    if "monitor" in data and "every" in data["monitor"]:
        assert policy.monitor.every == parse_duration(data["monitor"]["every"])
    if "promote" in data and "holdout" in data["promote"]:
        assert policy.promote.holdout == parse_fraction(data["promote"]["holdout"])

    dumped = policy.model_dump(mode="json", by_alias=True)
    again = Policy.model_validate(dumped)
    assert again.model_dump(mode="json", by_alias=True) == dumped
    # the same values, not only the same text: nothing is rounded away on the trip
    again._source = policy.source
    assert again == policy
    # and the dump, written as YAML (as the registry keeps it), is a valid policy file
    reloaded = parse_policy(yaml.safe_dump(dumped), name)
    assert reloaded.model_dump(mode="json", by_alias=True) == dumped


# -- policies broken in one place ------------------------------------------------------------


@dataclass
class Slot:
    """One value of a policy dict: its field path as the errors spell it, and where it lives."""

    path: str
    container: dict[str, Any] | list[Any]
    key: str | int

    @property
    def value(self) -> Any:
        return self.container[self.key]  # type: ignore[index]


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def slots(data: dict[str, Any]) -> list[Slot]:
    """Every value of a policy dict, with its field path (``triggers.0.metric.below``)."""
    found: list[Slot] = []

    def walk(node: Any, path: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            here = _join(path, key)
            found.append(Slot(here, node, key))
            if isinstance(value, dict | list) and here != "train.params":
                walk(value, here)

    for key, value in data.items():
        if key == "triggers":
            for i, rule in enumerate(rules_of(data)):
                found.append(Slot(f"triggers.{i}", rules_of(data), i))
                walk(rule, f"triggers.{i}")
        elif key == "pipeline":
            # `{retrain: {budget: 10m}}` is the step {name: retrain, budget: 10m}
            for i, entry in enumerate(value):
                if isinstance(entry, dict):
                    ((step, options),) = entry.items()
                    if isinstance(options, dict):
                        found.append(Slot(f"pipeline.{i}", entry, step))
                        walk(options, f"pipeline.{i}")
        else:
            found.append(Slot(key, data, key))
            if isinstance(value, dict | list):
                walk(value, key)
    return found


DURATION_PATH = re.compile(
    r"^(monitor\.(every|window)|guards\.(cooldown|max_compute_per_day)|train\.window"
    r"|promote\.(max_latency|rollback\.within)|triggers\.\d+\.max_age|pipeline\.\d+\.budget)$"
)
FRACTION_PATH = re.compile(
    r"^(monitor\.drift\.drift_share|promote\.holdout|triggers\.\d+\.drift_share\.above)$"
)
REQUIRED_PATH = re.compile(
    r"^(version|model|task|target|features|data|data\.production|data\.production\.kind|train"
    r"|train\.estimator|promote\.rollback\.drop|triggers\.\d+\.drift_share\.above"
    r"|triggers\.\d+\.drift_features\.features"
    r"|triggers\.\d+\.new_rows\.at_least|triggers\.\d+\.multivariate_drift\.above)$"
)
UNKNOWN_KEYS = st.from_regex(r"x_[a-z]{1,8}", fullmatch=True)
BAD_DURATIONS = st.sampled_from(
    [-1, -0.5, "-5m", 1e20, float("inf"), float("nan"), "99999w", "2000000d", "5 minutes", "1y"]
)
BAD_FRACTIONS = st.sampled_from([1.5, -0.1, "150%", "-5%", 2, "101%", 1e9, "abc%", "0.5"])
OTHER_KINDS = {
    "drift_share": {"above": 0.3},
    "prediction_drift": {},
    "new_rows": {"at_least": 10},
    "max_age": "7d",
    "schedule": "0 3 * * *",
}


@dataclass
class Broken:
    data: dict[str, Any]
    case: str
    path: str  # the field path that must appear in the problems
    says: str  # and what they must say about it
    key: str | None = None  # an unknown key whose line the problem must give


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b`` in ``data``, creating blocks on the way."""
    *blocks, last = path.split(".")
    node = data
    for block in blocks:
        node = node.setdefault(block, {})
    node[last] = value


@st.composite
def broken_policies(draw: st.DrawFn, case: str) -> Broken:
    """A valid policy with one problem of the kind ``case``."""
    data = copy.deepcopy(draw(valid_policies()))
    found = slots(data)
    if case == "unknown_key":
        # not train.params (any key goes) nor monitor.drift.per_column (its keys are columns)
        free = ("train.params", "monitor.drift.per_column")
        blocks = [Slot("", {"": data}, "")] + [
            s for s in found if isinstance(s.value, dict) and s.path not in free
        ]
        where = draw(st.sampled_from(blocks))
        key = draw(UNKNOWN_KEYS)
        where.value[key] = draw(st.one_of(st.integers(), NAMES, st.just({"a": 1})))
        # in YAML, `triggers: {all: [...]}` and `{retrain: {budget: ..}}` nest one level deeper
        nested = isinstance(data.get("triggers"), dict) and where.path.startswith("triggers")
        nested = nested or where.path.startswith("pipeline")
        return Broken(
            data, case, _join(where.path, key), f"unknown key `{key}`", None if nested else key
        )
    if case == "wrong_type":
        scalars = [
            s
            for s in found
            if not isinstance(s.value, dict | list) and not s.path.startswith("train.params.")
        ]
        where = draw(st.sampled_from(scalars))
        wrong = [{"x_wrong": 1}, [1, 2]]
        if isinstance(where.value, int | float) and not isinstance(where.value, bool):
            wrong.append("not a number")
        where.container[where.key] = draw(st.sampled_from(wrong))  # type: ignore[index]
        return Broken(data, case, where.path, "")
    if case == "bad_duration":
        paths = [s.path for s in found if DURATION_PATH.match(s.path)] + ["guards.cooldown"]
        path = draw(st.sampled_from(paths))
        if path.startswith(("triggers.", "pipeline.")):
            slot = next(s for s in found if s.path == path)
            slot.container[slot.key] = draw(BAD_DURATIONS)  # type: ignore[index]
        else:
            _set(data, path, draw(BAD_DURATIONS))
        return Broken(data, case, path, "duration")
    if case == "bad_fraction":
        paths = [s.path for s in found if FRACTION_PATH.match(s.path)] + ["promote.holdout"]
        path = draw(st.sampled_from(paths))
        if path.startswith("triggers."):
            slot = next(s for s in found if s.path == path)
            slot.container[slot.key] = draw(BAD_FRACTIONS)  # type: ignore[index]
        else:
            _set(data, path, draw(BAD_FRACTIONS))
        return Broken(data, case, path, "fraction")
    if case == "missing":
        where = draw(st.sampled_from([s for s in found if REQUIRED_PATH.match(s.path)]))
        del where.container[where.key]  # type: ignore[arg-type]
        return Broken(data, case, where.path, "required field is missing")
    if case == "two_kinds":
        rules = rules_of(data)
        if not rules or draw(st.booleans()):
            rules.append({"new_rows": {"at_least": 5}})
            if "triggers" not in data:
                data["triggers"] = rules
        i = draw(st.integers(0, len(rules) - 1))
        kinds = sorted(k for k in OTHER_KINDS if k not in rules[i])
        extra = draw(st.sampled_from(kinds))
        rules[i][extra] = OTHER_KINDS[extra]
        return Broken(data, case, f"triggers.{i}", "each trigger needs exactly one of")
    if case == "unknown_metric":
        # (precision and mape are built in now: misspelt and unsupported names instead)
        bad = draw(st.sampled_from(["precision_at_k", "auc", "F1", "RMSE", "logloss", "smape"]))
        other = next(t for t in METRICS if t != data["task"])
        bad = draw(st.sampled_from([bad, *METRICS[other]]))
        rules = rules_of(data)
        named = [
            f"triggers.{i}.{kind}"
            for i, rule in enumerate(rules)
            for kind in ("metric", "estimated_metric")
            if kind in rule
        ]
        where = draw(st.sampled_from(["promote", *named]))
        if where == "promote":
            _set(data, "promote.metric", bad)
            path = "promote.metric"
        else:
            _, i, kind = where.split(".")
            rules[int(i)][kind]["name"] = bad
            path = f"{where}.name"
        return Broken(data, case, path, f"unknown {data['task']} metric {bad!r}")
    features = data["features"]
    twice = draw(
        st.sampled_from([*features.get("numerical", []), *features.get("categorical", [])])
    )
    features.setdefault(draw(st.sampled_from(["numerical", "categorical"])), []).append(twice)
    return Broken(data, "feature_twice", "features", f"listed twice: {twice}")


#: ``file[:line]: field: message``, the field a dotted path or ``(top level)``
PROBLEM = re.compile(
    r"^(?P<name>.+?)(?::(?P<line>\d+))?: "
    r"(?P<field>\(top level\)|[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*): "
)


CASES = [
    "unknown_key",
    "wrong_type",
    "bad_duration",
    "bad_fraction",
    "missing",
    "two_kinds",
    "unknown_metric",
    "feature_twice",
]


@pytest.mark.parametrize("case", CASES)
@settings(SETTINGS, max_examples=50)
@given(data=st.data(), name=FILE_NAMES)
def test_a_policy_broken_in_one_place_is_a_policy_error(
    case: str, data: st.DataObject, name: str
) -> None:
    broken = data.draw(broken_policies(case), label="broken")
    assert broken.case == case
    text = yaml.safe_dump(broken.data, sort_keys=False)
    try:
        parse_policy(text, name)
    except PolicyError as exc:
        error = exc
    else:
        raise AssertionError(f"{broken.case} at {broken.path} was accepted:\n{text}")

    assert error.path == name
    assert len(error.problems) == 1, error.problems  # one problem, reported once
    assert str(error) == "\n".join(error.problems)
    lines = text.count("\n") + 1
    for problem in error.problems:
        assert problem.startswith(name)
        match = PROBLEM.match(problem)
        assert match is not None, problem
        assert match["name"] == name
        if match["line"] is not None:
            assert 1 <= int(match["line"]) <= lines
    joined = "\n".join(error.problems)
    assert broken.path in joined
    assert broken.says in joined
    if broken.case in ("unknown_key", "wrong_type", "bad_duration", "bad_fraction", "missing"):
        # a field problem names the field itself, right after file and line
        assert any(PROBLEM.match(p)["field"] == broken.path for p in error.problems)  # type: ignore[index]
    if broken.key is not None:
        # ... on the line of the bad key
        rows = enumerate(text.splitlines(), start=1)
        (line,) = [i for i, row in rows if re.match(rf"^\s*(- )?{broken.key}:", row)]
        assert error.problems[0].startswith(f"{name}:{line}: {broken.path}: ")
    if broken.case in ("unknown_metric", "feature_twice"):
        # cross-field problems are reported for the whole file, naming the field in the message
        assert any(f"(top level): {broken.path}" in p for p in error.problems)
