"""`stronglens run` ends by saying where its time went: stages and the slowest dbt nodes."""

from __future__ import annotations

import json
from pathlib import Path

from stronglens.summary import time_report


def test_stages_shares_and_slowest_nodes(tmp_path: Path) -> None:
    results = tmp_path / "run_results.json"
    nodes = {"model.stronglens.finder_runs": 97.7, "model.stronglens.cutouts": 30.2, "test.stronglens.x": 0.1}
    results.write_text(
        json.dumps({"results": [{"unique_id": k, "execution_time": v} for k, v in nodes.items()]})
    )
    text = time_report([("embedded sky", 30.0), ("dbt build", 60.0), ("quality check", 10.0)], results, top=2)
    lines = text.splitlines()
    assert lines[0] == "Where the time went (100 s in all):"
    assert "dbt build" in lines[2] and lines[2].rstrip().endswith("60%")
    assert lines[-1] == "  slowest dbt nodes: finder_runs 97.7 s, cutouts 30.2 s"


def test_a_missing_run_results_file_leaves_only_the_stages(tmp_path: Path) -> None:
    text = time_report([("dbt build", 5.0)], tmp_path / "absent.json")
    assert "slowest" not in text and "dbt build" in text
