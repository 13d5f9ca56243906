"""The run header every record and table starts from (robust_winn.runtime.header)."""

from __future__ import annotations

import json
import re

import torch

from robust_winn.runtime.checkpoint import versions
from robust_winn.runtime.header import run_header


def test_run_header_holds_command_date_device_threads_versions() -> None:
    h = run_header("robust-winn train --epochs 1", torch.device("cpu"))
    assert list(h) == ["command", "date", "device", "torch_threads", "versions"]
    assert h["command"] == "robust-winn train --epochs 1" and h["device"] == "cpu"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", h["date"])
    assert h["torch_threads"] == torch.get_num_threads() and h["versions"] == versions()
    assert json.loads(json.dumps(h)) == h  # JSON-ready as it is


def test_run_header_without_command_or_device() -> None:
    h = run_header(None)
    assert h["command"] is None and h["device"] is None
    assert run_header(None, "cuda:1")["device"] == "cuda:1"


def test_run_header_follows_the_thread_count() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the tests run on 1 thread (conftest): a change is seen
        assert run_header(None)["torch_threads"] == 2
    finally:
        torch.set_num_threads(before)
