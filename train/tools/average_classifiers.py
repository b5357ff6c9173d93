"""Average the weights of several saved expression classifiers of one architecture (a "model soup", Wortsman et al.
2022), e.g. the ends of successive warm restarts, into one network that reads faces at the cost of one.

    python -m train.tools.average_classifiers runs/a/final runs/b/final runs/c/final \
        --faces prepared/classifier_faces --out runs/soup

``--greedy`` (the default) sorts the candidates by validation accuracy and adds each one to the soup only if the
soup's validation accuracy does not drop; ``--uniform`` averages them all. After every averaging the BatchNorm running
statistics are estimated again on training faces (``torch.optim.swa_utils.update_bn``, as in SWA), since an average of
weights does not match an average of statistics. Candidates are read raw: temperature, class bias and flip averaging
are reset (calibrate the soup afterwards with ``train.tools.calibrate_classifier``). The test split is never read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from train.tools.calibrate_classifier import validation_logits


def raw(model):
    """The model with its calibration switched off, in eval mode."""
    model.config.temperature = 1.0
    model.config.class_bias = None
    model.config.flip_average = False
    return model.eval()


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of floating-point tensors; integer ones (BatchNorm's batch counters) are taken from the first."""
    keys = states[0].keys()
    for state in states[1:]:
        if state.keys() != keys or any(state[k].shape != states[0][k].shape for k in keys):
            raise ValueError("the classifiers to average must share one architecture (same keys and shapes)")
    return {key: (torch.stack([s[key].float() for s in states]).mean(0) if states[0][key].is_floating_point()
                  else states[0][key].clone()) for key in keys}


def training_batches(faces: Path, count: int, batch_size: int = 256, seed: int = 0):
    """``count`` random training faces (GENKI-4K included: BatchNorm sees what training saw), unaugmented."""
    with np.load(faces / "train.npz") as data:
        images = data["images"]
        chosen = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False)
        chosen = torch.from_numpy(images[np.sort(chosen)]).float()[:, None] / 127.5 - 1.0
    return [chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size)]


def refresh_batchnorm(model, batches) -> None:
    model.train()
    torch.optim.swa_utils.update_bn(batches, model)  # a cumulative average over every batch (momentum None)
    raw(model)


def accuracy(model, faces: Path) -> float:
    logits, labels = validation_logits(model, faces)
    return float((logits.argmax(-1) == labels).double().mean())


def soup(model, states: list[dict], batches, faces: Path) -> float:
    model.load_state_dict(average_state(states))
    refresh_batchnorm(model, batches)
    return accuracy(model, faces)


def main(argv: list[str] | None = None) -> int:
    import expr_models  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModel

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help="saved ExpressionClassifiers of one architecture")
    parser.add_argument("--faces", type=Path, default=Path("prepared/classifier_faces"),
                        help="face arrays of python -m train.classifier_data (train: BatchNorm; validation: choice)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--greedy", dest="greedy", action="store_true", default=True,
                      help="add a candidate only if validation accuracy does not drop (default)")
    mode.add_argument("--uniform", dest="greedy", action="store_false", help="average every candidate")
    parser.add_argument("--bn-faces", type=int, default=8192, help="training faces for the BatchNorm statistics")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("give at least two classifiers to average")
    torch.set_num_threads(1)

    models = [raw(AutoModel.from_pretrained(path)) for path in args.models]
    if any(m.config.to_dict().get("widths") != models[0].config.to_dict().get("widths") for m in models):
        parser.error("the classifiers differ in architecture (widths)")
    scores = [accuracy(m, args.faces) for m in models]
    for path, score in zip(args.models, scores):
        print(json.dumps({"candidate": str(path), "validation_accuracy": round(score, 4)}))
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    batches = training_batches(args.faces, args.bn_faces)
    base = models[order[0]]
    states = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]

    chosen = [order[0]] if args.greedy else list(order)
    best = scores[order[0]] if args.greedy else soup(base, [states[i] for i in chosen], batches, args.faces)
    if args.greedy:
        for i in order[1:]:
            score = soup(base, [states[j] for j in chosen + [i]], batches, args.faces)
            print(json.dumps({"try_adding": str(args.models[i]), "validation_accuracy": round(score, 4),
                              "kept": score >= best}))
            if score >= best:
                chosen, best = chosen + [i], score
    if len(chosen) > 1:
        soup(base, [states[j] for j in chosen], batches, args.faces)
    else:
        base.load_state_dict(states[chosen[0]])
    members = [str(args.models[i]) for i in chosen]
    info = dict(base.card_info)
    info["metrics"] = {**info.get("metrics", {}), "soup: validation accuracy (raw)": round(best, 4)}
    info["notes"] = (f"{info.get('notes', '')}\n\nWeights averaged over {len(members)} classifiers "
                     f"({'greedy' if args.greedy else 'uniform'} soup, chosen on validation accuracy; BatchNorm "
                     f"statistics re-estimated on {args.bn_faces} training faces): {', '.join(members)}.").strip()
    base.card_info = info
    base.save_pretrained(args.out)
    print(json.dumps({"members": members, "validation_accuracy": round(best, 4), "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
