"""The embedded broker (Tansu) answers a waiting fetch only when its wait is over, never when a
record arrives, so every hop between stages (API, decode, the stages, the aggregator) would cost
up to Faust's fixed 1.5 s wait (about 0.5 s measured). Consumers there wait 250 ms instead; on a
cluster they keep the clients' own waits unless ``FRAMEWISE_FETCH_WAIT_MS`` says otherwise."""

from __future__ import annotations

import asyncio

from framewise.config import Settings
from framewise.kafka import fetch_wait, make_app


def test_the_embedded_broker_gets_a_short_wait_and_a_cluster_the_clients_own():
    assert Settings(kafka_bootstrap=None).consumer_fetch_wait_ms == 250
    assert Settings(kafka_bootstrap="kafka:9092").consumer_fetch_wait_ms is None
    assert fetch_wait(Settings(kafka_bootstrap="kafka:9092")) == {}
    chosen = Settings(kafka_bootstrap="kafka:9092", fetch_wait_ms=100)
    assert fetch_wait(chosen) == {"fetch_max_wait_ms": 100}


def test_a_stage_workers_kafka_consumer_waits_what_the_settings_say():
    async def consumer_wait(settings: Settings) -> int:
        app = make_app("fetch-wait-test", settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms

    assert asyncio.run(consumer_wait(Settings(kafka_bootstrap=None))) == 250
    assert asyncio.run(consumer_wait(Settings(kafka_bootstrap="kafka:9092"))) == 1500  # Faust's
    assert asyncio.run(consumer_wait(Settings(fetch_wait_ms=40))) == 40
