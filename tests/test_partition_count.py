"""P is fixed by the first writer (stores/partitions.py), and an engine on data written before
partitions says so (server/engine_process.py), both against a real Redis."""
from __future__ import annotations

import dataclasses
import logging


from base import keys
from base.catalog import load_catalog
from base.config import Settings
from server.engine_process import EngineProcess
from stores.partitions import partition_count



def test_the_first_writer_fixes_p_and_a_different_setting_later_is_ignored_with_a_warning(redis_client, caplog):
    client = redis_client
    assert partition_count(redis_client, 4) == 4
    with caplog.at_level(logging.WARNING, logger="pasarwatch.partitions"):
        assert partition_count(redis_client, 16) == 4
    assert "this data has 4 partitions" in caplog.text and "PASARWATCH_PARTITIONS=16 is ignored" in caplog.text
    assert client.get(keys.PARTITION_COUNT) == b"4"


def test_an_engine_on_data_from_before_partitions_says_its_old_ticks_are_not_read(redis_client, caplog, tmp_path):
    client = redis_client
    client.xadd(keys.LEGACY_TICKS, {"t": b"{}"})
    settings = dataclasses.replace(Settings.from_env(), partitions=2, data_dir=tmp_path)
    process = EngineProcess(settings, client, load_catalog(), me="test-engine")
    with caplog.at_level(logging.ERROR, logger="pasarwatch.engine"):
        process.start()
    assert "pw:ticks holds ticks of a version before partitions" in caplog.text
    assert "pasarwatch import" in caplog.text
