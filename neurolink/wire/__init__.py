"""Wire format v1 (see docs/wire-format.md)."""

from neurolink.wire.format import (  # noqa: F401
    FLAG_END_OF_STREAM, FLAG_ENCRYPTED, FLAG_KEYFRAME, FLAG_RETRANSMIT, FRAME_HEADER_SIZE, MAGIC,
    MSG_CLOCK, MSG_FEEDBACK, MSG_FRAME, MSG_STREAM_HEADER, WIRE_VERSION, ClockProbe, Feedback, Frame,
    FrameHeader, StreamHeader, message_type, pack_clock, pack_feedback, pack_frame, pack_stream_header,
    parse_clock, parse_feedback, parse_frame, parse_frame_header, parse_stream_header,
)
