"""Recommend with a trained model, for a known user or a new history, and say why.

    python benchmarks/recommend.py --list                                     # runs that kept a model
    python benchmarks/recommend.py colarec--full--ml-100k--colarec--s0 --user 196 -k 10
    python benchmarks/recommend.py colarec--full--ml-100k--colarec--s0 --history "Star Wars (1977)" "Fargo (1996)"
    python benchmarks/recommend.py runs/results/ablation/models/<run key> --user 196 --json

The model is a run id (`<model>--<variant>--<dataset>--<split>--s<seed>`), a run key (the folder name) or a
model folder. `--history` takes raw item ids or exact titles, oldest first. An unknown user, item or title (or
run) is one line with the closest matches, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genrec.common.errors import ConfigError, run_cli  # noqa: E402
from genrec.common.paths import results_dir  # noqa: E402
from genrec.serving.bundle import find_model, model_dirs  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="run id, run key or model folder")
    p.add_argument("--user", help="raw user id of a user seen in training")
    p.add_argument("--history", nargs="+", help="raw item ids or exact titles of a new user, oldest first")
    p.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--explain", action="store_true", help="explain every recommended item")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--list", action="store_true", help="list the runs that kept a model")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return p.parse_args(argv)


def list_models(root: Path) -> int:
    dirs = model_dirs(root)
    for d in dirs:
        cfg = json.loads((d / "config.json").read_text())
        print(f"{cfg['run_id'] or d.name:60s} {cfg['model']:13s} {d}")
    if not dirs:
        print(f"no kept models under {root}: run a suite first (python benchmarks/run.py --suite smoke)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = results_dir()
    if args.list:
        return list_models(root)
    if not args.model:
        raise ConfigError("give a run id or model folder (see --list), or --list")
    if (args.user is None) == (args.history is None):
        raise ConfigError("give exactly one of --user <raw id> or --history <ids or titles...>")
    if args.k < 1:
        raise ConfigError(f"-k {args.k}: expected an integer >= 1")
    import torch  # noqa: PLC0415

    from genrec.serving.api import load  # noqa: PLC0415
    from genrec.serving.explain import render  # noqa: PLC0415

    torch.set_num_threads(max(1, args.threads))
    tm = load(find_model(args.model, root))
    recs = tm.recommend(user=args.user, history=args.history, k=args.k)
    explained = ([tm.explain(r.item, user=args.user, history=args.history) for r in recs.items]
                 if args.explain else [])
    if args.json:
        print(json.dumps({**recs.to_dict(), "model": tm.name, "explanations": explained}, indent=1))
        return 0
    who = f"user {args.user}" if args.user is not None else f"history of {len(args.history)} items"
    print(f"{tm.name}, {who} ({recs.method}):")
    for r in recs.items:
        print(f"  {r.rank:2d}. {r.title} [{r.item}]  score {r.score:.4g}")
    for e in explained:
        print()
        print(render(e))
    return 0


if __name__ == "__main__":
    run_cli(main)
