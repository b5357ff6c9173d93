"""Train the face segmenter (torchvision Mask R-CNN, one class: face) on the prepared WIDER FACE dataset.

    python train/segmenter.py --data prepared/wider
    python train/segmenter.py --data prepared/wider --box-only                  # a box-only Faster R-CNN
    accelerate launch --config_file train/configs/multi_gpu.yaml train/segmenter.py --data prepared/wider

WIDER FACE has boxes, not masks: each face's mask is the filled ellipse inscribed in its box. Zero-size boxes and, by
default, boxes the annotators flagged invalid are dropped (``--keep-invalid`` keeps the latter); photos are scaled
down so that their longest side is at most the model's ``max_size`` before anything else, for speed. Photos without a
face stay in as negatives. SGD with momentum (torchvision's detection recipe) or AdamW, warm-up then cosine decay.
Each epoch ends with box recall and precision at IoU 0.5 on the validation split.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import nn
from transformers.hf_argparser import HfArg

from expr_models.models.segmenter import FaceSegmenter, FaceSegmenterConfig
from train.args import ConfigError, TrainingArguments, make_config
from train.data import AugmentedDataset, load_prepared, require_columns
from train.loop import main
from train.step import OptimizerSpec, TrainingStep

FACE_FIELDS = ("x1", "y1", "w", "h")


def ellipse_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``K x 4`` xyxy boxes -> ``K x H x W`` uint8 masks, each the filled ellipse inscribed in its box."""
    masks = torch.zeros((len(boxes), height, width), dtype=torch.uint8)
    for index, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        left, top = max(int(x0), 0), max(int(y0), 0)
        right, bottom = min(int(x1) + 1, width), min(int(y1) + 1, height)
        if right <= left or bottom <= top:
            continue
        ys = torch.arange(top, bottom, dtype=torch.float32)[:, None] + 0.5
        xs = torch.arange(left, right, dtype=torch.float32)[None, :] + 0.5
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
        inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0
        masks[index, top:bottom, left:right] = inside.to(torch.uint8)
    return masks


def load_imagenet_backbone(model: FaceSegmenter, folder: Path) -> None:
    """Copy ImageNet classifier features (an offline ``StyleFeatureExtractor`` checkpoint) into the detector's
    backbone: a detector trained from ImageNet features needs far less data and compute than one from scratch."""
    from expr_models.models.style_transfer import StyleFeatureExtractor

    features = StyleFeatureExtractor.from_pretrained(folder)
    if features.config.architecture != model.config.backbone:
        raise ConfigError(f"--init-backbone holds {features.config.architecture} features, but the backbone is "
                          f"{model.config.backbone}")
    body = model.detector.backbone.body
    missing, unexpected = body.load_state_dict(features.features.state_dict(), strict=False)
    if unexpected or len(missing) == len(body.state_dict()):
        raise ConfigError(f"--init-backbone {folder} does not fit the {model.config.backbone} backbone")


class WiderFaces(AugmentedDataset):
    """WIDER FACE rows as detection examples: ``{"image": 3 x H x W in [0, 1], "target": {boxes, labels, masks}}``."""

    def __init__(self, dataset, max_size: int, with_masks: bool, keep_invalid: bool = False, min_face: float = 2.0,
                 max_faces: int = 0, flip: bool = True, seed: int = 0):
        self.dataset, self.max_size, self.with_masks = dataset, max_size, with_masks
        self.keep_invalid, self.min_face, self.max_faces = keep_invalid, min_face, max_faces
        self.flip, self.seed = flip, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def boxes(self, faces: list[dict], scale: float, width: int, height: int) -> torch.Tensor:
        """The usable faces as ``K x 4`` xyxy boxes in the scaled photo; largest first when capped."""
        kept = []
        for face in faces or []:
            if face.get("invalid") and not self.keep_invalid:
                continue
            x, y, w, h = (float(face[name]) for name in FACE_FIELDS)
            x0, y0 = max(x, 0.0) * scale, max(y, 0.0) * scale
            x1, y1 = min((x + w) * scale, width), min((y + h) * scale, height)
            if x1 - x0 >= self.min_face and y1 - y0 >= self.min_face:  # also drops zero-size and outside boxes
                kept.append((x0, y0, x1, y1))
        if self.max_faces and len(kept) > self.max_faces:
            kept = sorted(kept, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)[:self.max_faces]
        return torch.tensor(kept, dtype=torch.float32).reshape(-1, 4)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[index]
        image: Image.Image = row["image"].convert("RGB")
        original_width = image.width
        shrink = self.max_size / max(image.size)
        if shrink < 1.0:  # large photos: scale down first, the detector would anyway
            image = image.resize((max(1, round(image.width * shrink)), max(1, round(image.height * shrink))),
                                 Image.Resampling.BILINEAR)
        width, height = image.size
        tensor = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
        boxes = self.boxes(row["faces"], width / original_width, width, height)
        if self.flip and torch.rand((), generator=self.generator(index)) < 0.5:
            tensor = tensor.flip(-1)
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
        target = {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}
        if self.with_masks:
            target["masks"] = ellipse_masks(boxes, height, width)
        return {"image": tensor, "target": target}


def collate(items: list[dict]) -> dict:
    """Detection batches are lists: photos differ in size and in their number of faces."""
    return {"images": [item["image"] for item in items], "targets": [item["target"] for item in items]}


@dataclass
class SegmenterArguments(TrainingArguments):
    """The segmenter's training flags; its architecture flags come from ``FaceSegmenterConfig``'s fields."""

    epochs: int = 20
    batch_size: int = 4
    warmup_steps: int = 500
    box_only: bool = HfArg(default=False, help="a box-only detector (Faster R-CNN), no masks")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float | None = HfArg(default=None, help="default: 0.02 (sgd) or 1e-4 (adamw)")
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float = HfArg(default=10.0, help="clip gradients (0: no clipping)")
    keep_invalid: bool = HfArg(default=False, help="keep boxes WIDER flags invalid")
    min_face: float = HfArg(default=2.0, help="drop faces smaller than this, in pixels after the resize")
    max_faces: int = HfArg(default=200, help="keep at most the N largest faces of a photo (memory of the masks; "
                                             "0: all)")
    eval_images: int = HfArg(default=200, help="validation photos scored each epoch (0: all)")
    flip: bool = HfArg(default=True, help="random horizontal flips (--no-flip: none)")
    init_backbone: Path | None = HfArg(
        default=None, metadata={"metavar": "DIR"},
        help="start the backbone from ImageNet features: a StyleFeatureExtractor checkpoint of the same "
             "architecture, e.g. checkpoints/style_features with --backbone mobilenet_v2")


class SegmenterStep(TrainingStep):
    """Train the face segmenter of expr_models (Mask R-CNN, or Faster R-CNN with --box-only) on WIDER FACE."""

    name = "segmenter"
    arguments_class = SegmenterArguments
    config_class = FaceSegmenterConfig
    config_exclude = ("with_masks",)  # --box-only
    find_unused_parameters = True  # torchvision's detection heads can leave a branch unused on some batches
    cudnn_benchmark = False  # photos differ in size: autotuning every new shape would cost more than it saves

    @classmethod
    def check_arguments(cls, args) -> None:
        if args.init_backbone and not (args.init_backbone / "config.json").is_file():
            raise ConfigError(f"--init-backbone {args.init_backbone} is not a saved StyleFeatureExtractor folder")
        if args.lr is not None and args.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {args.lr}")
        min_size, max_size = args.model.min_size, args.model.max_size
        if min_size < 32 or max_size < min_size:
            raise ConfigError(f"need 32 <= --min-size <= --max-size, got {min_size} and {max_size}")

    def build(self) -> None:
        args = self.args
        self.config = config = make_config(FaceSegmenterConfig, **vars(args.model), with_masks=not args.box_only)
        self.model = FaceSegmenter(config)
        if args.init_backbone:
            load_imagenet_backbone(self.model, args.init_backbone)
        self.model.to(self.device)
        train = load_prepared(args.data, args.split)
        require_columns(train, args.data, ("image", "faces"))
        data = dict(max_size=config.max_size, with_masks=config.with_masks, keep_invalid=args.keep_invalid,
                    min_face=args.min_face, max_faces=args.max_faces)
        self.train_rows = train
        self.train_dataset = WiderFaces(train, flip=args.flip, seed=args.seed, **data)
        held_out = load_prepared(args.data, args.eval_split, required=False)
        if held_out is not None and len(held_out):
            if args.eval_images:
                held_out = held_out.select(range(min(args.eval_images, len(held_out))))
            self.eval_dataset = WiderFaces(held_out, flip=False, **data)

    def collate(self, items: list):
        return collate(items)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"segmenter": self.model}

    def make_optimizers(self) -> dict[str, OptimizerSpec]:
        args = self.args
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        if args.optimizer == "sgd":
            optimizer = torch.optim.SGD(parameters, lr=args.lr or 0.02, momentum=args.momentum,
                                        weight_decay=args.weight_decay)
        else:
            optimizer = torch.optim.AdamW(parameters, lr=args.lr or 1e-4, weight_decay=args.weight_decay,
                                          fused=self.device.type == "cuda")
        return {"segmenter": OptimizerSpec(optimizer, schedule=args.lr_schedule, ema=True,
                                           max_grad_norm=args.max_grad_norm or None)}

    def step(self, batch, step_index: int) -> dict[str, torch.Tensor]:
        output = self.nets.segmenter(batch["images"], targets=batch["targets"])
        self.update("segmenter", output.loss)
        return {"loss": output.loss.detach(), **{key: value.detach() for key, value in output.losses.items()}}

    @torch.no_grad()
    def evaluate(self, dataloader) -> dict[str, float]:
        """Box recall and precision at IoU >= 0.5 (greedy one-to-one matching by score), summed over processes."""
        from torchvision.ops import box_iou

        model = self.unwrap(self.nets.segmenter)
        counts = torch.zeros(3, device=self.device)  # matched, ground-truth faces, detections
        for batch in dataloader:
            detections = model(batch["images"]).detections
            for found, target in zip(detections, batch["targets"]):
                truth = target["boxes"]
                boxes = found["boxes"]
                counts[1] += len(truth)
                counts[2] += len(boxes)
                if len(truth) and len(boxes):
                    iou = box_iou(boxes, truth)  # detections come sorted by score
                    taken = torch.zeros(len(truth), dtype=torch.bool, device=iou.device)
                    for row in iou:
                        row = row.masked_fill(taken, -1)
                        best = int(row.argmax())
                        if row[best] >= 0.5:
                            taken[best] = True
                    counts[0] += taken.sum()
        matched, faces, found = self.accelerator.reduce(counts, reduction="sum").tolist()
        return {"recall@0.5": matched / max(faces, 1), "precision@0.5": matched / max(found, 1)}

    def training_data_description(self) -> str:
        faces = sum(len(faces or []) for faces in self.train_rows["faces"])
        kind = "box-only detector" if self.args.box_only else "masks: filled ellipses inscribed in the boxes"
        return (f"WIDER FACE photos from `{self.args.data}` ({self.args.split} split): {len(self.train_rows)} photos, "
                f"{faces} annotated faces ({kind}; invalid-flagged boxes "
                f"{'kept' if self.args.keep_invalid else 'dropped'}).")


if __name__ == "__main__":
    sys.exit(main(SegmenterStep))
