"""Transports: ZeroMQ (default, brokerless) and MQTT (through a real broker)."""

from neurolink.transports import zmq as _zmq  # noqa: F401  (registers "zmq")
from neurolink.transports.base import (  # noqa: F401
    ReceiverTransport,
    SenderTransport,
    TransportStats,
    make_receiver_transport,
    make_sender_transport,
    register_transport,
)

try:  # MQTT is optional at import time (aiomqtt present in the default install)
    from neurolink.transports import mqtt as _mqtt  # noqa: F401
except ImportError:  # pragma: no cover
    pass
