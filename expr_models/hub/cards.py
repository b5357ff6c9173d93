"""Model, editor and dataset cards, built with huggingface_hub's ``ModelCard`` / ``ModelCardData`` / ``DatasetCard``.

What the Hub reads from a card's front matter, and why each value is what it is:

- ``license``: the weights of every model trained here learned from research-only face data (JAFFE, FEI, FER2013,
  CK+, WIDER FACE), so their licence is ``other`` with ``license_name: research-only-data`` and a ``LICENSE.md``
  beside the card that names the terms. The code's Apache-2.0 does not extend to them.
- ``pipeline_tag``: per model type (a classifier is ``image-classification``, not ``image-to-image``).
- ``library_name: expr-models``: with ``transformers`` the Hub would show a snippet that fails without
  ``import expr_models``; our card's own snippet installs and imports the package.
- ``model-index``: the numbers of ``python -m expr_models evaluate`` as ``EvalResult``s.

    expr-models cards checkpoints --evaluation results/evaluation.json   # rewrite the committed cards
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from ..models.modeling_utils import CARD_INFO_FILE

LICENSE_FILE = "LICENSE.md"
DATA_TERMS = (
    "The training images are research-only and may not be redistributed: JAFFE, FEI, FER2013, CK+ and WIDER FACE "
    "each have non-commercial, research-only licences. These weights are shared for research on expression editing; "
    "check each dataset's licence before any other use."
)
RESEARCH_LICENSE = {"license": "other", "license_name": "research-only-data", "license_link": LICENSE_FILE}
LIBRARY_NAME = "expr-models"
# The package is not on PyPI: a card's snippet installs it from the project's source, then imports it.
INSTALL_LINES = ["# in a checkout of the expr-models source (the package is not on PyPI yet)", "pip install ."]

# model_type -> the Hub's pipeline tag for what the model does.
PIPELINE_TAGS = {
    "expr-cyclegan": "image-to-image",
    "expr-average-edit": "image-to-image",
    "expr-sagan": "image-to-image",
    "expr-classifier": "image-classification",
    "expr-fer-reader": "image-classification",
    "expr-face-segmenter": "image-segmentation",
    "expr-style-features": "image-feature-extraction",
    "expr-face-mesh": "keypoint-detection",
    "expr-mesh-motion": "image-to-image",  # it drives an image edit (points -> a warp of the photo)
    "expr-mouth-exemplars": "image-to-image",  # mouth interiors filled into edited photos
    "expr-mouth-inpainter": "image-to-image",  # redraws the mouth of edited photos
    "expr-cyclegan-mouth": "image-to-image",  # the same, in the CycleGAN's edits
    "expr-sagan-mouth": "image-to-image",  # the same, in the SA-GAN's edits
    "expr-expression-shading": "image-to-image",  # shades the skin of edited photos
}
# The evaluation data sets, by the name ``evaluate`` gives them (the ``--data`` folder's name).
EVAL_DATASETS = {
    "paper": "JAFFE + FEI, held-out subjects (the study's happy/neutral set)",
    "expressions": "JAFFE + FER2013 + CK+, held-out subjects, 7 expressions",
    "wider": "WIDER FACE validation photos",
    "fei-photos": "FEI whole photos, held-out subjects (paired realism ratio)",
    "london-photos": "Face Research Lab London Set whole colour photos, held-out people (paired realism ratio)",
    "jaffe-photos": "JAFFE whole photos, held-out subjects (paired realism ratio)",
}


def license_metadata(info: dict[str, Any]) -> dict[str, str]:
    """The card's licence fields: ``info["license"]`` (a Hub licence id, e.g. ``bsd-3-clause``) where the weights
    have their own, else ``other`` / research-only-data (trained on the research-only faces)."""
    if info.get("license") and info["license"] != "other":
        return {"license": info["license"]}
    return dict(RESEARCH_LICENSE)


def license_text(info: dict[str, Any]) -> str | None:
    """The LICENSE.md that ``license_link`` points at, or None for a standard licence id."""
    if "license_link" not in license_metadata(info):
        return None
    return ("# Terms of use of these weights\n\n" + info.get("terms", DATA_TERMS) + "\n\n"
            "The code that defines and runs them (the expr-models package) is Apache-2.0; these terms cover the "
            "weights, which learned from the data above.\n")


def model_card(class_name: str, summary: str, config: dict[str, Any], info: dict[str, Any],
               repo_id: str | None = None) -> str:
    """The README.md of one model folder: front matter (licence, pipeline tag, model-index) and the card text."""
    model_type = config.get("model_type", "")
    data = ModelCardData(
        library_name=LIBRARY_NAME, pipeline_tag=PIPELINE_TAGS.get(model_type), **license_metadata(info),
        tags=["expr-models", "expression-editing", "transformers", model_type],
        model_name=class_name if info.get("eval_results") else None,
        eval_results=[EvalResult(**result) for result in info.get("eval_results", [])] or None,
    )
    where = repo_id or "path/to/this/folder"
    lines = [
        f"# {class_name}", "", summary, "", "## Usage", "", "```bash", *INSTALL_LINES, "```", "",
        "```python", "import expr_models  # registers the model types with transformers' Auto classes",
        "from transformers import AutoModel", "", f'model = AutoModel.from_pretrained("{where}")', "```", "",
        "## Training data", "", info.get("training_data", "Not trained on any data yet (random initialisation)."), "",
        f"**Terms.** {info.get('terms', DATA_TERMS)}", "",
    ]
    if info.get("training"):
        lines += ["## Training", "", str(info["training"]), ""]
    if info.get("metrics"):
        lines += ["## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in info["metrics"].items()]
        lines.append("")
    if info.get("evaluation"):
        # The evaluation report's own headings start at "##"; nest them under this card's section.
        report = str(info["evaluation"]).replace("\n## ", "\n### ").removeprefix("## Evaluation").strip()
        lines += ["## Evaluation report", "", report, ""]
    if info.get("notes"):
        lines += ["## Notes", "", str(info["notes"]), ""]
    lines += ["## Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
    return _card(data, "\n".join(lines))


def editor_card(components: dict[str, str], eval_results: list[dict[str, Any]], repo_id: str | None = None) -> str:
    """The README.md of an editor repo: what each subfolder holds, how to load it, the terms."""
    data = ModelCardData(
        library_name=LIBRARY_NAME, pipeline_tag="image-to-image", **RESEARCH_LICENSE,
        tags=["expr-models", "expression-editing", "cyclegan", "gan", "style-transfer"],
        model_name="ExpressionEditor" if eval_results else None,
        eval_results=[EvalResult(**result) for result in eval_results] or None,
    )
    where = repo_id or "path/to/this/folder"
    rows = [f"| `{folder}/` | `{class_name}` |" for folder, class_name in components.items()]
    text = "\n".join([
        "# Expression editor (expr-models)", "",
        "Every model the expr-models `ExpressionEditor` needs, one subfolder each, named in `model_index.json` "
        "(the layout of a diffusers pipeline repo). It changes the expression of every face in a photo with "
        "CycleGAN (neutral <-> happy), a class-conditional SA-GAN (7 expressions) or neural style transfer, and "
        "pastes each edit back into the photo.", "",
        "| folder | class |", "|---|---|", *rows, "",
        "Each folder has its own card with its training record and evaluation.", "",
        "## Usage", "", "```bash", *INSTALL_LINES, "```", "",
        "```python", "import expr_models", "from expr_models.pipeline import ExpressionEditor", "",
        f'editor = ExpressionEditor.from_pretrained("{where}")',
        'result = editor.edit("photo.jpg", method="cyclegan", target="happy")',
        'result.image.save("photo_happy.png")', "```", "",
        "Command line: `expr-models edit photo.jpg --models " + where + " --method sagan --to surprise --out edited/`.",
        "", "## Terms", "", DATA_TERMS, "",
        "The face detector (`face_detector/`) is RetinaFace-MobileNet0.25 under the MIT licence and the style "
        "features (`style_features/`) are torchvision's BSD-3-Clause ImageNet weights; see their cards.", "",
    ])
    return _card(data, text)


def dataset_card(pretty_name: str, body: str) -> str:
    """A dataset card for a prepared (research-only, private) dataset: front matter from ``DatasetCardData``."""
    data = DatasetCardData(license="other", license_name="research-only-data", pretty_name=pretty_name,
                           tags=["faces", "facial-expression", "research-only"])
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _card(data: ModelCardData, text: str) -> str:
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text}"))


# ---------------------------------------------------------------------------------------------------------------------
# The evaluation's numbers as EvalResults
# ---------------------------------------------------------------------------------------------------------------------

def _result(task_type: str, task_name: str, dataset: str, split: str, metric_type: str, value: float,
            metric_name: str) -> dict[str, Any]:
    return {"task_type": task_type, "task_name": task_name, "dataset_type": dataset,
            "dataset_name": EVAL_DATASETS.get(dataset, dataset), "dataset_split": split, "metric_type": metric_type,
            "metric_value": value, "metric_name": metric_name}


def eval_results_from_report(report: dict[str, Any], component: str, checkpoint: str | None = None
                             ) -> list[dict[str, Any]]:
    """``EvalResult`` keyword dicts for one component from ``evaluate``'s ``evaluation.json``.

    ``checkpoint``: the checkpoint's name in the report (its folder name; default: the component's). Percentages
    are rounded as the report's tables print them.
    """
    checkpoint = checkpoint or component
    results: list[dict[str, Any]] = []
    for dataset, section in report.get("datasets", {}).items():
        split = section.get("data", {}).get("split", "test")
        if component == "classifier" and section.get("classifier"):
            results.append(_result("image-classification", "Facial expression recognition", dataset, split,
                                   "accuracy", round(100 * section["classifier"]["accuracy"], 1), "accuracy (%)"))
        for edit in section.get("edits", []):
            if edit.get("checkpoint") != checkpoint or edit.get("method") != component:
                continue
            inputs = list(edit.get("inputs", {}))
            edit_name = f"{inputs[0] if len(inputs) == 1 else 'others'} → {edit['target']}"
            task = ("image-to-image", "Facial expression editing", dataset, split)
            results.append(_result(*task, "accuracy", round(100 * edit["success_rate"], 1),
                                   f"success {edit_name}, read by the classifier (%)"))
            results.append(_result(*task, "ssim", round(edit["upper_face"]["ssim"], 3),
                                   f"upper-face SSIM {edit_name}"))
            if edit.get("kid") and edit["kid"].get("mean") is not None:
                results.append(_result(*task, "kid", round(1000 * edit["kid"]["mean"], 1),
                                       f"KID x10^3 {edit_name} (classifier features)"))
            if edit.get("cycle_l1"):
                results.append(_result(*task, "l1", round(edit["cycle_l1"]["[-1,1]"], 4),
                                       f"cycle L1 {edit_name} → {inputs[0] if inputs else 'input'} ([-1, 1])"))
    results += _warp_part_successes(report, component, checkpoint)
    results += _realism_results(report.get("realism", {}), component, checkpoint,
                                report.get("checkpoints", {}).get(component, []), set(report.get("checkpoints", {})))
    if component == "segmenter":
        for dataset, section in report.get("detection", {}).items():
            scores = section.get("detectors", {}).get("segmenter")
            if scores:
                split = section.get("data", {}).get("split", "validation")
                results.append(_result("object-detection", "Face detection", dataset, split, "ap",
                                       round(scores["iou_0.5"]["ap"], 3), "AP@0.5"))
    return results


def _warp_part_successes(report: dict[str, Any], component: str, checkpoint: str) -> list[dict[str, Any]]:
    """The learned brows' and the learned lower face's rows: the success of every mesh-warp edit of the 48-px
    expression crops it was part of (it redraws its region of each one the evaluation made with it loaded), read by
    the classifier."""
    from ..components import EDITING_METHODS
    from ..methods.mesh import BROWS_COMPONENT, LOWER_FACE_COMPONENT

    evaluated = report.get("checkpoints", {}).get(component, [])
    names = {BROWS_COMPONENT: "these brows", LOWER_FACE_COMPONENT: "this lower face"}
    if component not in names or not evaluated or checkpoint != evaluated[0].get("name"):
        return []
    results = []
    for dataset, section in report.get("datasets", {}).items():
        if dataset != BROWS_DATASET:
            continue
        for edit in section.get("edits", []):
            method = EDITING_METHODS.get(edit.get("method"))
            if method is None or edit["method"] not in MESH_WARP_METHODS:
                continue
            inputs = list(edit.get("inputs", {}))
            name = f"{method.label} {inputs[0] if len(inputs) == 1 else 'others'} → {edit['target']}"
            results.append(_result("image-to-image", "Facial expression editing", dataset,
                                   section.get("data", {}).get("split", "test"), "accuracy",
                                   round(100 * edit["success_rate"], 1),
                                   f"success {name} (with {names[component]}), read by the classifier (%)"))
    return results


def _realism_results(realism: dict[str, Any], component: str, checkpoint: str,
                     evaluated: list[dict[str, Any]], used: set[str] = frozenset()) -> list[dict[str, Any]]:
    """The paired realism ratio rows of one component's editing method (median over held-out people; lower = closer
    to the person's real expression, 1 = no closer than the unedited photo) and, where measured, the mesh-motion gain
    and cosine and the mouth sharpness of the same edits. The editor measured the first checkpoint of a component, so
    another checkpoint of it gets none. A method's own mouth (``<method>_mouth``, among the ``used`` components)
    drew that method's edits in place of the learned mouth."""
    from ..components import EDITING_METHODS
    from ..methods.mesh import MOUTH_COMPONENTS, SHADING_COMPONENT

    if evaluated and checkpoint != evaluated[0].get("name"):
        return []
    # A mouth or the shading is part of every mesh warp the evaluation made with it (it was loaded, so the editor
    # used it): the mesh motion's and the committed CycleGAN's and SA-GAN's (mesh generators); the average edit
    # draws no mouth and shades nothing.
    own_mouths = {f"{name}_mouth": name for name in MESH_WARP_METHODS}
    mouths = (*MOUTH_COMPONENTS, *own_mouths)
    part = component in (*mouths, SHADING_COMPONENT) and bool(evaluated)
    measures, label = (MOUTH_RESULTS, "this mouth") if component in mouths else (SHADING_RESULTS, "this shading")
    results = []
    for row in realism.get("rows", []):
        method = EDITING_METHODS.get(row["method"])
        if method is None or not (method.component == component or part and row["method"] in MESH_WARP_METHODS):
            continue
        if component in own_mouths and row["method"] != own_mouths[component] or \
                component == "mouth_inpainter" and f"{row['method']}_mouth" in used:
            continue
        source, target = row["pair"].split("->")
        if not part:
            results += _row_results(row, realism.get("split", "test"), MESH_RESULTS, f"{source} → {target}")
        elif row["dataset"] in WARP_PART_DATASETS:
            results += _row_results(row, realism.get("split", "test"), measures,
                                    f"{method.label} {source} → {target} (with {label})")
    return results


def _row_results(row: dict[str, Any], split: str, measures: tuple, edit: str) -> list[dict[str, Any]]:
    """One realism row's results: its realism ratio and the ``measures`` found in it, for the ``edit`` named."""
    where = ("image-to-image", "Facial expression editing", f"{row['dataset']}-photos", split)
    results = []
    if row.get("median_ratio") is not None:
        results.append(_result(*where, "realism_ratio", round(row["median_ratio"], 2),
                               f"paired realism ratio {edit}, median over {row['subjects']} people "
                               "(mouth error vs. the real photo / unedited's; lower is better)"))
    for measure, metric_type, text in measures:
        found = row.get("mesh", {}).get(measure, {})
        if found.get("median") is not None:
            results.append(_result(*where, metric_type, round(found["median"], 2),
                                   f"{text} {edit}, median over {found['subjects']} people"))
    return results


# The methods whose edits are mesh warps, with the editor's mouth (the committed GANs have mesh generators).
MESH_WARP_METHODS = ("cyclegan", "sagan", "mesh")
# A mouth's or the shading's card lists the happy <-> neutral photo pairs (where lips part and close, and smiles
# fold the skin), not every JAFFE expression.
WARP_PART_DATASETS = ("fei", "london")
BROWS_DATASET = "expressions"  # the learned brows and lower face are FER2013's size: their cards read its crops
# A mouth's measures in the cards: (the evaluation's name, metric type, what the card says).
MOUTH_RESULTS = (
    ("gap_ratio", "mouth_opening_ratio", "mouth opening (edit over the real photo's) of"),
    ("sharpness", "mouth_sharpness", "mouth sharpness (edit over input) of"),
)
# The shading's measures: a smile's folds and lifted cheeks, seen by the face mesh.
SHADING_RESULTS = (
    ("cheek_gain", "mesh_cheek_gain", "cheek and lower-eyelid mesh gain (1 = as far as the real expression) of"),
    ("gain", "mesh_gain", "mesh-motion gain (1 = as far as the real expression) of"),
)
# The mesh measures that go into the cards: (the evaluation's name, metric type, what the card says).
MESH_RESULTS = (
    ("gain", "mesh_gain", "mesh-motion gain vs. the real photo (1 = as far as the real expression)"),
    ("cosine", "mesh_cosine", "mesh-motion cosine vs. the real photo (1 = the same direction)"),
    ("sharpness", "mouth_sharpness", "mouth sharpness, edit over input (Laplacian variance; 1 = as sharp)"),
)


# ---------------------------------------------------------------------------------------------------------------------
# Rewriting the cards of saved folders (without touching their weights)
# ---------------------------------------------------------------------------------------------------------------------

def write_model_card(folder: str | Path, info: dict[str, Any] | None = None, repo_id: str | None = None) -> str:
    """Write ``README.md`` (and ``LICENSE.md``, ``model_card.json``) of a saved model folder from its
    ``config.json`` and card record; the weights stay as they are. Returns the card."""
    from ..components import COMPONENT_BY_MODEL_TYPE, model_class

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    info_file = folder / CARD_INFO_FILE
    if info is None:
        info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    cls = model_class(COMPONENT_BY_MODEL_TYPE[config["model_type"]])
    config.pop("transformers_version", None)
    card = model_card(cls.__name__, cls.card_summary, _diff_config(cls, config), info, repo_id)
    write_card_files(folder, card, info)
    return card


def write_card_files(folder: Path, card: str, info: dict[str, Any]) -> None:
    """README.md, LICENSE.md (where the licence is ``other``) and model_card.json (the record the card came from)."""
    (folder / "README.md").write_text(card, encoding="utf-8")
    terms = license_text(info)
    if terms is not None:
        (folder / LICENSE_FILE).write_text(terms, encoding="utf-8")
    if info:  # kept beside the card so a re-save (fp16 export, new metrics) keeps the training record
        (folder / CARD_INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _diff_config(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """The config as ``to_diff_dict`` gives it (only what differs from the defaults), as a model's own card shows."""
    diff = cls.config_class.from_dict(config).to_diff_dict()
    diff.pop("transformers_version", None)
    return diff
