"""The soak's own rules (bench/soak): the fault schedule and which error log lines a fault explains."""

from __future__ import annotations

import json
import random
import tempfile
import unittest
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench.soak.audit import Audit, _error_entry
from bench.soak.faults import KINDS, Fault, schedule
from bench.soak.receiver import Receiver


def log_line(level: str, msg: str, at: float) -> str:
    ts = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return json.dumps({"ts": ts, "level": level, "logger": "lightning_worker.retry", "msg": msg})


class ScheduleTest(unittest.TestCase):
    def test_each_kind_every_round_one_lease_freeze_inside_the_load(self) -> None:
        plan = schedule(random.Random(7), 600, rounds=5)
        counts = Counter(kind for _, kind in plan)
        self.assertEqual(counts, {**{kind: 5 for kind in KINDS[:-1]}, "lease_freeze": 1})
        offsets = [offset for offset, _ in plan]
        self.assertEqual(offsets, sorted(offsets))
        self.assertGreaterEqual(min(offsets), 60)  # the first tenth is fault-free
        self.assertLess(max(offsets), 0.9 * 600)
        self.assertEqual(plan, schedule(random.Random(7), 600, rounds=5))  # seeded

    def test_one_round_still_has_every_kind(self) -> None:
        self.assertEqual({kind for _, kind in schedule(random.Random(1), 45, rounds=1)}, set(KINDS))


class LogCheckTest(unittest.TestCase):
    def check(self, lines: list[str], faults: list[Fault], tmp_name: str = "worker-1.log") -> Audit:
        audit = Audit("postgresql://unused", alice=None, receiver=Receiver(seed=1))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / tmp_name
            path.write_text("\n".join(lines) + "\n")
            audit.check_logs([path], faults)
        return audit

    def test_an_error_in_a_faults_window_of_its_kind_is_explained(self) -> None:
        fault = Fault("pg_terminate", started=1000.0, ended=1001.0)
        audit = self.check(
            [log_line("error", "connection was closed in the middle of operation", 1010)], [fault]
        )
        self.assertEqual(audit.violations, [])
        self.assertEqual(audit.reconciliation["error_logs_explained_by_fault"], {"pg_terminate": 1})

    def test_outside_the_window_or_of_another_kind_or_a_traceback_is_a_violation(self) -> None:
        fault = Fault("pg_terminate", started=1000.0, ended=1001.0)
        lines = [
            log_line("error", "connection was closed", 2000),  # long after the fault
            log_line("critical", "payment succeeded after it was marked failed", 1002),  # not a connection
            "Traceback (most recent call last):",
            log_line("warning", "connection was closed", 1002),  # warnings are not counted
        ]
        audit = self.check(lines, [fault])
        self.assertEqual([v["line"] for v in audit.violations], [1, 2, 3])
        self.assertEqual({v["check"] for v in audit.violations}, {"error_log"})

    def test_only_error_and_critical_json_lines_and_tracebacks_count(self) -> None:
        self.assertIsNone(_error_entry(log_line("info", "x", 1)))
        self.assertIsNone(_error_entry("plain output"))
        self.assertEqual(_error_entry("Traceback (most recent call last):")[0], None)
        at, text = _error_entry(log_line("error", "boom", 1234.5))
        self.assertEqual((at, "boom" in text), (1234.5, True))
