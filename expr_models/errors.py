"""The errors the editing pipeline, the CLI and the Space report to users.

Everything the library raises on purpose derives from :class:`ExpressionEditError`, so a caller (the CLI, the
Space) can catch that one class, show its message and go on with the next photo.
"""


class ExpressionEditError(Exception):
    """Base class: a problem with the user's input or setup, with a message meant for the user."""


class ImageLoadError(ExpressionEditError):
    """The file is not an image we can read (not an image, truncated, unsupported mode)."""


class ImageTooLargeError(ImageLoadError):
    """The image has more pixels than the configured cap (decompression-bomb guard); refused before decoding."""


class NoFaceError(ExpressionEditError):
    """No face was found in the photo (or in the NST reference)."""


class CheckpointError(ExpressionEditError):
    """A checkpoint is missing, incomplete or broken; the message names the file."""


class MissingDependencyError(ExpressionEditError, ImportError):
    """An optional package a chosen component needs is not installed; the message says what to install and what
    works without it."""


class UnknownMethodError(ExpressionEditError, ValueError):
    """The editing method is not one of the supported ones."""


class UnknownExpressionError(ExpressionEditError, ValueError):
    """The target expression is not in the vocabulary, or the chosen model cannot produce it."""


class HubUnavailableError(CheckpointError):
    """A Hub model id was given but the Hub cannot be reached and the model is not cached locally."""


def is_connection_error(error: BaseException | None) -> bool:
    """True when ``error`` (or what caused it) means the Hub could not be reached."""
    names = {"ConnectionError", "ConnectError", "OfflineModeIsEnabled", "LocalEntryNotFoundError", "Timeout",
             "ConnectTimeout", "ReadTimeout", "MaxRetryError", "NameResolutionError"}
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if type(error).__name__ in names or "offline" in str(error).lower():
            return True
        error = error.__cause__ or error.__context__
    return False
