"""Typed error hierarchy: every error says *what* and *where* in one line."""

from __future__ import annotations


class NeurolinkError(Exception):
    """Base class of every error neurolink raises on purpose."""


class ConfigError(NeurolinkError, ValueError):
    """A configuration value is missing or invalid; the message names the key."""

    def __init__(self, key: str, message: str, *, source: str | None = None) -> None:
        self.key = key
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}config key {key!r}: {message}")


class WireFormatError(NeurolinkError, ValueError):
    """A wire message is malformed; the message names the field and byte offset."""

    def __init__(self, field: str, offset: int, message: str) -> None:
        self.field = field
        self.offset = offset
        super().__init__(f"wire field {field!r} at offset {offset}: {message}")


class CodecError(NeurolinkError, ValueError):
    """A codec cannot encode the given input or decode the given payload."""


class MissingReferenceError(CodecError):
    """A streaming decoder got a predicted frame without the state it depends on (wait for a keyframe)."""


class SourceLostError(NeurolinkError):
    """A data source vanished or could not be found; the message names the stream."""

    def __init__(self, stream: str, message: str) -> None:
        self.stream = stream
        super().__init__(f"stream {stream!r}: {message}")


class TransportError(NeurolinkError):
    """A transport could not connect, send or receive."""


class SecurityError(NeurolinkError):
    """Authentication, decryption or replay protection rejected a message."""
