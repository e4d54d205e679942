"""hubbub: a WebRTC SFU for interactive streaming."""

__version__ = "0.1.0"
