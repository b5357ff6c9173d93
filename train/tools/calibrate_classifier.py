"""Temperature scaling (Guo et al. 2017) of a trained expression classifier on validation faces, so that the Space's
percentages mean what they say; optionally with test-time flip averaging switched on first.

    python -m train.tools.calibrate_classifier runs/cls/final --faces prepared/classifier_faces --flip-average \
        --out runs/cls/calibrated

``--balance`` first picks a logit adjustment (Menon et al. 2021): ``class_bias = -tau * log(prior)``, the prior being
the training split's class shares, with the ``tau`` in 0, 0.1, ..., 1 that gives the highest mean per-class recall on
validation while costing at most ``--max-accuracy-drop`` of its accuracy; rare classes (disgust, fear) are then read
more often. The temperature ``T`` minimises the negative log-likelihood of ``softmax(logits / T)`` on the validation
split's labelled faces (GENKI-4K's partial labels left out: they are all "happy" or "not happy"). It is stored in the
config (``temperature``); the temperature alone leaves the argmax, and so every accuracy, as it was.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def validation_logits(model, faces: Path, split: str = "validation") -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(faces / f"{split}.npz") as data:
        keep = (data["labels"] >= 0) & (data["sources"] != "genki4k")
        images = torch.from_numpy(data["images"][keep]).float()[:, None] / 127.5 - 1.0
        labels = torch.from_numpy(data["labels"][keep].astype(np.int64))
    model.eval()
    logits = torch.cat([model(images[i:i + 512]).logits.float() for i in range(0, len(images), 512)])
    return logits, labels


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 that minimises the NLL of ``logits / T`` (a 1-D convex problem in log T; LBFGS)."""
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def train_prior(faces: Path) -> torch.Tensor:
    with np.load(faces / "train.npz") as data:
        labels = data["labels"][(data["labels"] >= 0) & (data["sources"] != "genki4k")].astype(np.int64)
    counts = np.bincount(labels, minlength=7).astype(np.float64)
    return torch.from_numpy(counts / counts.sum()).float()


def choose_balance(logits: torch.Tensor, labels: torch.Tensor, prior: torch.Tensor,
                   max_drop: float) -> tuple[float, list[dict]]:
    """The ``tau`` of the best mean recall within ``max_drop`` of the unadjusted accuracy, and every tau's row."""
    from expr_models.evaluation.metrics import per_class_recall

    rows = []
    for tau in [round(0.1 * i, 1) for i in range(11)]:
        predicted = (logits - tau * prior.log()).argmax(-1)
        recall = per_class_recall(predicted, labels, logits.shape[1])
        rows.append({"tau": tau, "accuracy": float((predicted == labels).double().mean()),
                     "mean_recall": float(np.nanmean(recall)), "min_recall": float(np.nanmin(recall))})
    floor = rows[0]["accuracy"] - max_drop
    best = max((row for row in rows if row["accuracy"] >= floor), key=lambda row: row["mean_recall"])
    return best["tau"], rows


def raise_recall_floor(logits: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor, floor: float,
                       step: float = 0.05, max_steps: int = 400) -> tuple[torch.Tensor, list[float]]:
    """``bias`` after raising the lowest-recall class's entry by ``step`` until every class's recall on ``labels`` is
    at least ``floor`` (or ``max_steps`` steps: a floor no bias reaches), and the recalls it ends with."""
    from expr_models.evaluation.metrics import per_class_recall

    bias = bias.clone()
    for _ in range(max_steps + 1):
        recall = np.array(per_class_recall((logits + bias).argmax(-1), labels, logits.shape[1]))
        if np.nanmin(recall) >= floor:
            break
        bias[int(np.nanargmin(recall))] += step
    return bias - bias.mean(), [round(float(r), 4) for r in recall]


def main(argv: list[str] | None = None) -> int:
    import expr_models  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModel

    from expr_models.evaluation.readings import expected_calibration_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a saved ExpressionClassifier (e.g. runs/cls/final)")
    parser.add_argument("--faces", type=Path, default=Path("prepared/classifier_faces"),
                        help="face arrays of python -m train.classifier_data (its validation split is used)")
    parser.add_argument("--flip-average", action="store_true", help="switch test-time flip averaging on first")
    parser.add_argument("--balance", action="store_true", help="fit a logit adjustment for rare classes first")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01,
                        help="--balance: the validation accuracy it may cost (a fraction)")
    parser.add_argument("--min-recall", type=float, default=None, metavar="R",
                        help="after --balance (if given): raise the bias of the least-read class until every class's "
                             "validation recall is at least R")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    model = AutoModel.from_pretrained(args.model).eval()
    model.config.temperature = 1.0
    model.config.class_bias = None
    model.config.flip_average = bool(args.flip_average or model.config.flip_average)
    logits, labels = validation_logits(model, args.faces)
    balance = None
    if args.balance:
        prior = train_prior(args.faces)
        tau, rows = choose_balance(logits, labels, prior, args.max_accuracy_drop)
        for row in rows:
            print(json.dumps(row))
        bias = (-tau * prior.log()) if tau else None
        if bias is not None:
            bias = bias - bias.mean()  # only differences between classes matter
            logits = logits + bias
            model.config.class_bias = [round(float(b), 4) for b in bias]
        balance = {"tau": tau, "class_bias": model.config.class_bias}
    floor = None
    if args.min_recall is not None:
        start = torch.zeros(logits.shape[1])  # the logits already hold --balance's adjustment
        extra, recall = raise_recall_floor(logits, labels, start, args.min_recall)
        logits = logits + extra
        total = extra + torch.tensor(model.config.class_bias or [0.0] * logits.shape[1])
        model.config.class_bias = [round(float(b), 4) for b in total - total.mean()]
        floor = {"min_recall": args.min_recall, "recall": recall}
        print(json.dumps(floor))
    temperature = fit_temperature(logits, labels)
    before = expected_calibration_error(logits.softmax(-1), labels)
    after = expected_calibration_error((logits / temperature).softmax(-1), labels)
    accuracy = float((logits.argmax(-1) == labels).double().mean())
    model.config.temperature = temperature
    record = {"temperature": round(temperature, 4), "validation_faces": len(labels),
              "validation_accuracy": round(accuracy, 4), "validation_ece_before": round(before, 4),
              "validation_ece_after": round(after, 4), "flip_average": model.config.flip_average}
    if balance is not None:
        record["logit_adjustment_tau"] = balance["tau"]
    if floor is not None:
        record["recall_floor"] = args.min_recall
        record["validation_min_recall"] = min(floor["recall"])
    info = dict(model.card_info)
    info.setdefault("metrics", {})
    info["metrics"] = {**info["metrics"], **{f"calibration: {k}": v for k, v in record.items()}}
    adjustment = (f" Logit adjustment -{balance['tau']} x log(training prior), chosen on the same faces (best mean "
                  f"recall within {100 * args.max_accuracy_drop:g} points of accuracy)."
                  if balance and balance["tau"] else "")
    if floor is not None:
        adjustment += (f" Class biases raised until every class's validation recall reached {args.min_recall:g} "
                       f"(recall {', '.join(f'{r:.3f}' for r in floor['recall'])}).")
    info["notes"] = (f"{info.get('notes', '')}\n\nTemperature scaling on {len(labels)} validation faces (GENKI-4K "
                     f"left out): T = {temperature:.3f}, expected calibration error {before:.4f} -> {after:.4f} "
                     f"(15 bins); test-time flip averaging {'on' if model.config.flip_average else 'off'}."
                     + adjustment).strip()
    model.card_info = info
    model.save_pretrained(args.out)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
