"""usbrain: Unified Synthetic Brain — joint 3D brain MRI and lesion-mask synthesis and editing."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("usbrain")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from usbrain.errors import UsbrainError

__all__ = ["UsbrainError", "__version__"]
