"""Expression readings by several readers at once: the project's classifier and the independent second reader.

    readers = {"classifier": classifier, "second_reader": second_reader}
    table = success_by_readers(readers, edited_crops, ["happy", "sad", ...])
    # {"classifier": {"success": 0.62, "faces": 80, "per_target": {"happy": (0.9, 40), "sad": (0.35, 40)}}, ...,
    #  "both": {...}}   # read as the target by every reader

A success figure read by one classifier says how often the edits convince that network; one that a second network,
trained by other people on other crops, confirms does not rest on the model a generator may have been guided by.
Crops are ``N x C x H x W`` in [-1, 1] in the editor's framing; each reader gets them at its own resolution and
channels (:func:`expr_models.evaluation.metrics.match_input`), and its logits are put in ``EXPRESSIONS`` order by its
``config.class_names``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from ..labels import EXPRESSIONS
from .metrics import match_input


def reader_class_names(reader: Any) -> list[str]:
    config = getattr(reader, "config", None)
    names = getattr(config, "class_names", None)
    if names is None and getattr(config, "id2label", None):
        names = [config.id2label[i] for i in range(len(config.id2label))]
    return list(names) if names else list(EXPRESSIONS)


@torch.no_grad()
def probabilities(reader: Any, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``N x 7`` probabilities (softmax of the reader's logits) in ``EXPRESSIONS`` order; a class the reader does not
    know gets 0."""
    config = getattr(reader, "config", None)
    parameter = next(reader.parameters(), None) if isinstance(reader, torch.nn.Module) else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    if isinstance(reader, torch.nn.Module):
        reader.eval()
    names = reader_class_names(reader)
    columns = [names.index(name) if name in names else None for name in EXPRESSIONS]
    chunks = []
    for start in range(0, len(images), batch_size):
        pixels = match_input(images[start:start + batch_size].float(), getattr(config, "resolution", None),
                             getattr(config, "in_channels", None)).to(device)
        output = reader(pixels)
        logits = getattr(output, "logits", output).float().cpu()
        probs = logits.softmax(-1)
        chunks.append(torch.stack([probs[:, c] if c is not None else torch.zeros(len(probs)) for c in columns], 1))
    return torch.cat(chunks) if chunks else torch.zeros(0, len(EXPRESSIONS))


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor | Sequence[int], bins: int = 15) -> float:
    """ECE of the top class: the faces binned by confidence (``bins`` equal widths), the mean |accuracy - confidence|
    weighted by each bin's share of faces (Guo et al. 2017). ``nan`` for no faces."""
    labels = torch.as_tensor(labels)
    if len(labels) == 0:
        return float("nan")
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=confidence.dtype)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += float(inside.double().mean()) * abs(float(correct[inside].mean())
                                                          - float(confidence[inside].double().mean()))
    return error


def success_by_readers(readers: Mapping[str, Any], edited: torch.Tensor, targets: Sequence[str],
                       batch_size: int = 256) -> dict[str, dict]:
    """The share of edited faces each reader reads as its target, overall and per target, and under ``"both"`` the
    share read as the target by every reader at once.

    ``edited``: ``N x C x H x W`` edited crops in [-1, 1]; ``targets``: the ``N`` target expressions (names in
    ``EXPRESSIONS``). Each entry: ``{"success": share, "faces": N, "per_target": {target: (share, faces)}}``; shares
    are ``nan`` for no faces.
    """
    if len(edited) != len(targets):
        raise ValueError(f"{len(edited)} edited faces but {len(targets)} targets")
    unknown = sorted({t for t in targets if t not in EXPRESSIONS})
    if unknown:
        raise ValueError(f"Unknown target expression(s) {unknown}; expected names in {EXPRESSIONS}")
    target_index = torch.tensor([EXPRESSIONS.index(t) for t in targets], dtype=torch.long)
    hits = {name: probabilities(reader, edited, batch_size).argmax(-1) == target_index
            for name, reader in readers.items()}
    if len(readers) > 1:
        hits["both"] = torch.stack(list(hits.values())).all(0)
    table = {}
    for name, hit in hits.items():
        per_target = {}
        for target in dict.fromkeys(targets):
            of_target = target_index == EXPRESSIONS.index(target)
            per_target[target] = (float(hit[of_target].double().mean()), int(of_target.sum()))
        share = float(hit.double().mean()) if len(hit) else float("nan")
        table[name] = {"success": share, "faces": len(hit), "per_target": per_target}
    return table
