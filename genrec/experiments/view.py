"""The rows of a suite's leaderboard and the records behind them.

Rows: the suite's own plan (every model, variant, dataset and split of the profile, with its planned seeds;
blank where records are missing), plus every row that exists only as records of this suite and profile: runs
with CLI overrides (variant `<variant>+<tag>`, see `genrec.experiments.suite.override_tag`) and runs on a
dataset outside the plan (`--dataset atomic:<folder>`). Such a row is re-planned from what its records store
(the model, dataset, the overrides that changed it and the seeds its commands planned), so a config edit since
then shows as a changed config hash; its cells need every seed its commands planned.

Records: for each row's spec, the record with the spec's config hash whose split hash and dataset fingerprint
are those of the data on disk now (`genrec.experiments.runner.is_current`). Any other record (stale data, an old
config, another profile) is kept on disk and not shown. Which records and rows a table shows never depends on
which corner of the suite the command ran (`--model`, `--dataset`, `--seeds` ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from genrec.common.errors import BenchError
from genrec.data.cache import cached_split
from genrec.experiments.runner import is_current
from genrec.experiments.suite import RunSpec, SuiteConfig, plan

Row = tuple[str, str, str, str]  # (model, variant, dataset, split)


def _row(r: dict | RunSpec) -> Row:
    get = r.get if isinstance(r, dict) else lambda k: getattr(r, k)
    return get("model"), get("variant"), get("dataset"), get("split")


def table_specs(suite: SuiteConfig, profile: str, records: list[dict],
                log: Callable[[str], None] = print) -> list[RunSpec]:
    """The specs of every row the leaderboard shows (see the module docstring), the suite's own plan first."""
    specs = plan(suite, profile)
    planned = {_row(s) for s in specs}
    groups: dict[tuple[str, str, str], dict] = {}
    for r in records:
        if r.get("profile") != profile or _row(r) in planned:
            continue
        g = groups.setdefault((r["model"], r["dataset"], json.dumps(r.get("overrides") or {}, sort_keys=True)),
                              {"rows": set(), "seeds": set()})
        g["rows"].add(_row(r))
        g["seeds"].update(r.get("planned_seeds") or [r["seed"]])
    for (model, dataset, over), g in sorted(groups.items()):
        cli = {k if k.startswith("eval.") or k == "tuned" else f"{model}.{k}": v for k, v in json.loads(over).items()}
        try:
            more = plan(suite, profile, [dataset], sorted(g["seeds"]), cli, [model])
        except BenchError as e:
            log(f"not shown: records of {model} on {dataset} with overrides {over}: cannot be planned now ({e})")
            continue
        specs += [s for s in more if _row(s) in g["rows"]]
    return specs


def current_records(specs: list[RunSpec], records: list[dict], log: Callable[[str], None] = print) -> list[dict]:
    """The records that back `specs`: same row, seed and config hash (`RunSpec.config_hashes`), computed on the data
    on disk now; one per row and seed, the newest (`created`) where a run exists in both precisions, so the table
    does not depend on which CPU renders it."""
    wanted = {(*_row(s), s.seed, h): s for s in specs for h in s.config_hashes}
    out, stale, missing_data = [], 0, set()
    for r in records:
        spec = wanted.get((*_row(r), r["seed"], r["config_hash"]))
        if spec is None or spec.dataset in missing_data:
            continue
        try:
            split = cached_split(spec.dataset, spec.split, spec.seed, spec.split_params)
        except BenchError as e:
            log(f"not shown: records on {spec.dataset}: its data cannot be loaded ({e})")
            missing_data.add(spec.dataset)
            continue
        if is_current(r, split):
            out.append(r)
        else:
            stale += 1
    if stale:
        log(f"not shown: {stale} stale record(s) of data that changed since (kept in results/; --dry-run lists them)")
    newest: dict[tuple, dict] = {}
    for r in out:
        key = (*_row(r), r["seed"])
        if key not in newest or (r.get("created") or "") > (newest[key].get("created") or ""):
            newest[key] = r
    return [r for r in out if newest[(*_row(r), r["seed"])] is r]
