"""slimtext core: the parts shared by training and serving (no torch, no web framework).

`slimtext.load(folder)` opens an exported model for predictions from Python (see slimtext/api.py)."""

from slimtext.api import Label, TextClassifier, load
from slimtext.runtime import ModelLoadError

__all__ = ["load", "Label", "TextClassifier", "ModelLoadError"]
