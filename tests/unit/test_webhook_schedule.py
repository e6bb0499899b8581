"""The retry schedule: the production default is exactly the issue's, with jitter; it can be shortened."""

from __future__ import annotations

import unittest
from unittest import mock

from lightning_worker.webhooks import JITTER, retry_delay_s
from shared.config import ConfigError, Settings
from tests.support import env

ISSUE_SCHEDULE_S = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)


class RetryScheduleTest(unittest.TestCase):
    def test_the_default_is_immediately_then_5s_5min_30min_2h_5h_10h_10h(self):
        self.assertEqual(
            Settings.model_fields["webhook_retry_schedule_s"].default, "5,300,1800,7200,18000,36000,36000"
        )
        delays = env.make_settings().webhook_retry_delays_s
        self.assertEqual(delays, ISSUE_SCHEDULE_S)
        self.assertAlmostEqual(sum(delays) / 3600, 27.58, places=2)  # ~27.5 h in all, 8 attempts

    def test_each_delay_is_jittered_within_ten_percent(self):
        for attempt, base in enumerate(ISSUE_SCHEDULE_S, start=1):
            with mock.patch("random.uniform", side_effect=lambda low, high: low):
                self.assertAlmostEqual(retry_delay_s(ISSUE_SCHEDULE_S, attempt), base * (1 - JITTER))
            with mock.patch("random.uniform", side_effect=lambda low, high: high):
                self.assertAlmostEqual(retry_delay_s(ISSUE_SCHEDULE_S, attempt), base * (1 + JITTER))
            delay = retry_delay_s(ISSUE_SCHEDULE_S, attempt)
            self.assertTrue(base * 0.9 <= delay <= base * 1.1, (attempt, delay))
        self.assertEqual(JITTER, 0.1)
        # The 8th failed attempt was the last.
        self.assertIsNone(retry_delay_s(ISSUE_SCHEDULE_S, len(ISSUE_SCHEDULE_S) + 1))

    def test_a_shorter_schedule_for_tests_and_bad_ones_refused(self):
        self.assertEqual(
            env.make_settings(webhook_retry_schedule_s="0.5, 1").webhook_retry_delays_s, (0.5, 1.0)
        )
        for bad in ("", "five", "-1", "1," * 21, str(8 * 24 * 3600)):
            with self.subTest(bad=bad), self.assertRaises(ConfigError):
                env.make_settings(webhook_retry_schedule_s=bad)
