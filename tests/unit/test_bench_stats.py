"""The bench's pure figures: percentiles, cell summaries, ratios, targets, rendering. No timing asserted."""

from __future__ import annotations

import json
import unittest

from bench.stats import (
    CellResult,
    Target,
    backlog_rate,
    evaluate_targets,
    find,
    fmt,
    fmt_cpu,
    percentile,
    pool_size,
    ratio,
    ratios_for,
    render_markdown,
    render_results_table,
    summarize,
    timeline_p50_ms,
    to_json,
)


def cell(
    workload: str,
    system: str,
    concurrency: int,
    throughput: float,
    *,
    p50: float = 1.0,
    p99: float = 2.0,
    errors: int = 0,
) -> CellResult:
    return CellResult(
        workload,
        system,
        concurrency,
        ok=100,
        errors=errors,
        elapsed_s=1.0,
        throughput_per_s=throughput,
        p50_ms=p50,
        p90_ms=p99,
        p99_ms=p99,
        max_ms=p99,
        error_kinds={"http 500": errors} if errors else {},
    )


class PercentileTest(unittest.TestCase):
    def test_empty_is_none(self) -> None:
        self.assertIsNone(percentile([], 50))

    def test_single_value(self) -> None:
        self.assertEqual(percentile([7.0], 99), 7.0)

    def test_interpolates_between_ranks(self) -> None:
        values = [1.0, 2.0, 3.0, 4.0]
        self.assertEqual(percentile(values, 0), 1.0)
        self.assertEqual(percentile(values, 100), 4.0)
        self.assertAlmostEqual(percentile(values, 50), 2.5)
        self.assertAlmostEqual(percentile(values, 99), 3.97)

    def test_order_of_input_does_not_matter(self) -> None:
        self.assertEqual(percentile([5.0, 1.0, 3.0], 50), 3.0)

    def test_rejects_out_of_range(self) -> None:
        with self.assertRaises(ValueError):
            percentile([1.0], 101)


class SummarizeTest(unittest.TestCase):
    def test_counts_successes_and_errors_separately(self) -> None:
        result = summarize("w", "ours", 16, [0.001, 0.002, 0.003, 0.004], {"timeout": 2, "http 500": 1}, 2.0)
        self.assertEqual(result.ok, 4)
        self.assertEqual(result.errors, 3)
        self.assertEqual(result.throughput_per_s, 2.0)  # successes only
        self.assertAlmostEqual(result.p50_ms, 2.5)
        self.assertEqual(result.max_ms, 4.0)
        self.assertEqual(result.error_kinds, {"timeout": 2, "http 500": 1})

    def test_all_errors_has_no_latency_but_keeps_the_errors(self) -> None:
        result = summarize("w", "ours", 1, [], {"http 503": 5}, 1.0)
        self.assertEqual((result.ok, result.errors, result.throughput_per_s), (0, 5, 0.0))
        self.assertIsNone(result.p99_ms)

    def test_zero_elapsed_does_not_divide(self) -> None:
        self.assertEqual(summarize("w", "ours", 1, [], {}, 0.0).throughput_per_s, 0.0)

    def test_cpu_ms_per_success_of_each_process_kind(self) -> None:
        result = summarize(
            "w", "ours", 1, [0.001] * 4, {"timeout": 6}, 1.0, cpu_ms={"api": 10.0, "postgres": 2.0}
        )
        self.assertEqual(result.cpu_ms_per_op["api"], 2.5)
        self.assertEqual(result.cpu_ms_per_op["postgres"], 0.5)
        self.assertEqual(result.cpu_ms_per_op["simnet"], 0.0)
        self.assertEqual(fmt_cpu(result.cpu_ms_per_op), "2.50 / 0.00 / 0.50 / 0.00 / 0.00 / 0.00")
        self.assertEqual(summarize("w", "ours", 1, [], {}, 1.0, cpu_ms={"api": 1.0}).cpu_ms_per_op, {})
        self.assertEqual(fmt_cpu({}), "-")


class RatioTest(unittest.TestCase):
    def test_ratio(self) -> None:
        self.assertEqual(ratio(30.0, 10.0), 3.0)
        self.assertIsNone(ratio(None, 10.0))
        self.assertIsNone(ratio(1.0, None))
        self.assertIsNone(ratio(1.0, 0.0))

    def test_ratios_pair_cells_at_the_same_concurrency(self) -> None:
        results = [
            cell("create_invoice", "ours", 16, 400.0),
            cell("create_invoice", "lnbits", 16, 40.0),
            cell("create_invoice", "lnbits", 64, 80.0),
            cell("create_invoice", "lean_pipeline", 16, 800.0),
            cell("reads", "ours", 16, 500.0),
            cell("reads", "lean_reads", 16, 2000.0),
        ]
        self.assertEqual(ratios_for(results, results[0]), (10.0, 0.5))
        self.assertEqual(ratios_for(results, results[4]), (None, 0.25))
        self.assertEqual(ratios_for(results, results[1]), (None, None))  # references get no ratio

    def test_find_without_concurrency_takes_the_best_throughput(self) -> None:
        results = [
            cell("reads", "ours", 1, 10.0),
            cell("reads", "ours", 64, 90.0),
            cell("reads", "ours", 16, 50.0),
        ]
        self.assertEqual(find(results, "reads", "ours").concurrency, 64)
        self.assertIsNone(find(results, "reads", "lnbits"))


class TargetTest(unittest.TestCase):
    def test_status(self) -> None:
        self.assertEqual(Target("t", "g", ">=", 10, 12.0, "x").status, "met")
        self.assertEqual(Target("t", "g", ">=", 10, 9.0, "x").status, "missed")
        self.assertEqual(Target("t", "g", "<=", 15, 15.0, "ms").status, "met")
        self.assertEqual(Target("t", "g", "<=", 15, 16.0, "ms").status, "missed")
        self.assertEqual(Target("t", "g", "<=", 15, None, "ms").status, "not run")

    def test_errors_make_a_target_missed_even_when_the_figure_is_good(self) -> None:
        self.assertEqual(Target("t", "g", "<=", 15, 1.0, "ms", errors=3).status, "missed (3 errors)")

    def test_evaluate_targets(self) -> None:
        results = [
            cell("create_invoice", "ours", 1, 100.0, p50=9.0),
            cell("create_invoice", "ours", 16, 500.0),
            cell("create_invoice", "ours", 64, 600.0, p99=550.0),
            cell("create_invoice", "lnbits", 16, 40.0),
            cell("create_invoice", "lean_pipeline", 16, 1000.0),
            cell("reads", "ours", 16, 900.0),
            cell("reads", "lean_reads", 16, 1000.0),
            cell("pay_external", "ours", 16, 50.0),
            cell("pay_internal", "ours", 16, 20.0),
            cell("pay_external", "lnbits", 16, 10.0),
            cell("healthz_during_logins", "ours", 1, 500.0, p99=30.0, errors=1),
        ]
        by_name = {t.name: t for t in evaluate_targets(results)}
        self.assertEqual(by_name["create invoice vs LNbits, c=16"].measured, 12.5)
        self.assertEqual(by_name["create invoice vs LNbits, c=16"].status, "met")
        self.assertEqual(by_name["create invoice p50, c=1"].status, "met")
        self.assertEqual(by_name["create invoice p99, c=64 (zero errors)"].status, "missed")
        lean = by_name["create invoice vs the lean pipeline reference, c=16"]
        self.assertEqual((lean.measured, lean.status), (0.5, "reported"))
        self.assertAlmostEqual(by_name["reads vs the lean reference handler, c=16"].measured, 0.9)
        self.assertEqual(by_name["reads vs the lean reference handler, c=16"].status, "met")
        self.assertEqual(by_name["external payments vs LNbits' external, c=16"].status, "met")
        self.assertEqual(by_name["internal payments vs LNbits' external, c=16"].status, "missed")
        self.assertEqual(by_name["/healthz p99 during 50 logins"].status, "missed (1 errors)")
        settlement = [t for t in by_name.values() if t.name.startswith("settlement")]
        self.assertTrue(settlement and all(t.status == "not run" for t in settlement))


class RenderTest(unittest.TestCase):
    def test_fmt(self) -> None:
        self.assertEqual(fmt(None), "-")
        self.assertEqual(fmt(1234.5), "1,234")
        self.assertEqual(fmt(12.34), "12.3")

    def test_table_has_one_row_per_cell_with_errors_and_ratios(self) -> None:
        results = [
            cell("create_invoice", "ours", 16, 400.0, errors=2),
            cell("create_invoice", "lnbits", 16, 40.0),
        ]
        lines = render_results_table(results).splitlines()
        self.assertEqual(len(lines), 4)
        self.assertEqual(lines[0].count("|"), lines[1].count("|"))
        self.assertIn("2 (http 500: 2)", lines[2])
        self.assertIn("10.00x", lines[2])

    def test_markdown_and_json_carry_the_same_targets(self) -> None:
        results = [cell("create_invoice", "ours", 1, 50.0, p50=20.0)]
        targets = evaluate_targets(results)
        meta = {"date": "2026-01-01", "machine": "2 cores"}
        markdown = render_markdown(results, targets, meta)
        self.assertIn("2026-01-01", markdown)
        self.assertIn("| create invoice p50, c=1 | <= 12 ms | 20.0 ms | missed |", markdown)
        data = json.loads(json.dumps(to_json(results, targets, meta)))
        self.assertEqual(data["results"][0]["p50_ms"], 20.0)
        statuses = {t["name"]: t["status"] for t in data["targets"]}
        self.assertEqual(statuses["create invoice p50, c=1"], "missed")


class BacklogRateTest(unittest.TestCase):
    def test_rate_excludes_the_first_transaction(self) -> None:
        rate, span = backlog_rate([(10.0, 200), (10.1, 200), (10.2, 100)])
        self.assertAlmostEqual(span, 0.2)
        self.assertAlmostEqual(rate, 1500.0)

    def test_one_transaction_has_no_rate(self) -> None:
        self.assertEqual(backlog_rate([(10.0, 500)]), (None, 0.0))


class PoolSizeTest(unittest.TestCase):
    def test_covers_the_expected_rate_with_margin(self) -> None:
        self.assertGreaterEqual(pool_size(100.0, 16, 5.0, 1.0), 900)
        self.assertEqual(pool_size(0.0, 64, 5.0, 1.0), 138)


class TimelineTest(unittest.TestCase):
    def test_p50_of_each_segment_and_the_total(self) -> None:
        stamps = [(0.0, 0.002, 0.010, 0.012), (1.0, 1.004, 1.020, 1.024), (2.0, 2.003, 2.015, 2.018)]
        values = dict(timeline_p50_ms(stamps))
        self.assertEqual(len(values), 4)
        first, second, third, total = values.values()
        self.assertAlmostEqual(first, 3.0, places=3)
        self.assertAlmostEqual(second, 12.0, places=3)
        self.assertAlmostEqual(third, 3.0, places=3)
        self.assertAlmostEqual(total, 18.0, places=3)

    def test_rendered_when_present(self) -> None:
        meta = {
            "date": "d",
            "create_timeline": timeline_p50_ms([(0.0, 0.001, 0.002, 0.003)]),
            "create_timeline_n": 1,
        }
        self.assertIn(
            "Where one invoice create spends its time (c=1, p50 of 1)", render_markdown([], [], meta)
        )
