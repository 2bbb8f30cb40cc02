"""MF (RecBole `BPR`), LightGCN and SASRec, trained by RecBole's own `Trainer` on OUR split.

Why an adapter rather than `run_recbole`: RecBole would re-split and re-index the data, so its numbers could not
be compared with the other models'. Here the split's train/valid/test are written as RecBole benchmark files
(`<name>.{train,valid,test}.inter`, our internal ids as tokens) and loaded with `benchmark_filename`, which makes
RecBole skip its splitting and filtering (the adapter checks that every row arrived). RecBole's `Trainer` then
trains with early stopping on the validation metric (NDCG@10, `stopping_step`) computed by the benchmark's own
evaluator (`ctx.validate` replaces `Trainer._valid_epoch`, so every model is selected on the same numbers);
every validation score is forwarded to `ctx.report`, and the best checkpoint is restored. The learning curve (`fit_info["curve"]`, one point
per epoch) is captured from that same training by `_CurveRecorder`. `score(users)` maps RecBole's internal ids back
to ours (`field2token_id`), so the shared evaluator ranks the same items RecBole would.

MF and LightGCN: RecBole's full-ranking valid/test evaluation is the same protocol as ours with
`exclude_valid=True` (train items masked for valid, train+valid for test); `recbole_evaluate("test")` returns
RecBole's own numbers for cross-checking.

SASRec: with `benchmark_filename`, RecBole's `SequentialDataset` does NOT build sequences; each row must already
carry its history (`item_id_list:token_seq`). The adapter writes them: train rows are every prefix of a user's
time-ordered training items (at most `max_item_list_length`), and every valid and test interaction is one row
whose history is the user's training items (plus, for test, the validation items when `history_with_valid`
and the run's protocol excludes them; the fit info says which under "history"). RecBole evaluates sequential
models per row without masking history; our evaluator (per user, train items masked) scores the same history.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from baselines import recbole_compat as compat
from baselines import served
from baselines.configs import LightGCNConfig, MFConfig, SASRecConfig, TrainConfig
from genrec.common.errors import ConfigError, DataError
from genrec.common.progress import progress
from genrec.common.util import atomic_write_text
from genrec.data.splits import PARTS, Split

RECBOLE_METRICS = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "Hit", "precision": "Precision"}
_UNIFORM_NEG = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0}


def write_benchmark(split: Split, folder: Path, name: str) -> list[int]:
    """Write `split` as `<folder>/<name>.{train,valid,test}.inter` (user_id, item_id[, timestamp]); row counts.

    Files are written atomically, then a marker `<name>.done.json` (split hash, row counts, file sizes). A later
    fit of the same split (every seed, trial and model shares it) finds the marker and reuses the files instead of
    writing ~100k rows again, the adapter's main fixed cost per fit; a missing, unreadable or mismatching marker
    or file size means rewrite."""
    marker = folder / f"{name}.done.json"
    paths = {part: folder / f"{name}.{part}.inter" for part in PARTS}
    try:
        meta = json.loads(marker.read_text())
        if meta["split_hash"] == split.hash and all(p.stat().st_size == meta["bytes"][part]
                                                    for part, p in paths.items()):
            return [int(c) for c in meta["counts"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    with_time = bool(np.isfinite(split.dataset.inter["timestamp"].to_numpy()).all())
    counts, sizes = [], {}
    for part, path in paths.items():
        df = split.frame(part)
        out = pd.DataFrame({"user_id:token": df["user"], "item_id:token": df["item"]})
        if with_time:
            out["timestamp:float"] = df["timestamp"]
        atomic_write_text(path, out.to_csv(sep="\t", index=False))
        counts.append(len(df))
        sizes[part] = path.stat().st_size
    atomic_write_text(marker, json.dumps({"split_hash": split.hash, "counts": counts, "bytes": sizes}))
    return counts


class _RecBoleModel:
    """Shared fit/score machinery; subclasses name the RecBole model and its extra config."""

    recbole_model = ""
    sequential = False
    Config: type = TrainConfig

    def __init__(self, config: Any):
        self.config = config
        self._model: Any = None

    # --- RecBole config -------------------------------------------------------------------------------------
    def _overrides(self) -> dict[str, Any]:
        """RecBole config keys from our Config (subclasses rename or add keys)."""
        return {**dataclasses.asdict(self.config), "train_neg_sample_args": dict(_UNIFORM_NEG)}

    def _recbole_config(self, ctx: Any, data_path: Path, name: str) -> Any:
        from recbole.config import Config  # noqa: PLC0415

        metric, _, k = ctx.eval.valid_metric.partition("@")
        if metric not in RECBOLE_METRICS or not k.isdigit():
            raise ConfigError(f"eval.valid_metric {ctx.eval.valid_metric!r}: expected <metric>@<k> with metric in "
                              f"{sorted(RECBOLE_METRICS)}")
        cols = ["user_id", "item_id_list", "item_id"] if self.sequential else ["user_id", "item_id", "timestamp"]
        header = (data_path / name / f"{name}.train.inter").read_text().split("\n", 1)[0]
        cols = [c for c in cols if f"{c}:" in header]
        cfg = {
            "data_path": str(data_path), "benchmark_filename": list(PARTS), "load_col": {"inter": cols},
            "checkpoint_dir": str(data_path / "saved" / name), "seed": ctx.seed, "reproducibility": True,
            "use_gpu": torch.cuda.is_available(), "show_progress": False, "state": "WARNING",
            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "mode": "full",
                          "order": "TO" if self.sequential else "RO"},
            "metrics": list(RECBOLE_METRICS.values()), "topk": sorted({*ctx.eval.ks, int(k)}),
            "valid_metric": f"{RECBOLE_METRICS[metric]}@{k}", "metric_decimal_place": 8,
            "normalize_all": False, "rm_dup_inter": None, "val_interval": None,
            "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
            **self._overrides(),
        }
        return Config(model=self.recbole_model, dataset=name, config_dict=cfg)

    def _write_files(self, ctx: Any, folder: Path, name: str) -> list[int]:
        return write_benchmark(ctx.split, folder, name)

    # --- fit --------------------------------------------------------------------------------------------------
    def fit(self, ctx: Any) -> dict:
        """Train with RecBole's Trainer on `ctx.split` (early stopping on valid), then restore the best epoch."""
        start = time.perf_counter()
        compat.apply()
        from recbole.data import create_dataset, data_preparation  # noqa: PLC0415
        from recbole.utils import get_model, get_trainer, init_seed  # noqa: PLC0415

        data_path = Path(ctx.work_dir).resolve() / "recbole"
        name = f"genrec-{ctx.split.hash}{'-seq' if self.sequential else ''}"
        counts = self._write_files(ctx, data_path / name, name)
        with compat.scope():
            config = self._recbole_config(ctx, data_path, name)
            init_seed(config["seed"], config["reproducibility"])
            dataset = create_dataset(config)
            loaders = data_preparation(config, dataset)
            self._check_counts(loaders, counts, name)
            init_seed(config["seed"], config["reproducibility"])
            model = get_model(config["model"])(config, loaders[0]._dataset).to(config["device"])
            self._speed_up(model, loaders[0])
            trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
            self._model, self._dataset = model, dataset
            self._build_maps(ctx.split, dataset)
            trainer._valid_epoch = self._shared_validation(ctx, model)
            curve = _CurveRecorder(trainer, model, ctx, type(self).__name__)
            trainer.fit(loaders[0], loaders[1], verbose=False, saved=True, show_progress=False,
                        callback_fn=curve.on_valid)
            curve.bar.close()
            train_seconds = time.perf_counter() - curve.start
        best_epoch = self._restore_best(model, trainer, data_path)
        self._model, self._trainer, self._loaders, self._dataset = model, trainer, loaders, dataset
        self._build_maps(ctx.split, dataset)
        epochs = len(trainer.train_loss_dict)  # RecBole stops early (stopping_step) or after config["epochs"]
        info = {"epochs": epochs, "stop": "patience" if epochs < config["epochs"] else "epochs", "best_epoch": best_epoch,
                "best_valid": float(trainer.best_valid_score), "valid_metric": config["valid_metric"],
                "curve": curve.points, "precision": "amp" if config["enable_amp"] else "fp32",
                "train_seconds": train_seconds, "recbole_dir": str(data_path / name)}
        info.update(self._extra_info())
        info["fit_seconds"] = time.perf_counter() - start
        ctx.log(f"{type(self).__name__}: best valid {config['valid_metric']} {info['best_valid']:.4f} at epoch "
                f"{best_epoch} of {info['epochs']} ({info['fit_seconds']:.1f} s)")
        return info

    def _shared_validation(self, ctx: Any, model: Any) -> Any:
        """RecBole's `Trainer._valid_epoch`, replaced by the benchmark's own validation (`ctx.validate`: full
        ranking per user, training items masked) so that early stopping and the learning curve use the same
        evaluator as every other model. For MF and LightGCN it is RecBole's protocol too; for SASRec, RecBole's
        sequential validation scores one row per validation interaction without masking the history, a
        different quantity (it fell while ours rose in a probe run)."""

        def valid_epoch(valid_data: Any, show_progress: bool = False) -> tuple[float, dict]:
            model.eval()
            value = float(ctx.validate(self)[ctx.eval.valid_metric])
            return value, {ctx.eval.valid_metric: value}

        return valid_epoch

    def _check_counts(self, loaders: tuple, counts: list[int], name: str) -> None:
        got = [len(loader._dataset) for loader in loaders]
        if got != counts:
            raise DataError(f"RecBole loaded {got} train/valid/test rows of '{name}', the split has {counts}: "
                            "it must not filter or re-split benchmark files")

    def _restore_best(self, model: Any, trainer: Any, data_path: Path) -> int:
        """Load the best-validation checkpoint RecBole saved (a file we wrote); returns its 1-based epoch."""
        if not Path(trainer.saved_model_file).is_file():
            return 0
        ckpt = compat.load_checkpoint(trainer.saved_model_file, data_path)
        model.load_state_dict(ckpt["state_dict"])
        model.load_other_parameter(ckpt.get("other_parameter"))
        model.eval()
        return int(ckpt["epoch"]) + 1

    def _build_maps(self, split: Split, dataset: Any) -> None:
        """Our id -> RecBole's internal id (0 = `[PAD]`, for ids absent from every file)."""
        users, items = dataset.field2token_id[dataset.uid_field], dataset.field2token_id[dataset.iid_field]
        self._user_map = np.array([users.get(str(u), 0) for u in range(split.n_users)], dtype=np.int64)
        self._item_map = torch.tensor([items.get(str(i), 0) for i in range(split.n_items)], dtype=torch.long)
        self._missing_items = self._item_map == 0

    def _extra_info(self) -> dict:
        return {}

    def _speed_up(self, model: Any, train_data: Any) -> None:
        """Replace parts of RecBole's `model` and training data loader with faster code that computes the same:
        here the batches and the negative sampler (`baselines.recbole_batches`; MF, LightGCN), in subclasses more."""
        from baselines.recbole_batches import speed_up_loader, speed_up_sampler  # noqa: PLC0415

        speed_up_loader(train_data)
        speed_up_sampler(getattr(train_data, "_sampler", None))

    # --- inference --------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(ctx) before scoring")

    def _interaction(self, users: np.ndarray) -> Any:
        from recbole.data.interaction import Interaction  # noqa: PLC0415

        return Interaction({self._dataset.uid_field: torch.as_tensor(self._user_map[users])})

    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """Scores `[len(users), n_items]` over OUR item ids (items absent from every file get -inf)."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        self._model.eval()
        inter = self._interaction(users).to(self._model.device)
        scores = self._model.full_sort_predict(inter).view(len(users), -1).cpu()
        out = scores[:, self._item_map]
        out[:, self._missing_items] = -torch.inf
        return out

    def recbole_evaluate(self, part: str = "test") -> dict[str, float]:
        """RecBole's own evaluation of the restored model on its `part` loader (`valid` or `test`)."""
        self._check_fitted()
        if part not in ("valid", "test"):
            raise ConfigError(f"recbole_evaluate: part must be 'valid' or 'test', got {part!r}")
        loader = self._loaders[PARTS[part]]
        with compat.scope():
            result = self._trainer.evaluate(loader, load_best_model=False, show_progress=False)
        return {k: float(v) for k, v in result.items()}

    # --- keep and serve (baselines.served) -------------------------------------------------------------------
    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(user table, item table) in RecBole's row order, the ones `full_sort_predict` multiplies."""
        raise NotImplementedError

    @torch.no_grad()
    def save(self, directory: Path) -> dict:
        """The two tables in our id order (`baselines.served.save_factors`); no RecBole object is kept."""
        self._check_fitted()
        self._model.eval()
        users, items = (t.detach().cpu() for t in self._tables())
        return served.save_factors(directory, users[torch.as_tensor(self._user_map)], items[self._item_map],
                                   self._missing_items)

    @classmethod
    def load(cls, directory: Path, arch: dict, bundle: Any = None) -> Any:
        return served.FactorScorer.load(directory, arch)

    def _item_rows(self, table: torch.Tensor) -> np.ndarray:
        emb = table.detach().cpu()[self._item_map].numpy().copy()
        emb[self._missing_items.numpy()] = 0.0
        return emb


class MF(_RecBoleModel):
    """Matrix factorisation with BPR loss (RecBole `BPR`)."""

    recbole_model = "BPR"

    Config = MFConfig

    def item_embeddings(self) -> np.ndarray:
        """The trained item table `[n_items, d]`, row = our item id (zeros for items absent from every file)."""
        self._check_fitted()
        return self._item_rows(self._model.item_embedding.weight)

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._model.user_embedding.weight, self._model.item_embedding.weight


class LightGCN(_RecBoleModel):
    """LightGCN (RecBole `LightGCN`): layer-averaged propagation over the train graph, BPR loss."""

    recbole_model = "LightGCN"

    Config = LightGCNConfig

    def _speed_up(self, model: Any, train_data: Any) -> None:
        """CSR propagation with a symmetric backward (`baselines.recbole_speed`; the same sums, 3-4x faster), and
        the shared negative sampler's."""
        from baselines.recbole_speed import speed_up_lightgcn  # noqa: PLC0415

        super()._speed_up(model, train_data)
        speed_up_lightgcn(model)

    @torch.no_grad()
    def item_embeddings(self) -> np.ndarray:
        """Layer-averaged item embeddings from `forward()` (what `full_sort_predict` scores with), our row order."""
        self._check_fitted()
        self._model.eval()
        _, items = self._model.forward()
        return self._item_rows(items)

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._model.forward()


class SASRec(_RecBoleModel):
    """SASRec (RecBole `SASRec`): self-attention over the user's time-ordered item history."""

    recbole_model = "SASRec"
    sequential = True

    Config = SASRecConfig

    def __init__(self, config: Any):
        super().__init__(config)
        # which history score() uses: "valid" (train items; during fit) or "test" (set when fit ends; it may
        # contain validation items, so do not score the validation part with it)
        self.eval_part = "valid"
        self._history: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._test_history = "train"

    def _overrides(self) -> dict[str, Any]:
        cfg = dataclasses.asdict(self.config)
        cfg.pop("history_with_valid")
        cfg["MAX_ITEM_LIST_LENGTH"] = cfg.pop("max_item_list_length")
        neg = dict(_UNIFORM_NEG) if self.config.loss_type == "BPR" else None
        return {**cfg, "train_neg_sample_args": neg, "alias_of_item_id": ["item_id_list"]}

    def _write_files(self, ctx: Any, folder: Path, name: str) -> list[int]:
        split, max_len = ctx.split, self.config.max_item_list_length
        self.eval_part = "valid"
        with_valid = self.config.history_with_valid and ctx.eval.exclude_valid
        self._test_history = "train+valid" if with_valid else "train"
        train_seqs = user_sequences(split, ("train",))
        test_seqs = user_sequences(split, ("train", "valid")) if with_valid else train_seqs
        rows = {"train": [(u, s[max(0, j - max_len):j], s[j]) for u, s in train_seqs.items()
                          for j in range(1, len(s))]}
        for part, seqs in (("valid", train_seqs), ("test", test_seqs)):
            df = split.frame(part)
            rows[part] = [(u, seqs.get(u, [])[-max_len:], i) for u, i in zip(df["user"], df["item"], strict=True)]
        self._skipped = {p: sum(len(h) == 0 for _, h, _ in r) for p, r in rows.items()}
        folder.mkdir(parents=True, exist_ok=True)
        for part, part_rows in rows.items():
            lines = ["user_id:token\titem_id_list:token_seq\titem_id:token"]
            lines += [f"{u}\t{' '.join(map(str, h))}\t{i}" for u, h, i in part_rows if len(h)]
            (folder / f"{name}.{part}.inter").write_text("\n".join(lines) + "\n")
        self._history = {"valid": _pad(train_seqs, split.n_users, max_len),
                         "test": _pad(test_seqs, split.n_users, max_len)}
        return [len(r) - self._skipped[p] for p, r in rows.items()]

    def _speed_up(self, model: Any, train_data: Any) -> None:
        """One-kernel exact GELU, fused attention scores and a last layer computed at the one position the loss
        reads (`baselines.recbole_speed`; same function, same RNG). CE over all items samples no negatives."""
        from baselines.recbole_speed import speed_up_sasrec  # noqa: PLC0415

        speed_up_sasrec(model)

    def prepare_eval(self, part: str) -> None:
        """Called by the evaluator: test rankings use the test-time history, valid rankings the training one."""
        self.eval_part = "test" if part == "test" else "valid"

    def save(self, directory: Path) -> dict:
        """RecBole's weights, the item map and every user's test-time history (`baselines.served.save_sasrec`)."""
        self._check_fitted()
        return served.save_sasrec(directory, self)

    @classmethod
    def load(cls, directory: Path, arch: dict, bundle: Any = None) -> Any:
        return served.SASRecScorer.load(directory, arch)

    def _extra_info(self) -> dict:
        self.eval_part = "test"
        return {"history": self._test_history, "rows_without_history": self._skipped,
                "valid_protocol": "the shared evaluator (ctx.validate): full ranking per user, history = train "
                                  "items, training items masked"}

    def _interaction(self, users: np.ndarray) -> Any:
        from recbole.data.interaction import Interaction  # noqa: PLC0415

        seqs, lens = self._history[self.eval_part]
        items = self._item_map.numpy()
        seq = np.where(seqs[users] >= 0, items[np.maximum(seqs[users], 0)], 0)
        # a user without history is scored from an all-padding sequence of length 1
        return Interaction({self._model.ITEM_SEQ: torch.as_tensor(seq),
                            self._model.ITEM_SEQ_LEN: torch.as_tensor(np.maximum(lens[users], 1))})


class _CurveRecorder:
    """Captures the learning curve of the RecBole training that runs anyway (nothing is trained twice).

    The trainer's `_train_epoch` and the model's `calculate_loss` are wrapped on these two instances only: every
    `calculate_loss` call during training is one optimizer step over `len(interaction)` samples, every epoch ends
    with one curve point (`genrec.experiments.curves`) whose `loss` is RecBole's epoch loss sum over that
    epoch's steps, and RecBole's validation callback adds `valid_<metric>` (and forwards it to `ctx.report`).
    """

    def __init__(self, trainer: Any, model: Any, ctx: Any, name: str):
        self.points: list[dict] = []
        self.ctx, self.key, self.name = ctx, f"valid_{ctx.eval.valid_metric}", name
        self.step = self.samples = self._epoch_steps = 0
        self._loss, self._train_epoch = model.calculate_loss, trainer._train_epoch
        model.calculate_loss, trainer._train_epoch = self._counted_loss, self._recorded_epoch
        self.start = time.perf_counter()
        self.bar = progress(total=trainer.epochs, desc=f"{name} epochs", unit="epoch")

    def _counted_loss(self, interaction: Any) -> Any:
        self._epoch_steps += 1
        self.samples += len(interaction)
        return self._loss(interaction)

    def _recorded_epoch(self, train_data: Any, epoch_idx: int, *args: Any, **kwargs: Any) -> Any:
        self._epoch_steps = 0
        total = self._train_epoch(train_data, epoch_idx, *args, **kwargs)
        self.step += self._epoch_steps
        loss = sum(total) if isinstance(total, tuple) else total
        self.points.append({"epoch": epoch_idx + 1, "step": self.step, "samples": self.samples,
                            "seconds": time.perf_counter() - self.start,
                            "loss": float(loss) / max(1, self._epoch_steps)})
        self.bar.update(1)
        return total

    def on_valid(self, epoch_idx: int, value: float) -> None:
        point = self.points[-1]
        if point["epoch"] != epoch_idx + 1:
            raise RuntimeError(f"RecBole validated epoch {epoch_idx + 1} after training epoch {point['epoch']}")
        point[self.key], point["seconds"] = float(value), time.perf_counter() - self.start
        if epoch_idx == 0 or (epoch_idx + 1) % 10 == 0:  # progress on long runs
            self.ctx.log(f"{self.name} epoch {epoch_idx + 1}: valid {self.ctx.eval.valid_metric} {value:.4f}")
        self.ctx.report(epoch_idx + 1, float(value))


def user_sequences(split: Split, parts: tuple[str, ...]) -> dict[int, list[int]]:
    """Each user's items of `parts`, ordered by timestamp, ties (and missing times) by dataset row order."""
    inter = split.dataset.inter
    rows = np.flatnonzero(np.isin(split.parts, [PARTS[p] for p in parts]))
    users, items = inter["user"].to_numpy()[rows], inter["item"].to_numpy()[rows]
    ts = inter["timestamp"].to_numpy()[rows]
    order = np.lexsort((rows, np.nan_to_num(ts, nan=np.inf), users))
    out: dict[int, list[int]] = {}
    for u, i in zip(users[order].tolist(), items[order].tolist(), strict=True):
        out.setdefault(u, []).append(i)
    return out


def _pad(seqs: dict[int, list[int]], n_users: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Last `max_len` items of each user, left-aligned in a `[n_users, max_len]` array padded with -1."""
    out = np.full((n_users, max_len), -1, dtype=np.int64)
    lens = np.zeros(n_users, dtype=np.int64)
    for u, s in seqs.items():
        tail = s[-max_len:]
        out[u, : len(tail)] = tail
        lens[u] = len(tail)
    return out, lens
