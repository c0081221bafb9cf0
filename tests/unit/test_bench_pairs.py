"""`python -m bench --pairs N`: the platform and the floor alternated N times, each side's
figures taken from its median run, every run's wall time kept beside them."""

from bench.run import median_run, part_order


def test_full_and_floor_alternate_after_the_generation_and_before_the_other_parts():
    assert part_order(["full", "floor", "incremental", "tick"], pairs=3) == [
        "generate",
        "full",
        "floor",
        "full",
        "floor",
        "full",
        "floor",
        "incremental",
        "tick",
    ]
    one_side = part_order(["incremental", "full"], pairs=2)
    assert one_side == ["generate", "full", "full", "incremental"]
    assert part_order(["incremental", "tick"], pairs=3) == ["incremental", "tick"]
    assert part_order(["floor", "full"]) == ["generate", "full", "floor"]


def test_each_side_is_its_median_run_with_every_wall_time():
    runs = [{"wall_seconds": w, "id": i} for i, w in enumerate([110.0, 95.0, 130.0])]
    chosen = median_run(runs)
    assert chosen["id"] == 0 and chosen["walls_seconds"] == [110.0, 95.0, 130.0]
    # an even count takes the lower middle run: a real run, not an average of two
    assert median_run(runs[:2])["id"] == 1
    assert median_run(runs[:1])["walls_seconds"] == [110.0]
