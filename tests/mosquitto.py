"""Test-side access to the throw-away mosquitto broker (the logic lives in neurolink.testing_broker)."""

from neurolink.testing_broker import MosquittoBroker, find_mosquitto, wait_port

__all__ = ["MosquittoBroker", "find_mosquitto", "wait_port"]
