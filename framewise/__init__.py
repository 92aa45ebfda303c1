"""Framewise: asynchronous video and image analysis on a Kafka streaming pipeline."""
