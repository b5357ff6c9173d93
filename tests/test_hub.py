"""Publishing: what a push would send to the Hub, and loading an editor back from a Hub repo id.

The Hub here is ``tests/hub_server.py``, a stand-in on 127.0.0.1 that answers the requests huggingface_hub really
sends (create-repo, preupload, LFS batch/upload/verify, the NDJSON commit, model info, tree, resolve) as the Hub
would, and records them. These tests prove what would have reached the Hub; they do not prove that a push to the
real Hub works (no test here touches the network). Xet uploads are switched off (HF_HUB_DISABLE_XET=1): the stand-in
speaks the legacy LFS protocol only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hub_server import HubStandIn

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMITTED = REPO_ROOT / "checkpoints"


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---", 2)[1])


def client_env(hub: HubStandIn, home: Path) -> dict:
    return dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_TOKEN="hf_token_for_the_local_stand_in", HF_HOME=str(home),
                HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0", HF_HUB_DISABLE_TELEMETRY="1",
                HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONPATH=str(REPO_ROOT))


def run_client(code: str, hub: HubStandIn, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh Python whose HF_ENDPOINT is the stand-in; it prints one JSON line last."""
    done = subprocess.run([sys.executable, "-c", code], env=client_env(hub, tmp_path / "hf_home"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


PUSH_AND_LOAD = r'''
import json, sys
import numpy as np
from skimage import data
import expr_models
from expr_models.pipeline import ExpressionEditor

editor = ExpressionEditor.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else "{committed}")
editor.save_pretrained("saved_editor", repo_id="me/expr-editor")
editor_url = editor.push_to_hub("me/expr-editor")

classifier = expr_models.ExpressionClassifier.from_pretrained("{committed}/classifier")
classifier.save_pretrained("saved_classifier", repo_id="me/expr-classifier")
classifier_url = classifier.push_to_hub("me/expr-classifier")

# Back from the Hub id alone: snapshot_download into HF_HOME, then an edit of a real photo.
loaded = ExpressionEditor.from_pretrained("me/expr-editor")
photo = data.astronaut()
result = loaded.edit(photo, method="cyclegan", target="happy")
changed = int((np.asarray(result.image) != photo).any(axis=-1).sum())
print(json.dumps({{"editor_url": editor_url, "classifier_url": classifier_url, "models_dir": str(loaded.models_dir),
                  "detector": str(loaded.face_detector().model_path), "faces": len(result.faces),
                  "changed_pixels": changed,
                  "sources": {{k: [str(p) for p in v] for k, v in loaded.store.sources.items()}}}}))
'''.format(committed=COMMITTED)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """Push the committed editor and the classifier to the stand-in, then load the editor back by its id."""
    tmp_path = tmp_path_factory.mktemp("hub")
    with HubStandIn() as hub:
        outcome = run_client(PUSH_AND_LOAD, hub, tmp_path)
        yield hub, tmp_path, outcome


def test_push_sends_exactly_the_saved_folder_with_our_cards(pushed):
    hub, tmp_path, outcome = pushed
    for repo_id, saved in (("me/expr-editor", "saved_editor"), ("me/expr-classifier", "saved_classifier")):
        repo = hub.repos[repo_id]
        written = files_of(tmp_path / saved)
        assert set(repo.files) == set(written), repo_id  # every file save_pretrained wrote, and nothing else
        for path, content in written.items():
            assert repo.files[path] == content, f"{repo_id}/{path} differs from what save_pretrained wrote"
        assert outcome[("editor_url" if "editor" in repo_id else "classifier_url")].startswith(
            f"{hub.endpoint}/{repo_id}/commit/")

    # The pushed cards are ours: terms, licence, metrics (as model-index EvalResults and in the text).
    editor = hub.repos["me/expr-editor"]
    card = editor.files["README.md"].decode()
    meta = front_matter(card)
    assert meta["license"] == "other" and meta["license_name"] == "research-only-data"
    assert meta["library_name"] == "expr-models" and meta["pipeline_tag"] == "image-to-image"
    assert "research-only" in card and "ExpressionEditor.from_pretrained(\"me/expr-editor\")" in card
    assert "research-only" in editor.files["LICENSE.md"].decode()
    index = json.loads(editor.files["model_index.json"])
    assert index["face_detector"] == ["expr_models", "RetinaFaceDetector"]
    assert index["cyclegan"] == ["expr_models", "CycleGANModel"]
    assert "face_detector/retinaface_mnet025.onnx" in editor.lfs_paths
    cyclegan_card = editor.files["cyclegan/README.md"].decode()
    assert cyclegan_card == (COMMITTED / "cyclegan" / "README.md").read_text()  # copied as committed
    results = front_matter(cyclegan_card)["model-index"][0]["results"]
    to_happy = [metric["value"] for result in results for metric in result["metrics"]
                if metric["type"] == "accuracy" and "neutral → happy" in metric["name"]]
    # the committed evaluation's numbers, carried into the card's metadata and its embedded report
    evaluation = json.loads((COMMITTED.parent / "results" / "evaluation.json").read_text())
    measured = {dataset: next(row["success_rate"] for row in evaluation["datasets"][dataset]["edits"]
                              if row["method"] == "cyclegan" and row["target"] == "happy")
                for dataset in ("paper", "expressions")}
    assert sorted(to_happy) == sorted(round(100 * value, 1) for value in measured.values())
    assert f"| `paper` | cyclegan | neutral → happy | 18 | {100 * measured['paper']:.1f}% |" in cyclegan_card

    classifier = hub.repos["me/expr-classifier"].files["README.md"].decode()
    assert front_matter(classifier)["pipeline_tag"] == "image-classification"
    assert 'AutoModel.from_pretrained("me/expr-classifier")' in classifier and "research-only" in classifier
    assert "validation accuracy" in classifier


def test_push_is_private_and_sends_what_the_hub_expects(pushed):
    hub, _, _ = pushed
    creates = hub.requests_to("create-repo")
    assert [c["body"]["visibility"] for c in creates] == ["private", "private"]
    assert all(repo.private for repo in hub.repos.values())
    assert all(r["authorized"] for r in hub.requests if r["kind"] in ("create-repo", "preupload", "commit"))
    # Weights and the ONNX went through LFS (batch, upload, verify), not inline in the commit.
    commit_lines = [line for c in hub.requests_to("commit") for line in c["body"]]
    inline = {line["value"]["path"] for line in commit_lines if line["key"] == "file"}
    assert not any(path.endswith((".safetensors", ".onnx")) for path in inline)
    uploaded = {u["body"]["oid"] for u in hub.requests_to("lfs-upload")}
    assert uploaded == set(hub.lfs_store) and len(uploaded) >= 7  # 5 + detector in the editor, 1 classifier


def test_editor_loads_from_a_repo_id_and_edits_a_photo(pushed):
    hub, tmp_path, outcome = pushed
    snapshot = Path(outcome["models_dir"])
    assert snapshot.is_relative_to(tmp_path / "hf_home"), "loaded from the Hub cache, not from the checkout"
    assert Path(outcome["detector"]).is_relative_to(snapshot)  # RetinaFace from the repo, not the checkout
    assert all(Path(p).is_relative_to(snapshot) for paths in outcome["sources"].values() for p in paths)
    assert outcome["faces"] >= 1 and outcome["changed_pixels"] > 100
    kinds = [r["kind"] for r in hub.requests]
    assert "model-info" in kinds and "tree" in kinds and "resolve-get" in kinds


def test_public_push_needs_asking_and_a_public_repo_is_refused_for_private_weights(tmp_path):
    code = r'''
import json, logging
import expr_models
from expr_models.errors import ExpressionEditError
logging.basicConfig()
model = expr_models.ExpressionClassifier(expr_models.ExpressionClassifierConfig(resolution=64, widths=(8, 16, 16, 32)))
model.push_to_hub("me/public-classifier", private=False)
try:
    model.push_to_hub("me/public-classifier")
    refused = None
except ExpressionEditError as error:
    refused = str(error)
print(json.dumps({"refused": refused}))
'''
    with HubStandIn() as hub:
        outcome = run_client(code, hub, tmp_path)
        assert hub.repos["me/public-classifier"].private is False
        assert hub.requests_to("create-repo")[0]["body"]["visibility"] == "public"
    assert "is public" in outcome["refused"]


def test_cli_push_is_private_unless_public_is_given(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: other\n---\n# a card\n")
    with HubStandIn() as hub:
        env = client_env(hub, tmp_path / "hf_home")
        command = [sys.executable, "-m", "expr_models", "push", str(folder)]
        private = subprocess.run(command + ["me/a"], env=env, capture_output=True, text=True, timeout=300)
        public = subprocess.run(command + ["me/b", "--public"], env=env, capture_output=True, text=True, timeout=300)
        assert private.returncode == 0 and public.returncode == 0, private.stderr + public.stderr
        assert hub.repos["me/a"].private and not hub.repos["me/b"].private
        assert "research-only" in public.stderr  # --public states the data terms
        assert hub.repos["me/a"].files["README.md"] == (folder / "README.md").read_bytes()


def test_editor_repo_id_offline_fails_clearly(monkeypatch):
    import huggingface_hub.constants

    from expr_models.errors import HubUnavailableError
    from expr_models.pipeline import ExpressionEditor

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailableError, match="nobody/no-such-editor.*not in the local cache"):
        ExpressionEditor.from_pretrained("nobody/no-such-editor")


def test_committed_checkpoints_are_an_editor_repo():
    from expr_models.hub.editor_repo import read_index
    from expr_models.pipeline import ExpressionEditor

    models, detector = read_index(COMMITTED)
    assert set(models) == {"average", "cyclegan", "sagan", "classifier", "segmenter", "style_features", "face_mesh",
                           "mesh_motion", "mouth_exemplars", "mouth_inpainter", "brow_inpainter",
                           "lower_face_inpainter", "eyes_inpainter", "second_reader", "expression_shading",
                           "cyclegan_mouth", "sagan_mouth"}
    assert detector == COMMITTED / "face_detector" / "retinaface_mnet025.onnx"
    editor = ExpressionEditor.from_pretrained("checkpoints" if Path("checkpoints").is_dir() else COMMITTED)
    assert editor.available_methods() == ["cyclegan", "sagan", "nst", "average", "mesh"]


@pytest.mark.parametrize("folder, tag, licence", [
    ("cyclegan", "image-to-image", "other"), ("sagan", "image-to-image", "other"),
    ("classifier", "image-classification", "other"), ("segmenter", "image-segmentation", "other"),
    ("style_features", "image-feature-extraction", "bsd-3-clause"), ("face_mesh", "keypoint-detection", "apache-2.0"),
    ("mesh_motion", "image-to-image", "other"), ("mouth_exemplars", "image-to-image", "cc-by-4.0"),
    ("mouth_inpainter", "image-to-image", "other"), ("expression_shading", "image-to-image", "other"),
    ("cyclegan_mouth", "image-to-image", "other"), ("sagan_mouth", "image-to-image", "other"),
])
def test_committed_cards_are_honest_and_rebuilt_identically(folder, tag, licence, tmp_path):
    """Each committed card is what the card builder makes from config.json + model_card.json (no hand edits)."""
    import shutil

    from expr_models.hub.cards import write_model_card

    card = (COMMITTED / folder / "README.md").read_text()
    meta = front_matter(card)
    assert meta["pipeline_tag"] == tag and meta["license"] == licence and meta["library_name"] == "expr-models"
    assert "pip install ." in card and "import expr_models" in card
    if licence == "other":
        assert meta["license_link"] == "LICENSE.md" and (COMMITTED / folder / "LICENSE.md").is_file()
        assert meta["model-index"][0]["results"], "the evaluation's numbers are in the model-index"
    copy = tmp_path / folder
    shutil.copytree(COMMITTED / folder, copy)
    assert write_model_card(copy, repo_id=f"checkpoints/{folder}") == card


def test_dataset_cards_come_from_dataset_card_data():
    from huggingface_hub import DatasetCard

    from expr_models.hub.cards import dataset_card

    card = DatasetCard(dataset_card("paper", "# paper\n\nResearch-only faces.\n"))
    assert card.data.license == "other" and card.data.license_name == "research-only-data"
    assert card.data.pretty_name == "paper" and "research-only" in card.data.tags
    assert card.text.startswith("# paper")
