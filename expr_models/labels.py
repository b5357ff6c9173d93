"""The shared expression vocabulary.

Every dataset, model and metric uses these names and this order, so a class index means the same thing everywhere.
The first seven are the study's (JAFFE/FER2013) classes; CK+ adds ``contempt``.
"""

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
EXPRESSIONS_WITH_CONTEMPT = EXPRESSIONS + ("contempt",)

# Spellings used by the source datasets, mapped onto the shared vocabulary.
ALIASES = {
    "anger": "angry",
    "an": "angry",
    "di": "disgust",
    "fe": "fear",
    "ha": "happy",
    "smile": "happy",
    "smiling": "happy",
    "ne": "neutral",
    "sa": "sad",
    "sadness": "sad",
    "su": "surprise",
    "surprised": "surprise",
}


def canonical_expression(name: str) -> str:
    """Map a dataset's label spelling to the shared vocabulary, or raise ``ValueError``."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in EXPRESSIONS_WITH_CONTEMPT:
        raise ValueError(f"Unknown expression {name!r}; expected one of {', '.join(EXPRESSIONS_WITH_CONTEMPT)}")
    return key
