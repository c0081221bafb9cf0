"""The incremental bench waits for the newest landed file to settle, as the landing sensor does."""

import os

from bench.parts import settle_wait


def test_the_wait_counts_from_the_newest_file_not_from_the_oldest(tmp_path):
    (tmp_path / "transactions").mkdir()
    old, new = tmp_path / "transactions" / "a.csv", tmp_path / "chargebacks.csv"
    old.write_text("x\n")
    new.write_text("y\n")
    os.utime(old, (1_000.0, 1_000.0))
    os.utime(new, (1_003.5, 1_003.5))
    # 5 s after the first file, the newest one has settled for 1.5 s: 3.5 s (and the margin) left
    assert abs(settle_wait(tmp_path, 5.0, now=1_005.0) - 3.55) < 1e-9
    # long after, nothing to wait for
    assert settle_wait(tmp_path, 5.0, now=1_100.0) == 0.0


def test_an_empty_landing_folder_needs_no_wait(tmp_path):
    assert settle_wait(tmp_path, 5.0, now=0.0) == 0.0
