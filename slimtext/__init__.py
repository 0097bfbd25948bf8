"""slimtext core: the parts shared by training and serving (no torch, no web framework).

`slimtext.load(folder)` opens an exported model for predictions from Python (see slimtext/api.py)."""

from importlib.metadata import PackageNotFoundError, version

from slimtext.api import Label, TextClassifier, load
from slimtext.runtime import ModelLoadError

try:  # the one version string (pyproject.toml's), for the CLI, the OpenAPI page, /v2 and gRPC metadata
    __version__ = version("slimtext")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["load", "Label", "TextClassifier", "ModelLoadError", "__version__"]
