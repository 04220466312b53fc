"""The backdoor device: a guest-to-host channel (control window, data window, instruction interface)."""
from .backdoor import BackdoorDevice

__all__ = ["BackdoorDevice"]
