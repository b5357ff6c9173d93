"""The Hugging Face Space: ``python app.py``. The UI lives in space/ui.py; this file only builds and launches it.

Settings from the environment: EXPR_MODELS_DIR (checkpoints, default ./checkpoints), GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT (where to listen), EXPR_SPACE_CONCURRENCY, EXPR_SPACE_QUEUE_SIZE, EXPR_SPACE_MAX_FILE_SIZE.
"""

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported (by space.ui)

from space.ui import build_demo, serve  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
demo = build_demo()

if __name__ == "__main__":
    serve(demo)
