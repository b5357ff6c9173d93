"""The Space's Blocks: a thin layer over :mod:`space.actions` and the editing pipeline.

    from space.ui import build_demo, serve
    serve(build_demo())            # what app.py does

API endpoints (gradio_client): ``/edit``, ``/detect``, ``/classify``, ``/download`` (the last edit's full-size
PNG, in the caller's session), ``/live`` (the webcam stream) and ``/methods``. ``/edit`` and ``/live`` take the
controls ``smile``, ``mouth_open``, ``brows`` and ``eyes`` (-1..1, default 0) after their other inputs. This is the
only module, besides app.py, that imports gradio.
"""

from __future__ import annotations

import functools
import html
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# Set before gradio is imported: no analytics or version check calls home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from gradio.utils import is_in_or_equal  # noqa: E402

from expr_models.components import EDITING_METHODS  # noqa: E402
from expr_models.errors import (CheckpointError, ExpressionEditError, ImageLoadError, ImageTooLargeError,  # noqa: E402
                                NoFaceError, UnknownExpressionError, UnknownMethodError)
from expr_models.pipeline import Detection  # noqa: E402

from .actions import (CONTROL_LABELS, OutputFiles, SpaceModels, example_photos,  # noqa: E402
                      full_size_png, largest_face_of, largest_face_reading, live_edit, load_models, no_face_message,
                      open_upload, preview, run_edit)

logger = logging.getLogger(__name__)

DEFAULT_TARGET = "happy"
# Two CPU cores on a free Space: two requests at a time, the rest wait in a bounded queue. 32 waiting: 20 visitors
# sending at once are all served (tests/test_load.py); beyond that a caller is told "Queue is full" at once.
CONCURRENCY = int(os.environ.get("EXPR_SPACE_CONCURRENCY", "2"))
QUEUE_SIZE = int(os.environ.get("EXPR_SPACE_QUEUE_SIZE", "32"))
MAX_FILE_SIZE = os.environ.get("EXPR_SPACE_MAX_FILE_SIZE", "20mb")
VIEW_QUALITY = 85  # JPEG quality of the display views; the full-size result is a lossless PNG download
# Live mode: one webcam stream at a time (two cores), each for at most this long; frames every STREAM_EVERY seconds
# at most. The browser sends no frame while the last one is being edited and the server keeps only the newest, so
# frames are dropped, never queued.
LIVE_SECONDS = int(os.environ.get("EXPR_SPACE_LIVE_SECONDS", "90"))
STREAM_EVERY = 0.03
STATE_SECONDS = 1800  # how long a session keeps its upload's detection and its last edit

# Most specific first: the title of the error box for each kind of ExpressionEditError.
_ERROR_TITLES = (
    (NoFaceError, "No face found"),
    (ImageTooLargeError, "Image too large"),
    (ImageLoadError, "Unreadable image"),
    (CheckpointError, "Model not available"),
    (UnknownMethodError, "Unknown method"),
    (UnknownExpressionError, "Unsupported expression"),
    (ExpressionEditError, "Cannot edit this photo"),
)
_INTERNAL_ERROR = ("Something went wrong on our side while trying to {action}. It has been logged; please try again "
                   "or try another photo.")


def photo_input(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` input that hands the handler the uploaded file untouched, as a path.

    ``gr.Image`` opens every upload with Pillow before the handler runs, so a file that is not an image fails inside
    Gradio with a generic message. Passing the file on lets the pipeline's ``load_image`` say what is wrong
    (unreadable, too large) and apply the EXIF rotation itself. The override is set on the instance: Gradio writes a
    ``.pyi`` stub next to the module of every Component subclass.
    """
    image = gr.Image(type="filepath", image_mode=None, **kwargs)
    default_preprocess = image.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            # An API caller can send {"path": "/any/file"} without Gradio's file marker; Gradio then neither checks
            # nor moves it. Only files in Gradio's upload cache (uploads and the cached examples) may be read.
            if not is_in_or_equal(str(payload.path), image.GRADIO_CACHE):
                raise gr.Error("The photo must be a file uploaded to this Space.", title="Unreadable image",
                               print_exception=False)
            return str(payload.path)
        return default_preprocess(payload)  # a data: URL (rare): let Gradio write it to a file

    image.preprocess = preprocess
    return image


@dataclass
class Upload:
    """The session's uploaded photo as the detect step found it: an edit or a reading of it reuses the detection."""

    photo: str  # the upload's path in Gradio's cache
    detection: Detection

    def matches(self, photo: Any) -> bool:
        return photo is not None and self.photo == photo


def user_error(error: ExpressionEditError, visible: bool = True) -> gr.Error:
    title = next(title for kind, title in _ERROR_TITLES if isinstance(error, kind))
    # gr.Error renders HTML and the message may hold the user's file name.
    return gr.Error(html.escape(str(error)), title=title, visible=visible, print_exception=False)


def guarded(action: str) -> Callable:
    """Turn the pipeline's errors into clear messages and anything else into a logged, generic one: a handler
    never takes the server down and never shows a traceback."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)  # keeps the signature, so Gradio still finds the gr.Progress argument
        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except ExpressionEditError as error:
                logger.info("Could not %s: %s", action, error)
                raise user_error(error) from None
            except Exception:  # noqa: BLE001
                logger.exception("Failed to %s", action)
                raise gr.Error(_INTERNAL_ERROR.format(action=action), title="Internal error",
                               print_exception=False) from None

        return handler

    return decorate


# ---------------------------------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------------------------------

def method_choices(models: SpaceModels) -> list[tuple[str, str]]:
    return [(method.label if models.available(name) else f"{method.label} (unavailable)", name)
            for name, method in EDITING_METHODS.items()]


def method_note(models: SpaceModels, method: str) -> str:
    spec = EDITING_METHODS[method]
    problem = models.problem(method)
    if problem:
        return f"**{spec.label} is not available here.** {problem}"
    if spec.note:
        return spec.note
    targets = ", ".join(models.targets[method])
    return f"{spec.label} can produce: {targets}."


def status_markdown(models: SpaceModels) -> str:
    parts = [f"{method.label}: {'ready' if models.available(name) else 'missing'}"
             for name, method in EDITING_METHODS.items()]
    parts.append(f"expression classifier: {'ready' if models.has_classifier else 'missing'}")
    return f"<small>Models in `{models.models_dir.name}/` &mdash; {' · '.join(parts)}</small>"


def target_update(models: SpaceModels, method: str) -> dict:
    targets = list(models.targets.get(method, ()))
    value = DEFAULT_TARGET if DEFAULT_TARGET in targets else (targets[0] if targets else None)
    return gr.update(choices=targets, value=value, interactive=bool(targets))


def intensity_info(highest: float) -> str:
    more = f", up to {highest:g} for more" if highest > 1 else ""
    return f"0 keeps the photo, 1 applies the full edit{more}"


def intensity_update(models: SpaceModels, method: str, value: float | None) -> dict:
    """The intensity slider for ``method``: its maximum is the method's (1.5 for those that move the face mesh)."""
    highest = models.highest(method)
    return gr.update(maximum=highest, value=min(float(value if value is not None else 1.0), highest),
                     info=intensity_info(highest))


# ---------------------------------------------------------------------------------------------------------------------
# The Blocks
# ---------------------------------------------------------------------------------------------------------------------

def build_demo(models: SpaceModels | None = None, models_dir: str | os.PathLike | None = None) -> gr.Blocks:
    """The Space. ``models`` (or the checkpoints in ``models_dir``, ``$EXPR_MODELS_DIR`` or ``checkpoints/``) are
    loaded once here and shared by every request."""
    models = models or load_models(models_dir)
    files = OutputFiles()
    default_method = next((m for m in EDITING_METHODS if models.available(m)), "cyclegan")

    def view_file(image: Any, name: str) -> str:
        """A display view as a file of its own. Gradio writes a returned PIL image in place, without a rename, to a
        path named by its content: two requests making the same view (the same example photo) rewrite it while the
        first one's visitor downloads it, who then gets a truncated image. Files are copied in atomically."""
        return files.save(image, name, quality=VIEW_QUALITY)

    # --- handlers ------------------------------------------------------------------------------------------------
    @guarded("edit the photo")
    def edit(photo, method, target, intensity, reference=None, steps=None, smile=0.0, mouth_open=0.0, brows=0.0,
             eyes=0.0, upload=None, progress=gr.Progress()):
        """Edit the expression of every face in the photo; ``smile``, ``mouth_open``, ``brows`` and ``eyes`` (-1..1)
        move those parts on top of the target, for the methods that move the face mesh. Returns the edited photo and
        the before/after pair and the faces with their blend masks, all at display size (JPEG; the full-size lossless
        result is ``/download``), the classifier's reading before and after (None without a classifier checkpoint)
        and details (faces, timings, notes, controls)."""
        detection = upload.detection if upload is not None and upload.matches(photo) else None
        controls = dict(zip(CONTROL_LABELS, (smile, mouth_open, brows, eyes)))
        out = run_edit(models, photo, method, target, intensity, reference, steps,
                       progress=lambda fraction, message: progress(fraction, desc=message), detection=detection,
                       controls=controls)
        for note in out.result.notes:
            gr.Info(html.escape(note))
        stem = Path(photo).stem
        before, after = out.before_after
        edited_view = view_file(after, f"{stem}-edited")
        return (edited_view, (view_file(before, f"{stem}-before"), edited_view), view_file(out.faces, f"{stem}-faces"),
                out.reading_before, out.reading_after, out.details, out.full_size)

    def control_preview(photo, *args, progress=gr.Progress()):
        """A released control slider: the edit again, on the upload (its detection reused); nothing without one."""
        if photo is None:
            return (gr.skip(),) * 7
        return edit(photo, *args, progress=progress)

    @guarded("write the full-size result")
    def download(full_size=None):
        """The last edit in this session at full size, as a lossless PNG with the photo's colour profile: pixels
        outside the faces are the upload's, byte for byte."""
        return full_size_png(files, full_size)

    @guarded("find the faces")
    def find_faces(photo):
        """Find the faces in a photo: the photo with boxes and blend masks drawn, and the boxes. The decoded photo
        and its faces are kept in the session: the classify step that follows and an edit of the photo reuse them."""
        if photo is None:
            return None, None, None
        shown = preview(models, open_upload(photo), read=False)  # the reading is the classify step's
        if not shown.detection.boxes:
            gr.Warning(html.escape(no_face_message(models)))
        return view_file(shown.view, f"{Path(photo).stem}-faces"), shown.info(), Upload(photo, shown.detection)

    @guarded("read the expression")
    def classify(photo, upload=None):
        """The expression classifier's reading of the largest face in the photo."""
        if photo is None:
            return None
        if not models.has_classifier:
            # Quiet in the UI, which hides the readings then; an API caller still gets the message.
            raise user_error(CheckpointError(models.problems["classifier"]), visible=False)
        # The faces the upload's detect step has just found in this session (the UI chains detect -> classify);
        # an API caller's photo is decoded and searched here.
        if upload is not None and upload.matches(photo):
            faces, reading = len(upload.detection.boxes), largest_face_of(models, upload.detection)
        else:
            shown = preview(models, open_upload(photo))
            faces, reading = len(shown.detection.boxes), shown.reading
        try:
            return largest_face_reading(models, faces, reading)
        except NoFaceError as error:
            raise user_error(error, visible=False) from None  # the UI's detect step has already said so

    @guarded("edit the webcam stream")
    def live(frame, method, target, intensity, smile=0.0, mouth_open=0.0, brows=0.0, eyes=0.0, tracker=None):
        """One webcam frame, edited (the faces tracked from frame to frame in this viewer's session)."""
        controls = dict(zip(CONTROL_LABELS, (smile, mouth_open, brows, eyes)))
        return live_edit(models, tracker, frame, method, target, intensity, controls)

    def method_changed(method, intensity_value):
        # Controls show for a method that takes them here; hidden ones go back to 0, so they cannot refuse an edit.
        takes = bool(models.controls.get(method))
        return (target_update(models, method), method_note(models, method),
                gr.update(visible=EDITING_METHODS[method].needs_reference),
                intensity_update(models, method, intensity_value), gr.update(visible=takes),
                *(gr.update(interactive=True) if takes else gr.update(value=0.0) for _ in CONTROL_LABELS))

    # --- layout --------------------------------------------------------------------------------------------------
    with gr.Blocks(title="Expression editor", delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# Facial expression editor\nDrop in a photo with a frontal face, pick a method and a target "
                    "expression, and press **Edit expression**. Every face is edited; the rest of the photo stays "
                    "as it was.")
        gr.Markdown(status_markdown(models))
        with gr.Tab("Photo", elem_id="photo-tab"), gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                photo = photo_input(label="Photo", sources=["upload", "webcam", "clipboard"], height=360,
                                    elem_id="photo")
                method = gr.Radio(method_choices(models), value=default_method, label="Method", elem_id="method")
                note = gr.Markdown(method_note(models, default_method), elem_id="method-note")
                target = gr.Dropdown(choices=list(models.targets.get(default_method, ())),
                                     value=target_update(models, default_method)["value"],
                                     interactive=bool(models.targets.get(default_method)),
                                     # API callers may name any expression; the pipeline says if it can't make it.
                                     allow_custom_value=True, label="Target expression", elem_id="target")
                # Built with the largest maximum of any method, which is what Gradio lets an API caller send; each
                # page narrows it to its method's when it loads and when the method changes.
                intensity = gr.Slider(0.0, max(map(models.highest, EDITING_METHODS)), value=1.0, step=0.05,
                                      label="Intensity", info=intensity_info(models.highest(default_method)),
                                      elem_id="intensity")
                with gr.Group(visible=bool(models.controls.get(default_method)), elem_id="controls") as control_box:
                    sliders = [gr.Slider(-1.0, 1.0, value=0.0, step=0.05, label=label,
                                         info="on top of the target; the edit previews when you let go" if index == 0
                                         else None, elem_id=f"control-{name.replace('_', '-')}")
                               for index, (name, label) in enumerate(CONTROL_LABELS.items())]
                with gr.Group(visible=EDITING_METHODS[default_method].needs_reference) as nst_options:
                    reference = photo_input(label="Reference face (its expression is copied)",
                                            sources=["upload", "clipboard"], height=220, elem_id="reference")
                    steps = gr.Slider(5, 300, value=min(models.editor.nst_steps, 50), step=5, precision=0,
                                      label="Style-transfer steps", info="More steps: a stronger transfer, slower",
                                      elem_id="steps")
                run = gr.Button("Edit expression", variant="primary", elem_id="run")
                examples = example_photos()
                london = sorted((Path(__file__).parent / "examples").glob("london_*.jpg"))  # held-out people
                examples += [(path, f"London Set {path.stem.split('_', 1)[1].replace('_', ', ')}") for path in london]
                if examples:
                    gr.Examples([[str(path)] for path, _ in examples], inputs=[photo], label="Example photos")
                    gr.Markdown("<small>Examples: " + "; ".join(caption for _, caption in examples) + "." + (
                        " London Set faces: Face Research Lab London Set, DeBruine & Jones (2017), CC BY 4.0, "
                        "doi:10.6084/m9.figshare.5047666.v5." if london else "") + "</small>")
            with gr.Column(scale=1, min_width=320):
                with gr.Tabs():
                    with gr.Tab("Edited"):
                        edited = gr.Image(label="Edited photo (display size)", type="filepath", interactive=False,
                                          height=420, buttons=["fullscreen"], elem_id="edited")
                    with gr.Tab("Before / after"):
                        before_after = gr.ImageSlider(label="Before / after", type="pil", format="jpeg",
                                                      interactive=False, max_height=420, elem_id="before-after")
                    with gr.Tab("Faces and masks"):
                        faces = gr.Image(label="Detected faces and blend masks", format="jpeg", interactive=False,
                                         height=420, elem_id="faces")
                with gr.Row(equal_height=True):
                    # Written only when asked for: a phone photo's PNG takes longer than its edit.
                    build_download = gr.Button("Full-size PNG (lossless)", size="sm", elem_id="download-build")
                    download_file = gr.File(label="Full-size result", interactive=False, height=60,
                                            elem_id="download")
                with gr.Row(visible=models.has_classifier):
                    reading_before = gr.Label(label="Expression before", elem_id="reading-before")
                    reading_after = gr.Label(label="Expression after", elem_id="reading-after")
                with gr.Accordion("Details: faces, timings, notes", open=False):
                    details = gr.JSON(label="Details", elem_id="details")
        with gr.Tab("Live webcam", elem_id="live-tab"):
            gr.Markdown("Start your webcam: every frame is edited with the method, target, intensity and controls "
                        "picked on the **Photo** tab (style transfer is too slow for a stream). Frames are dropped "
                        f"rather than queued, so what you see is always recent; one stream at a time, "
                        f"{LIVE_SECONDS} s each.")
            with gr.Row():
                live_input = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy",
                                      elem_id="live-input")
                live_output = gr.Image(label="Edited", format="jpeg", interactive=False, elem_id="live-output")

        # --- events ----------------------------------------------------------------------------------------------
        # Every model-running event shares one concurrency group, so at most CONCURRENCY of them use the CPU.
        heavy = dict(concurrency_id="cpu", concurrency_limit=CONCURRENCY)
        demo.load(lambda value: intensity_update(models, default_method, value), inputs=intensity,
                  outputs=intensity, queue=False, api_visibility="private")
        method.change(method_changed, inputs=[method, intensity],
                      outputs=[target, note, nst_options, intensity, control_box, *sliders], queue=False,
                      api_visibility="private")
        # A new photo clears the last one's edit at once, then its faces are found and read: one decode and one
        # detection, shared through the session's state.
        upload = gr.State(None, time_to_live=STATE_SECONDS)  # Upload: the photo and its detection
        last_edit = gr.State(None, time_to_live=STATE_SECONDS)  # FullSizeResult: what /download writes
        photo.change(lambda: (None, None, None, None), outputs=[edited, before_after, reading_after, download_file],
                     queue=False, api_visibility="private")
        photo.change(find_faces, inputs=photo, outputs=[faces, details, upload], api_name="detect",
                     show_progress="minimal", **heavy
                     ).success(classify, inputs=[photo, upload], outputs=reading_before, api_name="classify",
                               show_progress="hidden", **heavy)
        edit_inputs = [photo, method, target, intensity, reference, steps, *sliders, upload]
        edit_outputs = [edited, before_after, faces, reading_before, reading_after, details, last_edit]
        run.click(lambda: None, outputs=download_file, queue=False, api_visibility="private")
        run.click(edit, inputs=edit_inputs, outputs=edit_outputs, api_name="edit", **heavy)
        # Each control previews live: let go of it and the upload is edited again (its detection reused); while an
        # edit runs, only the last release waits.
        for slider in sliders:
            slider.release(lambda: None, outputs=download_file, queue=False, api_visibility="private")
            slider.release(control_preview, inputs=edit_inputs, outputs=edit_outputs, trigger_mode="always_last",
                           api_visibility="private", show_progress="minimal", **heavy)
        build_download.click(download, inputs=last_edit, outputs=download_file, api_name="download", **heavy)
        tracker = gr.State(None, time_to_live=STATE_SECONDS)  # this viewer's LiveTracker
        live_input.stream(live, inputs=[live_input, method, target, intensity, *sliders, tracker],
                          outputs=[live_output, tracker], api_name="live", stream_every=STREAM_EVERY,
                          time_limit=LIVE_SECONDS, concurrency_limit=1, concurrency_id="live",
                          show_progress="hidden")
        gr.api(models.summary, api_name="methods", queue=False,
               api_description="What each method can do here: availability, targets, and why not when missing.")
    return demo


def serve(demo: gr.Blocks, **launch_kwargs: Any) -> Any:
    """Queue and launch ``demo`` as the Space does; keyword arguments override the launch settings (tests pass a
    port and ``prevent_thread_lock``)."""
    port = os.environ.get("GRADIO_SERVER_PORT")  # Spaces set it and GRADIO_SERVER_NAME=0.0.0.0
    settings = dict(server_name=os.environ.get("GRADIO_SERVER_NAME") or None,
                    server_port=int(port) if port else None, max_file_size=MAX_FILE_SIZE, show_error=False)
    settings.update(launch_kwargs)
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE).launch(**settings)
