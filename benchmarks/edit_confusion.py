"""Why an edit is not read as its target: what each edit is read as, per source expression, and whether its mesh
already carries the target.

1. **Pixels.** Held-out crops of each expression are edited to each target exactly as `evaluate` edits them
   (`expr_models.evaluation.editors`: the committed checkpoints, the face's source read by the classifier), and the
   classifier reads the edits. Per target, the share read as the target from each source expression, and the
   readings that win instead. With ``--second-reader``, the same edits read by the independent second reader too:
   how many each reader, and both at once, read as the target (a drawing that fools one reader rarely fools both).
2. **Meshes** (`--meshes`). A mesh-only reader (an MLP on canonical meshes, trained here for a minute on the mesh
   dataset's train split, class-balanced) reads the same split's real meshes and the generator's moved meshes: where
   the moved mesh is read as its target far more often than the edited pixels are, the geometry is there and what
   holds the reading back is the appearance (creases, a mouth drawn wrong); where it is not, the motion falls short.

    python benchmarks/edit_confusion.py --method sagan --split validation --per-class 12 --meshes
    python benchmarks/edit_confusion.py --method sagan --split validation --per-class 12 --second-reader

Reads `prepared/expressions` (and `prepared/mesh_dataset` with `--meshes`); skips cleanly without them.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_utils import machine, save_results  # noqa: E402
from expr_models.evaluation import metrics  # noqa: E402
from expr_models.evaluation.editors import load_models, load_second_reader, run_batched  # noqa: E402
from expr_models.evaluation.heldout import load_held_out, to_tensor  # noqa: E402
from expr_models.evaluation.readings import success_by_readers  # noqa: E402
from expr_models.labels import EXPRESSIONS  # noqa: E402
from expr_models.models.mesh_motion import MeshMotionModel  # noqa: E402
from train.mesh_data import load_meshes  # noqa: E402

MESHES_PER_SOURCE = 60  # real meshes of each source expression the generator moves to each target


def pixel_confusion(method, classifier, held_out, second_reader=None, targets=None) -> tuple[dict, dict]:
    """Per target (those of ``targets`` the method makes; None: all): per source expression, how many edits and what
    the classifier read them as; and, given the ``second_reader``, per target the edits it and both readers read as
    the target."""
    names = list(classifier.config.class_names)
    table, second = {}, {}
    for target in method.targets:
        if targets and target not in targets:
            continue
        sources = [face for face in held_out.faces if face.expression in method.sources_for(target)]
        if not sources:
            continue
        edited = run_batched(lambda batch: method.edit(batch, target), to_tensor(sources, method.resolution,
                                                                                   method.channels))
        readings = [names[index] for index in metrics.predict(classifier, edited).tolist()]
        if second_reader is not None:
            shares = success_by_readers({"classifier": classifier, "second_reader": second_reader}, edited,
                                        [target] * len(edited))
            second[target] = {"edits": len(edited), **{reader: round(shares[reader]["success"] * len(edited))
                                                        for reader in ("second_reader", "both")}}
        per_source: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for face, reading in zip(sources, readings):
            per_source[face.expression][reading] += 1
        table[target] = {source: dict(counts) for source, counts in sorted(per_source.items())}
    return table, second


def mesh_reader(train_meshes: torch.Tensor, train_labels: torch.Tensor, mean: torch.Tensor, epochs: int = 30,
                seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A class-balanced MLP on canonical meshes (their deviation from the mean face), trained here; returns what
    reads a batch of meshes: their class indices."""
    torch.manual_seed(seed)
    reader = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(train_meshes[0].numel(), 256), torch.nn.SiLU(),
                                 torch.nn.Dropout(0.2), torch.nn.Linear(256, len(EXPRESSIONS)))
    weight = 1.0 / torch.bincount(train_labels, minlength=len(EXPRESSIONS)).clamp(min=1).float()  # absent: unused
    weight = weight / weight.sum() * len(EXPRESSIONS)
    optimiser = torch.optim.AdamW(reader.parameters(), 1e-3, weight_decay=1e-3)
    inputs = (train_meshes.float() - mean) * 10  # eye distances -> about unit scale
    for _ in range(epochs):
        reader.train()
        order = torch.randperm(len(inputs))
        for start in range(0, len(inputs), 256):
            batch = order[start:start + 256]
            loss = torch.nn.functional.cross_entropy(reader(inputs[batch]), train_labels[batch], weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    reader.eval()
    return lambda meshes: reader((meshes.float() - mean) * 10).argmax(1)


def mesh_confusion(model, mean_mesh: np.ndarray, data: Path, split: str, per_class: int) -> dict:
    """The mesh reader's recall on real meshes of ``split``, and its share of each target read from the generator's
    moved meshes of up to ``per_class`` real meshes of each other expression."""
    train, held = load_meshes(data, mean_mesh, "train"), load_meshes(data, mean_mesh, split)
    read = mesh_reader(train.meshes, train.labels, torch.from_numpy(mean_mesh).float())
    with torch.no_grad():
        real = read(held.meshes)
        result = {"real_recall": {name: float((real[held.labels == i] == i).float().mean())
                                  for i, name in enumerate(EXPRESSIONS)}, "moved": {}}
        for target in model.config.class_names:
            per_source = {}
            for source in model.config.class_names:
                if source == target:
                    continue
                meshes = held.of(source)[:per_class].float()
                moved = model.move_mesh(meshes, target, source)
                per_source[source] = float((read(moved) == EXPRESSIONS.index(target)).float().mean())
            result["moved"][target] = per_source
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="sagan", choices=("sagan", "cyclegan", "mesh"))
    parser.add_argument("--data", type=Path, default=ROOT / "prepared" / "expressions")
    parser.add_argument("--mesh-data", type=Path, default=ROOT / "prepared" / "mesh_dataset")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--split", default="validation", help="never tune on 'test'")
    parser.add_argument("--per-class", type=int, default=12, help="crops per expression (as evaluate's --limit)")
    parser.add_argument("--meshes", action="store_true", help="also read the moved meshes (the mesh SA-GAN only)")
    parser.add_argument("--second-reader", action="store_true",
                        help="also read the edits by the second reader (checkpoints/second_reader) and count both")
    parser.add_argument("--targets", nargs="+", choices=EXPRESSIONS, help="only these targets (default: all)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: no prepared expression crops at {args.data}")
        return 0
    torch.set_num_threads(2)
    editors, classifier, _ = load_models(args.checkpoints, (args.method,), torch.device("cpu"), 0, 0)
    if not editors or classifier is None:
        print(f"skipped: {args.checkpoints} has no {args.method} checkpoint or no classifier")
        return 0
    method = editors[0]
    held_out = load_held_out(args.data, args.split, args.per_class)
    second_reader = load_second_reader(args.checkpoints, torch.device("cpu"), {}) if args.second_reader else None
    if args.second_reader and second_reader is None:
        print(f"second reader skipped: {args.checkpoints} has no second_reader checkpoint")
    pixels, second = pixel_confusion(method, classifier, held_out, second_reader, args.targets)
    print(f"\n{args.method} edits of the `{args.data.name}` {args.split} crops ({args.per_class} per expression), "
          "read by the classifier: read as the target / edited, per source; the readings that win instead\n")
    print("| target | all | " + " | ".join(f"from {name}" for name in EXPRESSIONS) + " |")
    print("|---|---|" + "---|" * len(EXPRESSIONS))
    for target, per_source in pixels.items():
        cells, hits, total = [], 0, 0
        for source in EXPRESSIONS:
            counts = per_source.get(source)
            if counts is None:
                cells.append("–")
                continue
            n, hit = sum(counts.values()), counts.get(target, 0)
            hits, total = hits + hit, total + n
            others = [f"{name} {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1])
                      if name != target][:1]
            cells.append(f"{hit}/{n}" + (f" ({others[0]})" if others and hit < n else ""))
        print(f"| {target} | {hits / total:.0%} | " + " | ".join(cells) + " |")
    results = {"method": args.method, "split": args.split, "per_class": args.per_class, "pixels": pixels}
    if second:
        print("\nThe same edits read as the target by the classifier / the second reader / both\n")
        print("| target | edits | classifier | second reader | both |")
        print("|---|---|---|---|---|")
        for target, counts in second.items():
            hits = sum(per.get(target, 0) for per in pixels[target].values())
            print(f"| {target} | {counts['edits']} | {hits} | {counts['second_reader']} | {counts['both']} |")
        results["second_reader"] = second

    if args.meshes:
        if not args.mesh_data.is_dir():
            print(f"\nmeshes skipped: no mesh dataset at {args.mesh_data}")
        elif getattr(method.model.config, "generator_type", None) != "mesh" or args.method != "sagan":
            print("\nmeshes skipped: needs the mesh SA-GAN (it moves a mesh from any source to any target)")
        else:
            mean_mesh = MeshMotionModel.from_pretrained(args.checkpoints / "mesh_motion").mean_mesh.detach().numpy()
            meshes = mesh_confusion(method.model, mean_mesh, args.mesh_data, args.split, MESHES_PER_SOURCE)
            results["meshes"] = meshes
            print(f"\nThe mesh reader on the {args.split} split's meshes: recall on real ones, and the share of the "
                  f"generator's moved meshes ({MESHES_PER_SOURCE} per source) read as the target\n")
            print("| expression | real meshes | moved meshes, all sources | " +
                  " | ".join(f"from {name}" for name in EXPRESSIONS) + " |")
            print("|---|---|---|" + "---|" * len(EXPRESSIONS))
            for target, per_source in meshes["moved"].items():
                print(f"| {target} | {meshes['real_recall'][target]:.0%} | {np.mean(list(per_source.values())):.0%} | "
                      + " | ".join(f"{per_source[s]:.0%}" if s in per_source else "–" for s in EXPRESSIONS) + " |")
    save_results("edit_confusion", {"machine": machine(), **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
