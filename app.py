"""The Hugging Face Space: ``python app.py``. The UI lives in space/ui.py; this file only builds and launches it.

Settings from the environment: EXPR_MODELS_DIR (checkpoints, default ./checkpoints), GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT (where to listen), EXPR_SPACE_CONCURRENCY, EXPR_SPACE_QUEUE_SIZE, EXPR_SPACE_MAX_FILE_SIZE.
"""

import logging
import os

# Before gradio and huggingface_hub are imported: nothing calls home, and every model is read from checkpoints/.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from space.ui import build_demo, serve  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
demo = build_demo()

if __name__ == "__main__":
    serve(demo)
