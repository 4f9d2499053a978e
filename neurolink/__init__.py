"""neurolink: real-time, closed-loop BCI middleware (LSL → codec → ZeroMQ/MQTT → LSL)."""

__version__ = "0.1.0"
