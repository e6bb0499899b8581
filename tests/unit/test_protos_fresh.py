"""The committed stubs in shared/lightning/protos must match what the .proto files generate."""

import tempfile
import unittest
from pathlib import Path

from shared.lightning.protos import build


class ProtosFreshTest(unittest.TestCase):
    def test_committed_stubs_are_up_to_date(self):
        with tempfile.TemporaryDirectory() as tmp:
            build.build(Path(tmp))
            stale = [
                name
                for name in build.generated_names()
                if (Path(tmp) / name).read_bytes() != (build.PROTO_DIR / name).read_bytes()
            ]
        self.assertEqual(stale, [], "stale stubs: run `.venv/bin/python -m shared.lightning.protos.build`")

    def test_stubs_import_as_a_package(self):
        from shared.lightning.protos import invoices_pb2, lightning_pb2, router_pb2

        self.assertEqual(lightning_pb2.DESCRIPTOR.package, "lnrpc")
        self.assertEqual(router_pb2.DESCRIPTOR.package, "routerrpc")
        self.assertEqual(invoices_pb2.DESCRIPTOR.package, "invoicesrpc")
        # LND's field numbers that clients depend on.
        inv = lightning_pb2.Invoice.DESCRIPTOR.fields_by_name
        self.assertEqual((inv["settled"].number, inv["amt_paid"].number, inv["state"].number), (6, 18, 21))
        self.assertEqual(
            invoices_pb2.SubscribeSingleInvoiceRequest.DESCRIPTOR.fields_by_name["r_hash"].number, 2
        )
